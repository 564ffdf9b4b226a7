/**
 * FLOOR of the RPC hop: bare node:http2 (h2c) answering grpc.health.v1.Health/Check with fixed
 * bytes — no framework, no routing, no decoding — in the protocol the request names
 * (gRPC, Connect binary, Connect JSON). Prints {"bench_ready":true,"port":N}.
 */
import http2 from "node:http2";

const SERVING = Buffer.from([0x08, 0x01]); // HealthCheckResponse{status: SERVING}
const grpcBody = Buffer.concat([Buffer.from([0, 0, 0, 0, SERVING.length]), SERVING]);
const jsonBody = Buffer.from('{"status":"SERVING"}');

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on("stream", (stream, headers) => {
  const type = String(headers["content-type"] ?? "");
  stream.on("data", () => {});
  stream.on("end", () => {
    if (type.startsWith("application/grpc")) {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(grpcBody);
    } else if (type === "application/proto") {
      stream.respond({ ":status": 200, "content-type": "application/proto" });
      stream.end(SERVING);
    } else {
      stream.respond({ ":status": 200, "content-type": "application/json" });
      stream.end(jsonBody);
    }
  });
});
server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ bench_ready: true, port: (server.address() as { port: number }).port }));
});
process.on("SIGTERM", () => process.exit(0));
