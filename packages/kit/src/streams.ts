/**
 * Long-lived server streams end as soon as what allowed them ends, pushed by events, never found
 * by polling:
 *
 * - the session behind the stream is revoked (Logout, LogoutAll, RevokeSession, DeactivateUser,
 *   an admin's RevokeUserSession or RevokeUserSessions, a reused refresh token): `unauthenticated` with reason `session_ended`, the moment this
 *   process's revocation list hears of it (Revocations.onRevoked: its own revoke, Redis pub/sub,
 *   or a reload of the list);
 * - the server drains (SIGTERM): `unavailable`, "server is shutting down; reconnect", so gRPC and
 *   Connect clients retry elsewhere instead of taking it as a normal end.
 *
 * Every server-streaming implementation registered through `guardStreams` gets this on both of
 * the server's paths (the kit's fast path and connect-node's), whatever the protocol. The
 * implementation sees an abort signal that fires with the same reason, so it stops and releases
 * what it holds; the client gets the error at once, without waiting for the implementation.
 * What a service knows itself (e.g. chats: removal from the chat) it ends with its own error.
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { principalKey } from "./auth.js";
import { AppError } from "./errors.js";
import type { Logger } from "./logger.js";
import type { Revocations } from "./revocations.js";

export const SESSION_ENDED_MESSAGE = "this session has ended (logged out, revoked, or the user was deactivated): log in again, then reopen the stream";
export const SHUTTING_DOWN_MESSAGE = "server is shutting down; reconnect";

export interface StreamRegistry {
  /**
   * Registers a stream for the session `sessionId` (undefined: a public stream, ended only by the
   * drain). `end` is called once with the reason the stream must end. Returns the unregister function.
   */
  add(sessionId: string | undefined, end: (reason: AppError) => void): () => void;
  /** Streams registered now (for tests and metrics). */
  readonly size: number;
  /** Stops listening to the revocation list. */
  close(): void;
}

export interface StreamRegistryOptions {
  /** The process's revocation list; without it streams end only on drain. */
  revocations?: Revocations | undefined;
  /** Aborted when the server starts draining. */
  shutdownSignal: AbortSignal;
  log?: Logger | undefined;
}

export function createStreamRegistry(opts: StreamRegistryOptions): StreamRegistry {
  const { revocations, shutdownSignal, log } = opts;
  type Entry = (reason: AppError) => void;
  const bySession = new Map<string, Set<Entry>>();
  const all = new Set<Entry>();

  const endSession = (sid: string) => {
    const set = bySession.get(sid);
    if (!set) return;
    bySession.delete(sid);
    for (const end of set) end(new AppError("session_ended", SESSION_ENDED_MESSAGE));
  };
  const off = revocations?.onRevoked((ids) => {
    for (const sid of ids) endSession(sid);
  });
  const onShutdown = () => {
    for (const end of [...all]) end(new AppError("unavailable", SHUTTING_DOWN_MESSAGE));
  };
  shutdownSignal.addEventListener("abort", onShutdown, { once: true });

  return {
    add(sessionId, end) {
      let ended = false;
      const once: Entry = (reason) => {
        if (ended) return;
        ended = true;
        remove();
        end(reason);
      };
      const remove = () => {
        all.delete(once);
        if (sessionId === undefined) return;
        const set = bySession.get(sessionId);
        set?.delete(once);
        if (set?.size === 0) bySession.delete(sessionId);
      };
      if (shutdownSignal.aborted) {
        once(new AppError("unavailable", SHUTTING_DOWN_MESSAGE));
        return remove;
      }
      all.add(once);
      if (sessionId !== undefined) {
        let set = bySession.get(sessionId);
        if (!set) bySession.set(sessionId, (set = new Set()));
        set.add(once);
        // The call's token was checked before the stream was registered: a revocation heard in
        // between reached no listener, so ask once more now that the listener is in place.
        revocations?.isSessionRevoked(sessionId).then(
          (revoked) => revoked && once(new AppError("session_ended", SESSION_ENDED_MESSAGE)),
          (err: unknown) => {
            log?.warn({ err: String(err) }, "cannot re-check a new stream's session; ending it (fail closed)");
            once(new AppError("unavailable", "cannot check the session right now (revocation list unreachable); reopen the stream shortly"));
          },
        );
      }
      return () => {
        ended = true;
        remove();
      };
    },
    get size() {
      return all.size;
    },
    close() {
      off?.();
      shutdownSignal.removeEventListener("abort", onShutdown);
    },
  };
}

