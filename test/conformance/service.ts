/**
 * The test-only ConformanceService (proto/crm/conformance/v1/conformance.proto) as a ServiceModule:
 * each request says how to answer. `watch(callId)` lets a test see a call from the server side:
 * when its handler started, how far a stream got (backpressure), and why its signal aborted
 * (cancellation, deadline).
 */
import { create, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { ServiceModule } from "@crm/kit";
import {
  AnswerSchema,
  CaseDetailSchema,
  ConformanceService,
  LookupResponseSchema,
  ResultSchema,
  UnaryResponseSchema,
  type Answer,
  type Failure,
  type Header,
  type ServerStreamResponseSchema,
} from "@crm/gen/crm/conformance/v1/conformance_pb";
import { BadRequestSchema } from "@crm/gen/google/rpc/error_details_pb";

/** What the server saw of one call, by its call_id. */
export interface CallWatch {
  /** Resolves when the handler starts. */
  started: Promise<void>;
  /** Resolves with the handler signal's abort reason as a ConnectError (when it aborts). */
  aborted: Promise<ConnectError>;
  /** Stream messages the handler has produced so far. */
  produced: number;
  /** True once the handler returned or threw. */
  finished: boolean;
}

interface WatchState extends CallWatch {
  start(signal: AbortSignal): void;
}

function newWatch(): WatchState {
  let started!: () => void;
  let aborted!: (e: ConnectError) => void;
  const w: WatchState = {
    started: new Promise<void>((r) => (started = r)),
    aborted: new Promise<ConnectError>((r) => (aborted = r)),
    produced: 0,
    finished: false,
    start(signal) {
      if (signal.aborted) aborted(ConnectError.from(signal.reason, Code.Canceled));
      else signal.addEventListener("abort", () => aborted(ConnectError.from(signal.reason, Code.Canceled)), { once: true });
      started();
    },
  };
  return w;
}

/** The error a Failure describes: code, message, BadRequest and CaseDetail details, metadata. */
export function failureError(f: Failure): ConnectError {
  const metadata = new Headers();
  for (const h of f.metadata) metadata.append(h.name, h.value);
  const details = [];
  if (f.violations.length) details.push({ desc: BadRequestSchema, value: { fieldViolations: f.violations.map(({ field, description }) => ({ field, description })) } });
  if (f.detail) details.push({ desc: CaseDetailSchema, value: { reason: f.detail.reason, number: f.detail.number } });
  return new ConnectError(f.message, f.code as Code, metadata, details);
}

/**
 * 1 MiB of fixed pseudo-random bytes (xorshift32): payloads are slices of it, so they do not
 * compress (a gzip answer is as large as a plain one, and backpressure shows) and are the same
 * in every run.
 */
const noise = (() => {
  const out = new Uint8Array(1 << 20);
  let x = 0x9e3779b9;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
})();

/** A payload of `size` bytes, different for each `seed`, so that truncation or mixing shows. */
export function payload(size: number, seed = 0): Uint8Array {
  const out = new Uint8Array(size);
  let at = (seed * 7919) % noise.length;
  for (let filled = 0; filled < size; ) {
    const n = Math.min(size - filled, noise.length - at);
    out.set(noise.subarray(at, at + n), filled);
    filled += n;
    at = 0;
  }
  return out;
}

/** Waits `ms`, or rejects with the signal's reason (a ConnectError) when it aborts first. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = () => (clearTimeout(timer), reject(ConnectError.from(signal.reason, Code.Canceled)));
    if (signal.aborted) return fail();
    const timer = setTimeout(() => (signal.removeEventListener("abort", fail), resolve()), ms);
    signal.addEventListener("abort", fail, { once: true });
  });
}

const putHeaders = (target: Headers, list: Header[]) => {
  for (const h of list) target.append(h.name, h.value);
};

export function conformanceModule() {
  const watches = new Map<string, WatchState>();
  const watchOf = (id: string) => {
    if (!id) return undefined;
    let w = watches.get(id);
    if (!w) watches.set(id, (w = newWatch()));
    return w;
  };

  async function answer<S extends typeof UnaryResponseSchema | typeof LookupResponseSchema>(schema: S, req: { answer?: Answer | undefined; payload: Uint8Array; callId: string; $unknown?: unknown[] | undefined }, ctx: HandlerContext): Promise<MessageShape<S>> {
    const w = watchOf(req.callId);
    w?.start(ctx.signal);
    try {
      const a = req.answer ?? create(AnswerSchema);
      putHeaders(ctx.responseHeader, a.headers);
      putHeaders(ctx.responseTrailer, a.trailers);
      if (a.delayMs > 0) await pause(a.delayMs, ctx.signal);
      if (a.failure) throw failureError(a.failure);
      const timeout = ctx.timeoutMs();
      const result = create(ResultSchema, {
        payload: payload(a.responseSize),
        requestSize: req.payload.length,
        unknownFields: req.$unknown?.length ?? 0,
        timeoutMs: BigInt(timeout === undefined ? -1 : Math.max(0, Math.round(timeout))),
        echoedHeaders: a.echoHeaders.map((name) => ({ name, value: ctx.requestHeader.get(name) ?? "" })),
        httpMethod: ctx.requestMethod,
        protocol: ctx.protocolName,
      });
      const response = create(schema as typeof UnaryResponseSchema, { result }) as MessageShape<S>;
      // wire type 0 (varint) field 999 = 1: a field this schema does not know
      if (a.unknownField) response.$unknown = [{ no: 999, wireType: 0, data: new Uint8Array([1]) }];
      return response;
    } finally {
      if (w) w.finished = true;
    }
  }

  const module: ServiceModule = {
    name: "conformance",
    services: [ConformanceService],
    publicMethods: ConformanceService.methods.map((m) => `/${ConformanceService.typeName}/${m.name}`),
    routes(router) {
      router.service(ConformanceService, {
        unary: (req, ctx) => answer(UnaryResponseSchema, req, ctx),
        lookup: (req, ctx) => answer(LookupResponseSchema, req, ctx),
        async *serverStream(req, ctx) {
          const w = watchOf(req.callId);
          w?.start(ctx.signal);
          try {
            putHeaders(ctx.responseHeader, req.headers);
            putHeaders(ctx.responseTrailer, req.trailers);
            for (let i = 0; i < req.count; i++) {
              if (req.failure && i === req.failAfter) throw failureError(req.failure);
              if (req.delayMs > 0) await pause(req.delayMs, ctx.signal);
              if (w) w.produced = i + 1;
              const message: MessageInitShape<typeof ServerStreamResponseSchema> = { index: i, payload: payload(req.messageSize, i) };
              yield message;
            }
            if (req.failure) throw failureError(req.failure);
          } finally {
            if (w) w.finished = true;
          }
        },
      });
    },
  };
  return {
    module,
    /** The server-side view of the call named `callId` (made on first ask, by the test or the handler). */
    watch: (callId: string): CallWatch => watchOf(callId)!,
  };
}
