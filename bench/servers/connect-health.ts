/**
 * connect-node with nothing of the kit: http2.createServer(connectNodeAdapter) serving the same
 * grpc.health.v1.Health/Check. Separates what Connect-ES itself costs from what the kit adds
 * (interceptors, AsyncLocalStorage context, routing, the HTTP/1.1 + h2c front).
 * Prints {"bench_ready":true,"port":N}.
 */
import http2 from "node:http2";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as Status } from "@crm/gen/grpc/health/v1/health_pb";

const handler = connectNodeAdapter({
  routes: (router) => router.service(Health, { check: async () => ({ status: Status.SERVING }) }),
});
const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, handler);
server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ bench_ready: true, port: (server.address() as { port: number }).port }));
});
process.on("SIGTERM", () => process.exit(0));
