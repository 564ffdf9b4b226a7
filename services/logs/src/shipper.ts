/**
 * Ships records to Loki in batches, never blocking the callers:
 * - `push()` only appends to a bounded in-memory buffer and returns;
 * - a batch goes out when LOKI_BATCH_ENTRIES / LOKI_BATCH_BYTES are waiting, or LOKI_FLUSH_MS after
 *   the first waiting entry; one push is in flight at a time (order is kept);
 * - a failed push (network error, timeout, 429, 5xx) goes back to the front of the buffer and is
 *   retried with exponential backoff and jitter (Retry-After honoured);
 * - when the buffer is over its bounds the OLDEST entries are dropped, counted, and a warning is
 *   logged (at once for the first drop, then at most every 10 s with the running count);
 * - a 4xx other than 429 means Loki refuses the data itself (too old, too large…): that batch is
 *   dropped with a warning instead of being retried forever.
 * Without LOKI_URL the records go to this process's log instead (`processLogSink`).
 */
import { Counter } from "prom-client";
import { metricsRegistry, watchQueueDepth, type Logger } from "@crm/kit";
import { lokiPayload, type PayloadOptions } from "./loki.js";
import type { LogRecord } from "./validation.js";

export interface Sink {
  push(records: LogRecord[]): void;
  /**
   * Like push, and resolves once every record is shipped (rejects naming why one was dropped).
   * Records pushed so are sent soon (within 100 ms or LOKI_FLUSH_MS, the shorter), not held for a full batch.
   */
  pushAndWait(records: LogRecord[]): Promise<void>;
  /** Ships what is buffered (bounded by `timeoutMs`); used on shutdown and in tests. */
  flush(timeoutMs?: number): Promise<void>;
  close(timeoutMs?: number): Promise<void>;
}

export interface ShipperStats {
  buffered: number;
  bufferedBytes: number;
  shipped: number;
  pushes: number;
  failedPushes: number;
  dropped: number;
  rejected: number;
}

export interface ShipperOptions extends PayloadOptions {
  url: string;
  tenant?: string | undefined;
  batchEntries: number;
  batchBytes: number;
  flushMs: number;
  bufferEntries: number;
  bufferBytes: number;
  timeoutMs: number;
  retryFirstMs: number;
  retryMaxMs: number;
  log: Logger;
  fetch?: typeof fetch;
  random?: () => number;
}

const shippedTotal = new Counter({ name: "crm_logs_shipped_total", help: "Log entries Loki accepted.", registers: [metricsRegistry] });
const droppedTotal = new Counter({ name: "crm_logs_dropped_total", help: "Log entries dropped, by reason (buffer_full, rejected).", labelNames: ["reason"] as const, registers: [metricsRegistry] });
const pushFailures = new Counter({ name: "crm_logs_push_failures_total", help: "Pushes to Loki that failed and will be retried.", registers: [metricsRegistry] });

class RetryableError extends Error {
  constructor(message: string, readonly retryAfterMs?: number) {
    super(message);
  }
}

