/**
 * A service's unary and server-streaming implementations, called through Connect interceptors
 * without connect-node's per-call machinery (async iterables, abort signals and web Headers made
 * up front). `UnaryMethods` records what a module registers on its router (connect's own
 * createServiceImplSpec says which implementation serves which method); the HTTP side (serve.ts)
 * and the kit's in-process peers call them.
 *
 * A call's handler context travels to the implementation in the request's context values, which
 * every interceptor passes on (it may copy the request; it keeps its contextValues).
 */
import { create, isMessage, type DescMessage, type DescMethod, type DescMethodServerStreaming, type DescMethodUnary, type DescService, type MessageShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextKey,
  createMethodImplSpec,
  createServiceImplSpec,
  type ConnectRouter,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type MethodImpl,
  type MethodImplSpec,
  type ServiceImpl,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import type { UniversalHandlerOptions } from "@connectrpc/connect/protocol";

/** What an interceptor wraps: a unary or streaming call. */
export type AnyFn = Parameters<Interceptor>[0];

/** A unary method with its implementation behind the interceptors. */
export interface UnaryEntry {
  method: DescMethodUnary;
  call: AnyFn;
}

/** A server-streaming method with its implementation behind the interceptors. */
export interface StreamEntry {
  method: DescMethodServerStreaming;
  call: AnyFn;
}

/** The fast path's handler context of a call, for the implementation behind the interceptors. */
const callKey = createContextKey<CallContext | undefined>(undefined, { description: "the fast path's handler context" });

const lost = () => new ConnectError("internal error: the call lost its handler context on the way through the interceptors", Code.Internal);

/**
 * The controllers of the calls each link signal (the server's shutdown signal) must abort, behind
 * ONE listener on it. A listener per call would make every call's start and end walk the signal's
 * whole listener list (an EventTarget scans it for a duplicate on add and for the entry on remove):
 * O(open calls) per call, and every open stream is one (bench/README.md, issue 21).
 */
const linked = new WeakMap<AbortSignal, Set<AbortController>>();
function link(s: AbortSignal, c: AbortController) {
  let calls = linked.get(s);
  if (!calls) {
    const all = (calls = new Set());
    linked.set(s, all);
    s.addEventListener("abort", () => {
      for (const x of [...all]) x.abort(s.reason);
    }, { once: true });
  }
  const set = calls;
  set.add(c);
  c.signal.addEventListener("abort", () => set.delete(c), { once: true });
}

/** HandlerContext with the costly parts (abort signal, response headers) made on first use. */
export class CallContext implements HandlerContext {
  readonly requestMethod = "POST";
  #controller: AbortController | undefined;
  #header: Headers | undefined;
  #trailer: Headers | undefined;
  readonly #deadline: number | undefined;
  readonly #links: readonly (AbortSignal | undefined)[];
  constructor(
    readonly method: DescMethod,
    readonly protocolName: string,
    readonly url: string,
    readonly requestHeader: Headers,
    readonly values: ContextValues,
    timeoutMs: number | undefined,
    links: readonly (AbortSignal | undefined)[],
  ) {
    this.#deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    this.#links = links;
    values.set(callKey, this);
  }
  get service(): DescService {
    return this.method.parent;
  }
  get responseHeader(): Headers {
    return (this.#header ??= new Headers());
  }
  get responseTrailer(): Headers {
    return (this.#trailer ??= new Headers());
  }
  /** The response headers, or undefined when nothing made them (none to send). */
  get headerIfAny(): Headers | undefined {
    return this.#header;
  }
  /** The response trailers, or undefined when nothing made them (none to send). */
  get trailerIfAny(): Headers | undefined {
    return this.#trailer;
  }
  readonly timeoutMs = (): number | undefined => (this.#deadline === undefined ? undefined : this.#deadline - Date.now());
  get signal(): AbortSignal {
    if (!this.#controller) {
      const c = (this.#controller = new AbortController());
      for (const s of this.#links) {
        if (!s) continue;
        if (s.aborted) c.abort(s.reason);
        else link(s, c);
      }
      const left = this.timeoutMs();
      if (left !== undefined) {
        const t = setTimeout(() => c.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), Math.max(0, left));
        c.signal.addEventListener("abort", () => clearTimeout(t), { once: true });
      }
    }
    return this.#controller.signal;
  }
  /** Ends the call: a signal handed out aborts, as connect-node's does when a call completes. */
  done(reason?: unknown) {
    if (this.#controller && !this.#controller.signal.aborted) this.#controller.abort(reason ?? new ConnectError("the call completed", Code.Canceled));
  }
}

/**
 * The request the server-side interceptors see. `signal` is an accessor on the prototype (an
 * AbortController is made only when something asks), so a copy must name it.
 */
class ServerUnaryRequest implements UnaryRequest {
  readonly stream = false;
  readonly requestMethod = "POST";
  readonly service: DescService;
  readonly url: string;
  readonly header: Headers;
  readonly contextValues: ContextValues;
  constructor(
    readonly method: DescMethodUnary,
    private readonly ctx: CallContext,
    readonly message: MessageShape<DescMessage>,
  ) {
    this.service = method.parent;
    this.url = ctx.url;
    this.header = ctx.requestHeader;
    this.contextValues = ctx.values;
  }
  get signal(): AbortSignal {
    return this.ctx.signal;
  }
}

/** The server-streaming counterpart of ServerUnaryRequest: one request message. */
class ServerStreamRequest implements StreamRequest {
  readonly stream = true;
  readonly requestMethod = "POST";
  readonly service: DescService;
  readonly url: string;
  readonly header: Headers;
  readonly contextValues: ContextValues;
  readonly message: AsyncIterable<MessageShape<DescMessage>>;
  constructor(
    readonly method: DescMethodServerStreaming,
    private readonly ctx: CallContext,
    message: MessageShape<DescMessage>,
  ) {
    this.service = method.parent;
    this.url = ctx.url;
    this.header = ctx.requestHeader;
    this.contextValues = ctx.values;
    this.message = (async function* () {
      yield message;
    })();
  }
  get signal(): AbortSignal {
    return this.ctx.signal;
  }
}

/**
 * A unary implementation's response. Its headers and trailers are the context's, made on first use:
 * most calls set none, and a web Headers object costs more than the rest of the call. They are
 * accessors on the prototype, so a copy must name them: `{ ...res }` would drop them.
 */
class Answer implements UnaryResponse {
  readonly stream = false;
  readonly service: DescService;
  constructor(
    readonly method: DescMethodUnary,
    readonly ctx: CallContext,
    readonly message: MessageShape<DescMessage>,
  ) {
    this.service = method.parent;
  }
  get header(): Headers {
    return this.ctx.responseHeader;
  }
  get trailer(): Headers {
    return this.ctx.responseTrailer;
  }
}

/** A response's headers or trailers, or undefined when nothing made them (none to send). */
export function headersOf(res: UnaryResponse, which: "header" | "trailer"): Headers | undefined {
  if (!(res instanceof Answer)) return res[which];
  return which === "header" ? res.ctx.headerIfAny : res.ctx.trailerIfAny;
}

/** Wraps `base` in `interceptors`, the first outermost (Connect's order). */
export function withInterceptors(interceptors: readonly Interceptor[], base: AnyFn): AnyFn {
  return interceptors.reduceRight<AnyFn>((next, interceptor) => interceptor(next), base);
}

/** `res` as the unary response of `method`; an interceptor that answered with something else is a bug (internal). */
export function unaryResponse<I extends DescMessage, O extends DescMessage>(res: UnaryResponse | StreamResponse, method: DescMethodUnary<I, O>): UnaryResponse<I, O> {
  if (isUnaryResponseOf(res, method)) return res;
  throw new ConnectError(`internal error: ${method.parent.typeName}.${method.name} answered with something other than its unary response`, Code.Internal);
}

function isUnaryResponseOf<I extends DescMessage, O extends DescMessage>(res: UnaryResponse | StreamResponse, method: DescMethodUnary<I, O>): res is UnaryResponse<I, O> {
  return !res.stream && isMessage(res.message, method.output);
}

/** A router that registers on `router` as usual and also records each unary and server-streaming implementation in `methods`. */
class RecordingRouter implements ConnectRouter {
  constructor(
    private readonly router: ConnectRouter,
    private readonly methods: UnaryMethods,
  ) {}
  get handlers() {
    return this.router.handlers;
  }
  service<T extends DescService>(service: T, implementation: Partial<ServiceImpl<T>>, options?: Partial<UniversalHandlerOptions>): this {
    for (const spec of Object.values(createServiceImplSpec(service, implementation).methods)) this.methods.add(spec);
    this.router.service(service, implementation, options);
    return this;
  }
  rpc<M extends DescMethod>(method: M, impl: MethodImpl<M>, options?: Partial<UniversalHandlerOptions>): this {
    this.methods.add(createMethodImplSpec(method, impl));
    this.router.rpc(method, impl, options);
    return this;
  }
}

/** Records the unary and server-streaming implementations registered on a router and calls them through `interceptors`. */
export class UnaryMethods {
  readonly byPath = new Map<string, UnaryEntry>();
  readonly streamsByPath = new Map<string, StreamEntry>();
  constructor(private readonly interceptors: readonly Interceptor[]) {}

  /** A router that registers on `router` as usual and also records every unary and server-streaming implementation here. */
  recording(router: ConnectRouter): ConnectRouter {
    return new RecordingRouter(router, this);
  }

  /** Records one implementation (client and bidi streams are left to connect-node). */
  add(spec: MethodImplSpec) {
    const path = `/${spec.method.parent.typeName}/${spec.method.name}`;
    if (spec.kind === "unary") {
      const { method, impl } = spec;
      const base: AnyFn = async (req) => {
        const ctx = req.contextValues.get(callKey);
        if (!ctx || req.stream) throw lost();
        const out = await impl(req.message, ctx);
        return new Answer(method, ctx, isMessage(out, method.output) ? out : create(method.output, out));
      };
      this.byPath.set(path, { method, call: withInterceptors(this.interceptors, base) });
    } else if (spec.kind === "server_streaming") {
      const { method, impl } = spec;
      const base: AnyFn = async (req) => {
        const ctx = req.contextValues.get(callKey);
        if (!ctx || !req.stream) throw lost();
        let input: MessageShape<DescMessage> | undefined;
        for await (const one of req.message) input = one;
        if (input === undefined) throw new ConnectError("protocol error: missing input message for server-streaming method", Code.Unimplemented);
        const out = impl(input, ctx);
        const schema = method.output;
        async function* normalized() {
          for await (const o of out) yield isMessage(o, schema) ? o : create(schema, o);
        }
        return { stream: true, service: method.parent, method, header: ctx.responseHeader, trailer: ctx.responseTrailer, message: normalized() };
      };
      this.streamsByPath.set(path, { method, call: withInterceptors(this.interceptors, base) });
    }
  }

  /** Calls `entry` with a decoded message; the response's headers are the context's unless an interceptor replaced them. */
  async invoke(entry: UnaryEntry, ctx: CallContext, message: MessageShape<DescMessage>): Promise<UnaryResponse> {
    return unaryResponse(await entry.call(new ServerUnaryRequest(entry.method, ctx, message)), entry.method);
  }

  /** Calls a server-streaming `entry` with its one decoded request message. */
  async invokeStream(entry: StreamEntry, ctx: CallContext, message: MessageShape<DescMessage>): Promise<StreamResponse> {
    const res = await entry.call(new ServerStreamRequest(entry.method, ctx, message));
    if (!res.stream) throw new ConnectError(`internal error: ${entry.method.parent.typeName}.${entry.method.name} answered a stream with a unary response`, Code.Internal);
    return res;
  }
}
