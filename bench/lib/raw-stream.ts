/**
 * A gRPC server stream read off a bare HTTP/2 stream: frames are cut and handed over as bytes,
 * without connect-node's streaming pipeline, so that a driver sharing the CPUs with the servers it
 * measures spends little per delivery. The chat subscribers (fanout.ts) and the WatchRecords
 * watchers (watch.ts) are built on it.
 */
import http2 from "node:http2";
import { grpcFrame } from "./h2load.js";

export interface RawStream {
  /** Resolves when `onMessage` first says the stream is live (its first heartbeat); rejects on an error before. */
  live: Promise<void>;
  /** Why the stream ended early (status, HTTP error, reset), if it did. */
  errors: string[];
  close(): void;
}

/**
 * POSTs `request` (a protobuf message's bytes) to `path` on `session` and calls `onMessage` with
 * each answer message's bytes and the time its chunk arrived; `onMessage` returns true for a
 * message that shows the stream is live (a heartbeat).
 */
export function rawServerStream(session: http2.ClientHttp2Session, o: { path: string; token: string; request: Uint8Array; onMessage: (bytes: Buffer, now: number) => boolean | void }): RawStream {
  let closing = false;
  let markLive: () => void = () => {};
  let failLive: (e: Error) => void = () => {};
  const live = new Promise<void>((resolve, reject) => ((markLive = resolve), (failLive = reject)));
  live.catch(() => {}); // reported through `errors` (and to whoever awaits `live`)
  const stream = session.request({ ":method": "POST", ":path": o.path, "content-type": "application/grpc+proto", te: "trailers", authorization: `Bearer ${o.token}` });
  const s: RawStream = { live, errors: [], close: () => ((closing = true), stream.close(http2.constants.NGHTTP2_CANCEL)) };
  const fail = (why: string) => {
    if (closing) return;
    closing = true;
    s.errors.push(why);
    failLive(new Error(why));
  };
  stream.end(grpcFrame(o.request));
  let buf: Buffer = Buffer.alloc(0);
  stream.on("data", (chunk: Buffer) => {
    const now = performance.now();
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      const bytes = buf.subarray(5, 5 + len);
      buf = buf.subarray(5 + len);
      if (o.onMessage(bytes, now)) markLive();
    }
  });
  stream.on("trailers", (t) => {
    const status = t["grpc-status"];
    if (status !== undefined && status !== "0") fail(`grpc-status ${String(status)}: ${decodeURIComponent(String(t["grpc-message"] ?? ""))}`);
  });
  stream.on("response", (h) => {
    const status = h["grpc-status"]; // trailers-only answer: an error before the first message
    if (h[":status"] !== 200) fail(`HTTP ${String(h[":status"])}`);
    else if (status !== undefined && status !== "0") fail(`grpc-status ${String(status)}: ${decodeURIComponent(String(h["grpc-message"] ?? ""))}`);
  });
  stream.on("error", (err) => fail(err.message));
  stream.on("close", () => fail("the stream closed"));
  return s;
}
