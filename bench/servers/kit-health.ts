/**
 * The kit's server (packages/kit startServer) with one tiny module and nothing else: every
 * interceptor the services get (tracing, metrics, context, errors, auth), its routing, its
 * cleartext HTTP/1.1 + h2c front. The RPC is the kit's own grpc.health.v1.Health/Check.
 * Prints {"bench_ready":true,"port":N}.
 */
import { createLogger, startServer, type ServiceModule, type TokenVerifier } from "@crm/kit";

const log = createLogger("bench", "warn");
const verifier: TokenVerifier = {
  verify: () => Promise.reject(new Error("the bench server takes no tokens")),
};
const tiny: ServiceModule = { name: "bench", services: [], routes: () => {} };
const server = await startServer({ modules: [tiny], port: 0, host: "127.0.0.1", log, verifier, readMaxBytes: 4 * 1024 * 1024, shutdownTimeoutMs: 2_000 });
console.log(JSON.stringify({ bench_ready: true, port: server.port }));
process.on("SIGTERM", () => void server.close().then(() => process.exit(0)));
