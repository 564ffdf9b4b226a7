/**
 * @grpc/grpc-js serving grpc.health.v1.Health/Check from the same proto file (proto-loader), the
 * framework a user might pick instead of the kit. Prints {"bench_ready":true,"port":N}.
 */
import * as grpc from "@grpc/grpc-js";
import * as loader from "@grpc/proto-loader";

const protoFile = new URL("../../proto/grpc/health/v1/health.proto", import.meta.url).pathname;
const def = loader.loadSync(protoFile, { keepCase: false, enums: String, defaults: true });
const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };

const server = new grpc.Server();
server.addService(pkg.grpc.health.v1.Health.service, {
  check: (_call: unknown, callback: grpc.sendUnaryData<{ status: string }>) => callback(null, { status: "SERVING" }),
});
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  console.log(JSON.stringify({ bench_ready: true, port }));
});
process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
