/**
 * RPC spans (node:http2 is not auto-instrumented, so Connect calls are traced here):
 * - server side: one SERVER span per RPC, a child of the caller's W3C `traceparent` when there is
 *   one, made the active context for the handler (so pg/ioredis/amqplib spans and outgoing calls
 *   become its children);
 * - client side: one CLIENT span per outgoing peer call, whose context travels in `traceparent`.
 * With tracing off (no OTLP endpoint) both interceptors pass calls straight through, and the kit
 * still forwards the incoming `traceparent` unchanged (peers.ts), so a gateway's trace id reaches
 * every log line.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace, type Context, type Span, type TextMapGetter, type TextMapSetter } from "@opentelemetry/api";
import { Code, ConnectError, type Interceptor, type StreamRequest, type StreamResponse, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";

type AnyFn = Parameters<Interceptor>[0];
import { currentCall } from "./context.js";

let enabled = false;

export function setTracingEnabled(on: boolean) {
  enabled = on;
}

export function tracingEnabled(): boolean {
  return enabled;
}

const tracer = () => trace.getTracer("crm-rpc");

const getter: TextMapGetter<Headers> = {
  keys: (h) => [...h.keys()],
  get: (h, key) => h.get(key) ?? undefined,
};
const setter: TextMapSetter<Headers> = {
  set: (h, key, value) => h.set(key, value),
};

/** Connect's wire name of a code: "invalid_argument", "not_found"… */
export const codeName = (code: Code): string => Code[code]?.replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase()) ?? "unknown";

const codeOf = (err: unknown): Code => (err instanceof ConnectError ? err.code : Code.Unknown);

/** Server codes that mean the server failed (the rest are the caller's problem: the span stays unset). */
const serverFaults = new Set([Code.Unknown, Code.Internal, Code.Unavailable, Code.DataLoss, Code.DeadlineExceeded, Code.Unimplemented]);

function finish(span: Span, err: unknown, kind: "server" | "client") {
  if (err === undefined) {
    span.setAttribute("rpc.grpc.status_code", 0);
  } else {
    const code = codeOf(err);
    span.setAttribute("rpc.grpc.status_code", code as number);
    span.setAttribute("rpc.connect_rpc.error_code", codeName(code));
    if (kind === "client" || serverFaults.has(code)) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    }
  }
  span.end();
}

/** Wraps a response stream so it iterates in `ctx` and ends `span` when it finishes. */
function traced<T>(ctx: Context, span: Span, source: AsyncIterable<T>, kind: "server" | "client"): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      let done = false;
      const end = (err?: unknown) => {
        if (done) return;
        done = true;
        finish(span, err, kind);
      };
      return {
        next: async (...args: [] | [unknown]) => {
          try {
            const r = await context.with(ctx, () => it.next(...args));
            if (r.done) end();
            return r;
          } catch (err) {
            end(err);
            throw err;
          }
        },
        return: async (value?: unknown) => {
          end();
          return context.with(ctx, () => it.return?.(value as T) ?? Promise.resolve({ done: true as const, value: undefined as T }));
        },
        throw: async (err?: unknown) => {
          end(err);
          return context.with(ctx, () => it.throw?.(err) ?? Promise.reject(err));
        },
      };
    },
  };
}

function attributes(req: { service: { typeName: string }; method: { name: string } }) {
  return { "rpc.system": "connect_rpc", "rpc.service": req.service.typeName, "rpc.method": req.method.name };
}

/** Server interceptor: outermost, so the span covers every other interceptor and the handler. */
export function tracingServerInterceptor(): Interceptor {
  // Not async when tracing is off: the call goes straight through without a promise of its own.
  return (next) => (req) => (enabled ? serverSpan(next, req) : next(req));
}

async function serverSpan(next: AnyFn, req: UnaryRequest | StreamRequest): Promise<UnaryResponse | StreamResponse> {
  const parent = propagation.extract(ROOT_CONTEXT, req.header, getter);
  const span = tracer().startSpan(`${req.service.typeName}/${req.method.name}`, { kind: SpanKind.SERVER, attributes: attributes(req) }, parent);
  const ctx = trace.setSpan(parent, span);
  // The handler's own traceparent: what the kit's call context forwards and logs.
  const carrier = new Headers();
  propagation.inject(ctx, carrier, setter);
  const tp = carrier.get("traceparent");
  if (tp) req.header.set("traceparent", tp);
  return runIn(ctx, span, "server", next, req);
}

