/**
 * Unary cases (cases.ts) for every Node client (clients.ts: connect-node Connect, gRPC and
 * gRPC-Web, the fast path's own gRPC client, @grpc/grpc-js; HTTP/1.1, h2c and TLS), on the fast
 * path and on plain connect-node: each answer is the protocol's, and the two paths answer alike.
 */
import { after, before, test } from "node:test";
import { unaryCases } from "./cases.js";
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
  clients = nodeClients(started.tls);
});
after(async () => {
  process.stdout.write(`# ${matrix.summary("unary × Node clients")}\n`);
  for (const c of clients) c.close?.();
  await close();
});

for (const c of unaryCases) {
  test(c.name, async () => {
    assertNone(await playCase(matrix, c, clients, targets, (client, target) => client.unary(target, c.call)));
  });
}
