/**
 * Credentials that are renewed on disk, taken up without a restart: the mTLS certificate, key and
 * CA (cert-manager renews them in the mounted Secret) and the JWKS that verifies access tokens (a
 * key rotation adds the new key next to the old one, docs/operations.md).
 *
 * The files are polled every CREDENTIAL_RELOAD_INTERVAL_MS and compared by content (a Kubernetes
 * Secret volume swaps a symlink, so neither mtimes nor inotify on the file are reliable). A new set
 * is checked before it is taken: a certificate and key that do not belong together (one file
 * written, the other not yet) or an unreadable JWKS are skipped with one warning, and the previous
 * credentials stay in use until the files change again.
 *
 * A new certificate reaches NEW connections only: the server gets a new secure context
 * (setSecureContext), and each peer transport is replaced by one that dials with the new
 * certificate; connections open at that moment finish their calls and are closed once idle.
 */
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import type { Transport } from "@connectrpc/connect";
import type { JSONWebKeySet } from "jose";
import type { Logger } from "./logger.js";
import { describeFailure } from "./startup.js";

export interface WatchOptions {
  /** How often the files are read; 0 = never (the first value stays). */
  intervalMs: number;
  log: Logger;
}

/** A value made from files, replaced when the files change and the new value is good. */
export interface Reloading<T> {
  /** The value of the last good set of files. */
  current(): T;
  /** Called with each new value, after it replaced the old one. */
  onChange(fn: (value: T) => void): void;
  /** Reads the files now; true when they changed and a new value was taken. */
  check(): Promise<boolean>;
  /** Stops polling. */
  close(): void;
}

/**
 * `make()` builds the value from `files` (it reads them itself and throws when they are not a
 * usable set: at the start that error is the caller's); when their contents change, it runs again.
 */
export function watchFiles<T>(what: string, files: string[], make: () => T, opts: WatchOptions): Reloading<T> {
  // The contents first, then the value: a change in between is newer than `seen`, so it is taken.
  let seen: Buffer[] | undefined;
  try {
    seen = files.map((f) => readFileSync(f));
  } catch {
    seen = undefined; // make() names the file
  }
  let value = make();
  let running: Promise<boolean> | undefined;
  const listeners: ((value: T) => void)[] = [];

  async function check(): Promise<boolean> {
    let contents: Buffer[];
    try {
      contents = await Promise.all(files.map((f) => readFile(f)));
    } catch (err) {
      opts.log.debug({ err: describeFailure(err) }, `${what}: a file is not readable right now; trying again`);
      return false;
    }
    if (seen && contents.every((c, i) => c.equals(seen![i]!))) return false;
    seen = contents;
    let next: T;
    try {
      next = make();
    } catch (err) {
      opts.log.warn({ err: describeFailure(err) }, `${what} changed but is not usable yet; keeping the current one until the files change again`);
      return false;
    }
    value = next;
    opts.log.info({ files }, `${what} reloaded`);
    for (const fn of listeners) {
      try {
        fn(next);
      } catch (err) {
        opts.log.error({ err }, `${what}: applying the reloaded value failed`);
      }
    }
    return true;
  }

  const once = () => (running ??= check().finally(() => (running = undefined)));
  const timer = opts.intervalMs > 0 ? setInterval(() => void once(), opts.intervalMs) : undefined;
  timer?.unref();
  return {
    current: () => value,
    onChange: (fn) => void listeners.push(fn),
    check: async () => {
      await running;
      return once();
    },
    close: () => clearInterval(timer),
  };
}

/**
 * A transport whose calls go to `make()`'s transport, made again whenever `source` changes: new
 * calls open new connections with the new credentials, calls running on the old transport finish
 * there (its idle connections close after the transport's idle timeout).
 */
export function reloadingTransport(make: () => Transport, source?: Pick<Reloading<unknown>, "onChange">): Transport {
  let current = make();
  source?.onChange(() => (current = make()));
  return {
    unary: (method, signal, timeoutMs, header, input, contextValues) => current.unary(method, signal, timeoutMs, header, input, contextValues),
    stream: (method, signal, timeoutMs, header, input, contextValues) => current.stream(method, signal, timeoutMs, header, input, contextValues),
  };
}

/** JWT_PUBLIC_KEYS_FILE, read again when it changes (`read` checks it: readJwks). */
export function watchJwks(file: string, read: (file: string) => JSONWebKeySet, opts: WatchOptions): Reloading<JSONWebKeySet> {
  return watchFiles(`the JWKS ${file}`, [file], () => read(file), opts);
}
