/**
 * Server-streaming cases (cases.ts) for every Node client that streams (connect-node Connect, gRPC
 * and gRPC-Web, @grpc/grpc-js; HTTP/1.1, h2c and TLS), on the fast path and on plain connect-node:
 * messages, headers and trailers, errors mid-stream, backpressure, cancellation, deadlines, limits.
 */
import { after, before, test } from "node:test";
import { streamCases } from "./cases.js";
import { nodeClients, type NodeClient } from "./clients.js";
import { assertNone, Matrix, playCase, startTargets, type Target } from "./harness.js";

let targets: Target[];
let clients: NodeClient[];
let close: () => Promise<void>;
const matrix = new Matrix();

before(async () => {
  const started = await startTargets();
  targets = started.targets;
  close = started.close;
  clients = nodeClients(started.tls).filter((c) => c.can.has("streams"));
});
after(async () => {
  process.stdout.write(`# ${matrix.summary("server streams × Node clients")}\n`);
  for (const c of clients) c.close?.();
  await close();
});

for (const c of streamCases) {
  test(c.name, async () => {
    assertNone(await playCase(matrix, c, clients, targets, (client, target) => client.stream!(target, c.call)));
  });
}
