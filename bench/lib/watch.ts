/**
 * WatchRecords watchers for the records-watch and simulated-users scenarios, on bare HTTP/2
 * streams (raw-stream.ts). Each watcher counts first deliveries (by a key the scenario's parser
 * gives a change), their latency, duplicates, and version gaps (a tenant's versions are gap-free).
 */
import type http2 from "node:http2";
import { toBinary } from "@bufbuild/protobuf";
import { RecordStreamService, WatchRecordsRequestSchema, type WatchRecordsRequest } from "@crm/gen/crm/records/v1/stream_pb";
import { rawServerStream } from "./raw-stream.js";

/** What a scenario reads off one WatchRecordsResponse. */
export interface WatchFrame {
  heartbeat: boolean;
  /** The change's version, or the heartbeat's last version. */
  version: bigint;
  /** Identifies a change this run measures; undefined: not one of them (counted for gaps only). */
  key: string | undefined;
  /** When the change was asked for (performance.now() of the driver). */
  sentMs: number;
}

export interface Watcher {
  latencies: number[];
  seen: Set<string>;
  duplicates: number;
  /** Changes whose version was not the previous one + 1: gaps only when every change of the tenant concerns the watch. */
  gaps: number;
  errors: string[];
  live: Promise<void>;
  close(): void;
}

/**
 * Opens WatchRecords(`request`) with `token`; `live` resolves at the first heartbeat. `parse`
 * turns a message's bytes into a frame (cache it per bytes: every watcher of a replica gets the
 * same encoded change, and decoding each copy would cost the driver more than what is measured).
 */
export function watchRecords(session: http2.ClientHttp2Session, token: string, request: WatchRecordsRequest, parse: (bytes: Buffer) => WatchFrame): Watcher {
  let last: bigint | undefined;
  const counts = { latencies: [] as number[], seen: new Set<string>(), duplicates: 0, gaps: 0 };
  const raw = rawServerStream(session, {
    path: `/${RecordStreamService.typeName}/WatchRecords`,
    token,
    request: toBinary(WatchRecordsRequestSchema, request),
    onMessage(bytes, now) {
      const f = parse(bytes);
      if (f.heartbeat) {
        last ??= f.version;
        return true;
      }
      if (last !== undefined && f.version !== last + 1n) counts.gaps++;
      last = f.version;
      if (f.key === undefined) return false;
      if (counts.seen.has(f.key)) counts.duplicates++;
      else {
        counts.seen.add(f.key);
        counts.latencies.push(now - f.sentMs);
      }
      return false;
    },
  });
  return Object.assign(counts, { errors: raw.errors, live: raw.live, close: raw.close });
}

/** A cache of parsed frames by their bytes, emptied when it grows past `max`. */
export function frameCache(parse: (bytes: Buffer) => WatchFrame, max = 5000): (bytes: Buffer) => WatchFrame {
  let cache = new Map<string, WatchFrame>();
  return (bytes) => {
    const key = bytes.toString("latin1");
    let f = cache.get(key);
    if (!f) {
      f = parse(bytes);
      if (cache.size > max) cache = new Map();
      cache.set(key, f);
    }
    return f;
  };
}