type StreamImpl = (req: unknown, ctx: HandlerContext) => AsyncIterable<unknown>;

/**
 * The handler context the implementation sees: the caller's, with a signal that also aborts when
 * the registry ends the stream. A Proxy, not a copy: the kit's context keeps state in private
 * fields, so every property is read from (and every method bound to) the real one.
 */
function withSignal(ctx: HandlerContext, signal: AbortSignal): HandlerContext {
  return new Proxy(ctx, {
    get(target, prop) {
      if (prop === "signal") return signal;
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
    set: (target, prop, value) => Reflect.set(target, prop, value, target),
  });
}

/** Runs a server-streaming implementation under the registry (see the file comment). */
export function guardStream(registry: StreamRegistry, impl: StreamImpl, req: unknown, ctx: HandlerContext): AsyncIterable<unknown> {
  return {
    [Symbol.asyncIterator]() {
      const stop = new AbortController();
      let reject: (reason: AppError) => void = () => {};
      const stopped = new Promise<never>((_, rej) => (reject = rej));
      stopped.catch(() => {}); // raced below; unobserved when the stream ends first
      const unregister = registry.add(ctx.values.get(principalKey)?.sessionId, (reason) => {
        stop.abort(reason);
        reject(reason);
      });
      const signal = AbortSignal.any([ctx.signal, stop.signal]);
      let it: AsyncIterator<unknown> | undefined;
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        unregister();
        // The implementation's signal has aborted (or it is done): let it run its finally blocks.
        void it?.return?.()?.catch(() => {});
      };
      const reason = () => (stop.signal.aborted ? (stop.signal.reason as AppError) : undefined);
      return {
        async next() {
          if (finished) return { done: true, value: undefined };
          try {
            it ??= impl(req, withSignal(ctx, signal))[Symbol.asyncIterator]();
            const r = await Promise.race([it.next(), stopped]);
            if (r.done) {
              finish();
              const why = reason();
              if (why) throw why; // the implementation ended because the registry aborted it
            }
            return r;
          } catch (err) {
            finish();
            throw reason() ?? err;
          }
        },
        async return(value?: unknown) {
          finish();
          return { done: true, value };
        },
      };
    },
  };
}

/**
 * A router that registers every service on `router` as usual, with each server-streaming method's
 * implementation run by guardStream. Wrap the router the modules see, so that no stream escapes.
 */
export function guardStreams(router: ConnectRouter, registry: StreamRegistry): ConnectRouter {
  const wrap = (method: DescMethod, fn: unknown, self: unknown): unknown => {
    if (typeof fn !== "function") return fn;
    const bound = (fn as (...a: unknown[]) => unknown).bind(self);
    if (method.methodKind !== "server_streaming") return bound;
    return (req: unknown, ctx: HandlerContext) => guardStream(registry, bound as StreamImpl, req, ctx);
  };
  return {
    get handlers() {
      return router.handlers;
    },
    service(service: DescService, impl: Record<string, unknown>, options?: unknown) {
      const wrapped: Record<string, unknown> = {};
      for (const method of service.methods) {
        const fn = impl[method.localName];
        if (fn !== undefined) wrapped[method.localName] = wrap(method, fn, impl);
      }
      return (router.service as (s: DescService, i: unknown, o?: unknown) => ConnectRouter)(service, wrapped, options);
    },
    rpc(method: DescMethod, impl: unknown, options?: unknown) {
      return (router.rpc as (m: DescMethod, i: unknown, o?: unknown) => ConnectRouter)(method, wrap(method, impl, undefined), options);
    },
  } as unknown as ConnectRouter;
}
