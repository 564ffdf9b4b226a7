/**
 * RabbitMQ unreachable at start: the bus retries with a growing delay, it does not spin. (The first
 * attempt runs at once with delay 0; doubling 0 made every retry immediate: thousands of attempts
 * a second, a busy process that never got to answer signals.) Needs no RabbitMQ: a closed port.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import pino from "pino";
import { until } from "@crm/testkit";
import { amqpBus } from "./amqp.js";

test("an unreachable broker is retried with backoff, not in a busy loop", async () => {
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const delays: number[] = [];
  const log = pino({ level: "warn" }, { write: (line: string) => {
    const j = JSON.parse(line) as { msg: string; retryInMs?: number };
    if (j.msg === "RabbitMQ connect failed") delays.push(j.retryInMs!);
  } });
  const bus = amqpBus({ url: `amqp://127.0.0.1:${port}`, log, name: "backoff-test", maxBackoffMs: 400 });
  const started = performance.now();
  try {
    await until("four failed attempts", () => delays.length >= 4, 10_000);
    assert.deepEqual(delays.slice(0, 4), [100, 200, 400, 400]);
    // attempts 2..4 waited 100, 200 and 400 ms (±20 % jitter)
    assert.ok(performance.now() - started >= 0.8 * 700, `four attempts took ${Math.round(performance.now() - started)} ms`);
  } finally {
    await bus.close();
  }
});