/** Loki's push URL and headers from LOKI_URL (credentials in the URL become Basic auth). */
export function pushTarget(base: string, tenant?: string): { url: string; headers: Record<string, string> } {
  const u = new URL(base);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (u.username || u.password) {
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString("base64")}`;
    u.username = "";
    u.password = "";
  }
  if (tenant) headers["x-scope-orgid"] = tenant;
  if (!u.pathname.endsWith("/loki/api/v1/push")) u.pathname = `${u.pathname.replace(/\/+$/, "")}/loki/api/v1/push`;
  return { url: u.toString(), headers };
}

export function createLokiShipper(o: ShipperOptions): Sink & { readonly stats: ShipperStats } {
  const doFetch = o.fetch ?? fetch;
  const random = o.random ?? Math.random;
  const target = pushTarget(o.url, o.tenant);
  const buffer: LogRecord[] = [];
  const stats: ShipperStats = { buffered: 0, bufferedBytes: 0, shipped: 0, pushes: 0, failedPushes: 0, dropped: 0, rejected: 0 };
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let failures = 0;
  let backoffUntil = 0;
  let closed = false;
  let droppedSinceWarn = 0;
  let lastDropWarn = 0;
  const waiters = new Set<() => void>();
  watchQueueDepth("logs.loki_buffer", () => buffer.length);

  const sync = () => {
    stats.buffered = buffer.length;
    if (buffer.length === 0) for (const w of waiters) w();
  };

  const enforceBounds = () => {
    let n = 0;
    while (buffer.length > o.bufferEntries || (stats.bufferedBytes > o.bufferBytes && buffer.length > 0)) {
      const dropped = buffer.shift()!;
      stats.bufferedBytes -= dropped.bytes;
      dropped.settled?.("the log buffer was full (Loki is slow or down)");
      n++;
    }
    if (n === 0) return;
    stats.dropped += n;
    droppedSinceWarn += n;
    droppedTotal.inc({ reason: "buffer_full" }, n);
    const now = Date.now();
    if (lastDropWarn === 0 || now - lastDropWarn >= 10_000) {
      o.log.warn(
        { dropped: droppedSinceWarn, droppedTotal: stats.dropped, buffered: buffer.length, failedPushes: stats.failedPushes, loki: target.url },
        "log buffer full (Loki is slow or down): oldest entries dropped",
      );
      lastDropWarn = now;
      droppedSinceWarn = 0;
    }
  };

  let dueAt = 0;
  /** Wakes the pump in `ms`, unless it is already due sooner. */
  const arm = (ms: number) => {
    if (timer && dueAt <= Date.now() + ms) return;
    clearTimeout(timer);
    dueAt = Date.now() + ms;
    timer = setTimeout(() => {
      timer = undefined;
      void pump();
    }, ms);
    timer.unref();
  };

  const takeBatch = (): LogRecord[] => {
    let n = 0;
    let bytes = 0;
    while (n < buffer.length && n < o.batchEntries && (n === 0 || bytes + buffer[n]!.bytes <= o.batchBytes)) bytes += buffer[n++]!.bytes;
    stats.bufferedBytes -= bytes;
    return buffer.splice(0, n);
  };

  /** True when Loki took the batch, false when it refused it for good. */
  async function send(batch: LogRecord[]): Promise<boolean> {
    stats.pushes++;
    let res: Response;
    try {
      res = await doFetch(target.url, {
        method: "POST",
        headers: target.headers,
        body: JSON.stringify(lokiPayload(batch, o)),
        signal: AbortSignal.timeout(o.timeoutMs),
      });
    } catch (err) {
      throw new RetryableError(`Loki did not answer: ${err instanceof Error ? err.message : String(err)}`);
    }
    const body = res.status >= 300 ? (await res.text().catch(() => "")).slice(0, 300) : (await res.arrayBuffer().catch(() => undefined), "");
    if (res.status < 300) return true;
    if (res.status === 429 || res.status >= 500) {
      const ra = Number(res.headers.get("retry-after"));
      throw new RetryableError(`Loki answered ${res.status}: ${body}`, Number.isFinite(ra) && ra > 0 ? ra * 1000 : undefined);
    }
    // Loki refuses these entries themselves: retrying cannot help.
    for (const r of batch) r.settled?.(`Loki refused them (${res.status})`);
    stats.rejected += batch.length;
    droppedTotal.inc({ reason: "rejected" }, batch.length);
    o.log.warn({ status: res.status, entries: batch.length, loki: target.url, answer: body }, "Loki refused a batch of log entries; they were dropped");
    return false;
  }

  const full = () => buffer.length >= o.batchEntries || stats.bufferedBytes >= o.batchBytes;

  /** Sends batches while there is a full one (or `all`), one in flight at a time. */
  function pump(all = false): Promise<void> {
    if (inFlight) return inFlight;
    if (buffer.length === 0) return Promise.resolve();
    const wait = backoffUntil - Date.now();
    if (wait > 0 && !all) {
      arm(wait);
      return Promise.resolve();
    }
    clearTimeout(timer);
    timer = undefined;
    inFlight = (async () => {
      while (buffer.length > 0) {
        const batch = takeBatch();
        sync();
        try {
          if (await send(batch)) {
            stats.shipped += batch.length;
            shippedTotal.inc(batch.length);
            for (const r of batch) r.settled?.();
          }
          failures = 0;
          backoffUntil = 0;
        } catch (err) {
          // Back to the front, then the bounds decide what survives (the oldest go first).
          buffer.unshift(...batch);
          for (const r of batch) stats.bufferedBytes += r.bytes;
          stats.failedPushes++;
          pushFailures.inc();
          failures++;
          const backoff = Math.min(o.retryMaxMs, o.retryFirstMs * 2 ** (failures - 1)) * (0.5 + random() * 0.5);
          const delay = Math.max(backoff, (err as RetryableError).retryAfterMs ?? 0);
          backoffUntil = Date.now() + delay;
          if (failures === 1 || failures % 10 === 0) o.log.warn({ err: (err as Error).message, failures, retryInMs: Math.round(delay), buffered: buffer.length }, "pushing logs to Loki failed; will retry");
          enforceBounds();
          sync();
          if (!closed) arm(delay);
          return;
        }
        sync();
        if (!all && !full()) break;
      }
      if (buffer.length > 0 && !closed) arm(o.flushMs);
    })().finally(() => (inFlight = undefined));
    return inFlight;
  }

  async function flush(timeoutMs = o.timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (buffer.length > 0 || inFlight) {
      if (Date.now() >= deadline) return;
      if (inFlight) await inFlight;
      else {
        const before = stats.failedPushes;
        await pump(true);
        if (stats.failedPushes > before) {
          // Loki is failing: wait for the backoff (or the deadline), then try again.
          await new Promise((r) => setTimeout(r, Math.max(0, Math.min(backoffUntil, deadline) - Date.now())));
        }
      }
    }
  }

  const sink: Sink & { readonly stats: ShipperStats } = {
    stats,
    push(records) {
      if (records.length === 0) return;
      for (const r of records) {
        buffer.push(r);
        stats.bufferedBytes += r.bytes;
      }
      enforceBounds();
      sync();
      if (full()) void pump();
      else arm(o.flushMs);
    },
    flush,
    pushAndWait(records) {
      const done = Promise.all(records.map((r) => new Promise<void>((resolve, reject) => (r.settled = (why) => (why ? reject(new Error(why)) : resolve())))));
      sink.push(records);
      if (!full()) arm(Math.min(100, o.flushMs));
      return done.then(() => {});
    },
    async close(timeoutMs) {
      await flush(timeoutMs);
      closed = true;
      clearTimeout(timer);
      if (buffer.length > 0) o.log.warn({ lost: buffer.length, loki: target.url }, "shutting down with log entries Loki did not take");
      for (const r of buffer.splice(0)) r.settled?.("the logs service shut down before Loki took them");
    },
  };
  return sink;
}

/** Without LOKI_URL: every record becomes a line of this process's log (pino JSON on stdout). */
export function processLogSink(log: Logger): Sink {
  const sink: Sink = {
    push(records) {
      for (const r of records) {
        const fields: Record<string, unknown> = { shipped: true, name: r.name };
        if (r.traceId) fields.trace_id = r.traceId;
        if (r.companyId) fields.company_id = r.companyId;
        if (r.userId) fields.user_id = r.userId;
        if (Object.keys(r.attributes).length) fields.attrs = r.attributes;
        fields.at = new Date(Number(r.timeNs / 1_000_000n)).toISOString();
        log[r.level](fields, r.message);
      }
    },
    async pushAndWait(records) {
      sink.push(records);
    },
    flush: async () => {},
    close: async () => {},
  };
  return sink;
}
