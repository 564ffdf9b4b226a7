/**
 * The common end of otel-kit.ts and otel-sdk-node.ts (the `otel-startup` scenario): after tracing
 * has started, load the traced clients a service loads (pg, ioredis, amqplib; patched when tracing
 * is on), listen on HTTP (the point a service would serve) and print
 * {"bench_ready":true,"port":N,"tracing":bool,"ms":<ms since the process began>}; SIGTERM shuts
 * tracing down and exits.
 */
import http from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";

export function loadClientsAndServe(tracing: boolean, shutdown: () => Promise<void>): void {
  const require = createRequire(import.meta.url);
  for (const client of ["pg", "ioredis", "amqplib"]) require(client);
  const server = http.createServer((_req, res) => res.end());
  server.listen(0, "127.0.0.1", () => {
    console.log(JSON.stringify({ bench_ready: true, port: (server.address() as AddressInfo).port, tracing, ms: performance.now() }));
  });
  process.on("SIGTERM", () => void shutdown().then(() => process.exit(0)));
}
