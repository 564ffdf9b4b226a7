/**
 * Requests that cannot be decoded are the client's fault: invalid_argument, on every path.
 *
 * The fast path (@crm/fastpath) says so itself. connect-node, which serves the rest (compressed Connect
 * and gRPC, gRPC-Web, Connect streams over HTTP/1.1), answers a message it cannot parse (truncated,
 * a wrong wire type, groups nested past the recursion limit) with `internal` "parse binary: …",
 * before any interceptor runs. So for the RPCs that take one request message (unary and server
 * streaming), the server reads the body first and decodes it here the way connect-node will; if it
 * cannot be decoded, connect-node gets an empty message instead and the text interceptor
 * (text-rules.ts) answers invalid_argument with the reason, in whatever protocol the call speaks.
 * JSON bodies are decoded the same way: connect-node would turn bytes that are not UTF-8 into
 * U+FFFD, and its decode error can quote a lone surrogate the client sent, which gRPC cannot
 * carry in grpc-message (the call then failed as internal).
 * Client and bidi streams (server reflection) are left alone: their bodies must not be buffered.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import { decodeProblem } from "@crm/fastpath";
import { createContextKey, type ContextValues } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { Compression } from "@connectrpc/connect/protocol";

/** Why the request message could not be decoded (set by the server; the text interceptor answers). */
export const undecodableKey = createContextKey<string | undefined>(undefined, { description: "why the request message could not be decoded" });

const compressions: Record<string, Compression | undefined> = { gzip: compressionGzip, br: compressionBrotli };

type Framing = "plain" | "envelopes";

export interface BodyFormat {
  framing: Framing;
  /** The header that names the body's (plain) or each message's (envelopes) compression. */
  encodingHeader: string;
  json: boolean;
}

/** How a request body is framed and encoded (undefined: a content type connect-node does not take). */
export function bodyFormat(contentType: string | undefined): BodyFormat | undefined {
  const type = (contentType ?? "").split(";", 1)[0]!.trim().toLowerCase();
  if (type === "application/proto" || type === "application/json") return { framing: "plain", encodingHeader: "content-encoding", json: type.endsWith("json") };
  if (type === "application/connect+proto" || type === "application/connect+json") return { framing: "envelopes", encodingHeader: "connect-content-encoding", json: type.endsWith("json") };
  if (/^application\/grpc(-web)?(\+proto|\+json)?$/.test(type)) return { framing: "envelopes", encodingHeader: "grpc-encoding", json: type.endsWith("json") };
  return undefined;
}

/** The body to give connect-node, and why the message cannot be decoded (or undefined when it can). */
export interface Screened {
  body: Uint8Array;
  problem: string | undefined;
}

const strict = { ignoreUnknownFields: false }; // as the fast path reads JSON: unknown fields refused

/** Why `bytes` is not a message of `schema`, in the fast path's words (undefined: it is one). */
const decodes = (schema: DescMessage, bytes: Uint8Array, json: boolean): string | undefined => {
  const decoded = decodeProblem(schema, bytes, json, strict);
  return typeof decoded === "string" ? decoded : undefined;
};

/**
 * Decodes `body` as connect-node will. A body it cannot even frame or decompress is passed on as
 * it is (connect-node answers those correctly); only a message that does not decode is replaced.
 */
export async function screenRequest(schema: DescMessage, body: Uint8Array, { framing, json }: BodyFormat, encoding: string | undefined, readMaxBytes: number): Promise<Screened> {
  const compression = encoding && encoding !== "identity" ? compressions[encoding] : undefined;
  if (encoding && encoding !== "identity" && !compression) return { body, problem: undefined };
  // A body over the limit was cut at it: not screened (it would read as malformed), so connect-node
  // refuses it with resource_exhausted, as it does any request over readMaxBytes.
  if (body.length > readMaxBytes) return { body, problem: undefined };
  if (framing === "plain") {
    let bytes = body;
    if (compression) {
      try {
        bytes = await compression.decompress(body, readMaxBytes);
      } catch {
        return { body, problem: undefined };
      }
    }
    const problem = decodes(schema, bytes, json);
    return problem ? { body: json ? Buffer.from("{}") : new Uint8Array(), problem } : { body, problem };
  }
  const view = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  for (let at = 0; at + 5 <= view.length; ) {
    const flags = view[at]!;
    const length = view.readUInt32BE(at + 1);
    if (at + 5 + length > view.length) return { body, problem: undefined };
    let bytes: Uint8Array = view.subarray(at + 5, at + 5 + length);
    at += 5 + length;
    if (flags & 0x80 || flags & 0x02) continue; // trailers / end of stream: not a message
    if (flags & 0x01) {
      if (!compression) return { body, problem: undefined };
      try {
        bytes = await compression.decompress(bytes, readMaxBytes);
      } catch {
        return { body, problem: undefined };
      }
    }
    const problem = decodes(schema, bytes, json);
    if (problem) return { body: json ? Buffer.from([0, 0, 0, 0, 2, 0x7b, 0x7d]) : new Uint8Array(5), problem }; // one uncompressed, empty message
  }
  return { body, problem: undefined };
}

/** Marks `values` so the text interceptor refuses the call. */
export function markUndecodable(values: ContextValues, problem: string) {
  values.set(undecodableKey, problem);
}

/** Why a Connect GET request cannot be served (connect-node answers these with an empty 415 or `internal`), or undefined. */
export async function screenGetRequest(schema: DescMessage, url: string, readMaxBytes: number): Promise<{ status: number; code: string; message: string } | undefined> {
  const q = url.indexOf("?");
  const params = new URLSearchParams(q < 0 ? "" : url.slice(q + 1));
  const encoding = params.get("encoding");
  if (encoding !== "proto" && encoding !== "json") {
    return { status: 415, code: "unimplemented", message: "a Connect GET request needs encoding=json or encoding=proto and message=… in the query (or use POST)" };
  }
  const compressionName = params.get("compression");
  const compression = compressionName && compressionName !== "identity" ? compressions[compressionName] : undefined;
  if (compressionName && compressionName !== "identity" && !compression) return undefined; // connect-node names the supported ones
  const text = params.get("message") ?? "";
  let bytes: Uint8Array = params.get("base64") === "1" ? Buffer.from(text, "base64url") : Buffer.from(text, "utf8");
  if (compression) {
    try {
      bytes = await compression.decompress(bytes, readMaxBytes);
    } catch {
      return undefined;
    }
  }
  const problem = decodes(schema, bytes, encoding === "json");
  return problem ? { status: 400, code: "invalid_argument", message: `cannot decode the request: ${problem}` } : undefined;
}
