/**
 * CallContext's abort signal: aborted by the server's shutdown signal while the call is open,
 * through one listener on it however many calls are open (a listener per call made every call's
 * start and end walk them all: bench/README.md, issue 21).
 */
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { test } from "node:test";
import { createContextValues } from "@connectrpc/connect";
import { CacheService } from "@crm/gen/crm/cache/v1/cache_pb";
import { CallContext } from "./methods.js";

const open = (shutdown: AbortSignal, timeoutMs?: number) =>
  new CallContext(CacheService.method.get, "grpc", "/crm.cache.v1.CacheService/Get", new Headers(), createContextValues(), timeoutMs, [shutdown]);

test("open calls' signals abort with the shutdown's reason; finished ones keep their own; one listener on the shutdown signal", () => {
  const shutdown = new AbortController();
  const calls = Array.from({ length: 1000 }, () => open(shutdown.signal));
  const signals = calls.map((c) => c.signal);
  assert.equal(getEventListeners(shutdown.signal, "abort").length, 1, "one listener, not one per call");
  calls[0]!.done(new Error("finished"));
  assert.equal((signals[0]!.reason as Error).message, "finished");
  shutdown.abort(new Error("draining"));
  assert.equal((signals[0]!.reason as Error).message, "finished", "a finished call is not aborted again");
  for (const s of signals.slice(1)) assert.equal((s.reason as Error | undefined)?.message, "draining");
  const late = open(shutdown.signal);
  assert.equal((late.signal.reason as Error | undefined)?.message, "draining", "a call whose signal is made after the shutdown sees it aborted");
});

test("a call's signal is not kept by the shutdown signal after the call ends", () => {
  const shutdown = new AbortController();
  const a = open(shutdown.signal);
  const b = open(shutdown.signal);
  const [sa, sb] = [a.signal, b.signal];
  a.done();
  b.done();
  assert.ok(sa.aborted && sb.aborted);
  // A call still open after others ended is the only one the shutdown aborts (the ended ones were let go).
  const c = open(shutdown.signal);
  const sc = c.signal;
  let abortedOpen = 0;
  for (const s of [sa, sb, sc]) s.addEventListener("abort", () => abortedOpen++);
  shutdown.abort(new Error("draining"));
  assert.equal(abortedOpen, 1);
  assert.equal(getEventListeners(shutdown.signal, "abort").length, 0);
});

test("the deadline still aborts a call's signal", async () => {
  const shutdown = new AbortController();
  const c = open(shutdown.signal, 10);
  const s = c.signal;
  await new Promise((r) => s.addEventListener("abort", r, { once: true }));
  assert.match(String(s.reason), /timed out/);
});