/** Client interceptor: a span per outgoing call; its context goes out as `traceparent`. Put it first. */
export function tracingClientInterceptor(): Interceptor {
  return (next) => (req) => (enabled ? clientSpan(next, req) : next(req));
}

async function clientSpan(next: AnyFn, req: UnaryRequest | StreamRequest): Promise<UnaryResponse | StreamResponse> {
  const parent = context.active();
  const span = tracer().startSpan(`${req.service.typeName}/${req.method.name}`, { kind: SpanKind.CLIENT, attributes: attributes(req) }, parent);
  const ctx = trace.setSpan(parent, span);
  propagation.inject(ctx, req.header, setter);
  return runIn(ctx, span, "client", next, req);
}

/** Runs the call in `ctx` and ends `span` with its outcome (a stream's when the stream ends). */
async function runIn(ctx: Context, span: Span, kind: "server" | "client", next: AnyFn, req: UnaryRequest | StreamRequest): Promise<UnaryResponse | StreamResponse> {
  try {
    const res = await context.with(ctx, () => next(req));
    if (res.stream) return { ...res, message: traced(ctx, span, res.message, kind) };
    finish(span, undefined, kind);
    return res;
  } catch (err) {
    finish(span, err, kind);
    throw err;
  }
}

/** trace_id and span_id for log lines: the active span's, else the incoming traceparent's. */
export function traceIds(traceparent?: string): { trace_id?: string; span_id?: string } {
  if (enabled) {
    const sc = trace.getSpanContext(context.active());
    if (sc && trace.isSpanContextValid(sc)) return { trace_id: sc.traceId, span_id: sc.spanId };
  }
  if (traceparent) {
    const m = /^[\da-f]{2}-([\da-f]{32})-([\da-f]{16})-[\da-f]{2}/.exec(traceparent);
    if (m) return { trace_id: m[1]!, span_id: m[2]! };
  }
  return {};
}

/** Runs `fn` outside any trace (and outside the caller's span): background work started from a request. */
export function untraced<T>(fn: () => T): T {
  return enabled ? context.with(ROOT_CONTEXT, fn) : fn();
}

/**
 * The current W3C trace context as message headers (`traceparent`, `tracestate`), for RabbitMQ
 * messages and outbox rows. With tracing off it is the incoming call's traceparent (so log lines
 * of the consumer still carry the request's trace id); nothing outside a call.
 */
export function injectTraceHeaders<H extends Record<string, string>>(headers: H): H {
  if (headers.traceparent) return headers;
  if (enabled) {
    propagation.inject(context.active(), headers, { set: (h, k, v) => ((h as Record<string, string>)[k] = v) });
  } else {
    const tp = currentCall()?.traceparent;
    if (tp) (headers as Record<string, string>).traceparent = tp;
  }
  return headers;
}

const recordGetter: TextMapGetter<Record<string, unknown>> = {
  keys: (h) => Object.keys(h),
  get: (h, k) => {
    const v = h[k];
    return typeof v === "string" ? v : Buffer.isBuffer(v) ? v.toString() : undefined;
  },
};

/**
 * Runs `fn` in the trace context carried by `headers` (e.g. the outbox relay publishing a row
 * written during a request: the publish span, and the consumer after it, join that request's trace).
 */
export function withTraceContext<T>(headers: Record<string, unknown> | undefined, fn: () => T): T {
  if (!enabled || !headers?.traceparent) return fn();
  return context.with(propagation.extract(ROOT_CONTEXT, headers, recordGetter), fn);
}

/** Runs a message consumer in the producer's trace: a CONSUMER span, child of the message's traceparent. */
export async function consumeInTrace<T>(name: string, headers: Record<string, unknown> | undefined, attrs: Record<string, string | number>, fn: () => Promise<T>): Promise<T> {
  if (!enabled) return fn();
  const parent = propagation.extract(ROOT_CONTEXT, headers ?? {}, recordGetter);
  const span = tracer().startSpan(name, { kind: SpanKind.CONSUMER, attributes: attrs }, parent);
  try {
    const out = await context.with(trace.setSpan(parent, span), fn);
    span.end();
    return out;
  } catch (err) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    span.end();
    throw err;
  }
}
