/**
 * RabbitMQ messages carry the trace context: the consumer's work joins the producer's trace, on
 * RabbitMQ (amqplib instrumentation) and on the in-memory bus, and also when the message is
 * published later from stored headers (the outbox relay's case: `withTraceContext`).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import { startOtlpReceiver } from "@crm/testkit/otlp-receiver";

const receiver = await startOtlpReceiver();
process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
process.env.OTEL_BSP_SCHEDULE_DELAY = "50";
const { startTelemetry } = await import("@crm/kit/telemetry");
const telemetry = await startTelemetry("bus-test");
const { context, trace } = await import("@opentelemetry/api");
const kit = await import("@crm/kit");
const { TEST_AMQP_URL, installHint, need, rabbitUp } = await import("@crm/testkit");

const skipRabbit = need("RabbitMQ", await rabbitUp(), installHint.rabbitmq);
const log = kit.createLogger("bus-test", "warn");

after(async () => {
  await telemetry.shutdown();
  await receiver.close();
});

type Bus = ReturnType<typeof kit.createEventBus>;

/** Publishes inside a "request" span; resolves with the request's trace id and the consumer's active span context. */
async function roundTrip(bus: Bus, publish: (queue: string) => Promise<void>) {
  const queue = `trace_test_${randomBytes(4).toString("hex")}`;
  await bus.declareQueue(queue);
  let seen!: (v: { traceId: string; spanId: string }) => void;
  const consumed = new Promise<{ traceId: string; spanId: string }>((r) => (seen = r));
  const consumer = await bus.consume(queue, async () => {
    const sc = trace.getSpanContext(context.active());
    seen({ traceId: sc?.traceId ?? "", spanId: sc?.spanId ?? "" });
  });
  const requestTrace = await trace.getTracer("test").startActiveSpan("request", async (span) => {
    await publish(queue);
    span.end();
    return span.spanContext().traceId;
  });
  const got = await Promise.race([consumed, new Promise<never>((_, rej) => setTimeout(() => rej(new Error("no delivery within 10 s")), 10_000))]);
  await consumer.close();
  return { requestTrace, got };
}

test("in-memory bus: the consumer runs in the publisher's trace", async () => {
  const bus = kit.createEventBus({ log, name: "bus-test" });
  const { requestTrace, got } = await roundTrip(bus, (q) => bus.publish("", q, new Uint8Array([1])));
  assert.equal(got.traceId, requestTrace);
  await bus.close();
});

test("RabbitMQ: publish → consume is one trace (producer and consumer spans)", { skip: skipRabbit }, async () => {
  const bus = kit.createEventBus({ url: TEST_AMQP_URL, log, name: "bus-test" });
  assert.ok(await bus.waitConnected(10_000));
  const { requestTrace, got } = await roundTrip(bus, (q) => bus.publish("", q, new Uint8Array([1])));
  assert.equal(got.traceId, requestTrace, "the consumer joined the producer's trace");
  await telemetry.flush();
  const spans = await receiver.waitFor((all) => all.filter((s) => s.traceId === requestTrace && s.scope.includes("amqplib")).length >= 2);
  const kinds = spans.filter((s) => s.traceId === requestTrace && s.scope.includes("amqplib")).map((s) => s.kind).sort();
  assert.deepEqual(kinds, [4, 5], "a PRODUCER and a CONSUMER span from the amqplib instrumentation");
  await bus.close();
});

test("a message published later from stored headers (the outbox relay) joins the original trace", { skip: skipRabbit }, async () => {
  const bus = kit.createEventBus({ url: TEST_AMQP_URL, log, name: "bus-test" });
  assert.ok(await bus.waitConnected(10_000));
  let stored: Record<string, string> = {};
  const { requestTrace, got } = await roundTrip(bus, async (q) => {
    stored = kit.injectTraceHeaders({}); // written to the outbox row with the message
    // …later, from the relay, outside the request:
    setImmediate(() => void context.with(kit.untraced(() => context.active()), () => kit.withTraceContext(stored, () => bus.publish("", q, new Uint8Array([2]), { headers: stored }))));
  });
  assert.match(stored.traceparent ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  assert.equal(got.traceId, requestTrace);
  await bus.close();
});
