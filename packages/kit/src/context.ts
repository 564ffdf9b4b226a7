/**
 * Per-call context carried through async code with AsyncLocalStorage: the request id and the
 * caller's credentials, so a handler's outgoing peer calls forward them without wiring.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Principal } from "./auth.js";

export interface CallContext {
  requestId: string;
  /** The caller's Authorization header value ("Bearer …"), forwarded on peer calls. */
  authorization?: string | undefined;
  /** W3C traceparent of the incoming call, forwarded on peer calls. */
  traceparent?: string | undefined;
  /** The verified caller's tenant and user (set by the auth interceptor), for log lines. */
  companyId?: string | undefined;
  userId?: string | undefined;
  /** The verified caller (auth interceptor); lets in-process peers skip verifying the same token again. */
  principal?: Principal | undefined;
}

export const callContext = new AsyncLocalStorage<CallContext>();

export function currentCall(): CallContext | undefined {
  return callContext.getStore();
}

/** Wraps an async iterable so that every step runs inside `store` (async generators resume in the caller's context). */
export function iterateIn<T>(store: CallContext, source: AsyncIterable<T>): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      return {
        next: (...args: [] | [unknown]) => callContext.run(store, () => it.next(...args)),
        return: (value?: unknown) => callContext.run(store, () => it.return?.(value as T) ?? Promise.resolve({ done: true, value: undefined as T })),
        throw: (err?: unknown) => callContext.run(store, () => it.throw?.(err) ?? Promise.reject(err)),
      };
    },
  };
}
