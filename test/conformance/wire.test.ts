/**
 * The answers on the wire, byte for byte where the protocols say how they look: raw HTTP/2 and
 * HTTP/1.1 requests to both paths (gRPC error and success answers, Connect status codes and error
 * bodies, unsupported encodings, deadlines the server enforces itself, malformed deadlines, answer
 * compression as negotiated, unknown JSON fields, Connect GET requests); and every client reading
 * trailers-only gRPC answers (which our servers do not send, but a proxy or another server may).
 */
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { gunzipSync, gzipSync } from "node:zlib";
import { after, before, test } from "node:test";
import { create, fromBinary, toBinary, toJson, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { CaseDetailSchema, ConformanceService, LookupRequestSchema, ServerStreamRequestSchema, UnaryRequestSchema, UnaryResponseSchema, type AnswerSchema } from "@crm/gen/crm/conformance/v1/conformance_pb";
import { badRequestDetail, caseDetail } from "./cases.js";
import { nodeClients, type NodeClient } from "./clients.js";
import { assertNone, codeName, detailStrings, Matrix, mismatches, shownMessage, startTargets, takeUnhandled, type PathName, type Target } from "./harness.js";

let targets: Target[];
let clients: NodeClient[];
let close: () => Promise<void>;
const matrix = new Matrix();

before(async () => {
  const started = await startTargets();
  targets = started.targets;
  close = started.close;
  clients = nodeClients(undefined);
  await startResponder();
});
after(async () => {
  process.stdout.write(`# ${matrix.summary("wire × raw HTTP")}\n`);
  await stopResponder();
  for (const c of clients) c.close?.();
  await close();
});

const SERVICE = `/${ConformanceService.typeName}`;
const envelope = (bytes: Uint8Array, flags = 0) => {
  const out = Buffer.alloc(5 + bytes.length);
  out[0] = flags;
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
};
const unaryBytes = (answer: MessageInitShape<typeof AnswerSchema>) => toBinary(UnaryRequestSchema, create(UnaryRequestSchema, { answer }));

interface H2Answer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders | undefined;
  /** The response headers ended the stream: a trailers-only answer. */
  trailersOnly: boolean;
  data: Buffer;
}

/** One raw HTTP/2 request (h2c), read to the end. */
function h2(base: string, headers: http2.OutgoingHttpHeaders, body: Uint8Array | undefined): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(base);
    session.on("error", reject);
    const req = session.request({ ":method": "POST", te: "trailers", ...headers });
    let answer: Omit<H2Answer, "data"> | undefined;
    const chunks: Buffer[] = [];
    req.on("response", (h, flags) => (answer = { status: Number(h[":status"]), headers: h, trailers: undefined, trailersOnly: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0 }));
    req.on("trailers", (t) => answer && (answer.trailers = t));
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", () => {});
    req.on("close", () => {
      session.close();
      if (!answer) return reject(new Error(`no answer (HTTP/2 code ${req.rstCode})`));
      resolve({ ...answer, data: Buffer.concat(chunks) });
    });
    req.end(body);
  });
}

/** The messages of a gRPC / Connect-streaming body (flags, bytes). */
function frames(data: Buffer): { flags: number; bytes: Buffer }[] {
  const out = [];
  for (let at = 0; at + 5 <= data.length; ) {
    const length = data.readUInt32BE(at + 1);
    out.push({ flags: data[at]!, bytes: data.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

const grpcType = (t: unknown) => typeof t === "string" && /^application\/grpc(\+proto)?$/.test(t);
/** A gRPC answer reduced to what the protocol fixes (content-type variants and dates are not compared). */
function grpcView(a: H2Answer) {
  const statusIn = a.trailersOnly ? "headers (trailers-only)" : a.trailers?.["grpc-status"] !== undefined ? "trailers" : "nowhere";
  const where = a.trailersOnly ? a.headers : (a.trailers ?? {});
  const bin = where["grpc-status-details-bin"];
  const status = typeof bin === "string" ? findTrailerError(new Headers({ "grpc-status-details-bin": bin })) : undefined;
  const message = where["grpc-message"];
  return {
    http: a.status,
    contentType: grpcType(a.headers["content-type"]) ? "application/grpc" : String(a.headers["content-type"]),
    statusIn,
    grpcStatus: String(where["grpc-status"]),
    grpcMessage: typeof message === "string" ? decodeURIComponent(message) : undefined,
    details: status ? detailStrings(status.details as { type: string; value: Uint8Array }[]) : undefined,
    /** google.rpc.Status in grpc-status-details-bin agrees with grpc-status and grpc-message. */
    statusAgrees: status ? String(status.code) === String(where["grpc-status"]) && status.rawMessage === (typeof message === "string" ? decodeURIComponent(message) : "") : undefined,
    messages: frames(a.data).map((f) => f.flags),
    header: a.headers["x-conf-h"],
    trailer: (a.trailersOnly ? a.headers : a.trailers)?.["x-conf-t"],
  };
}

type View = Record<string, unknown> & { note?: string };

/** Runs `view` on both paths, checks `expected` on each and compares them. */
async function both(caseName: string, client: string, view: (t: Target) => Promise<View>, expected: Record<string, unknown>) {
  const outcomes: { path: PathName; outcome: View }[] = [];
  for (const t of targets) outcomes.push({ path: t.path, outcome: await view(t) });
  const problems = matrix.check(caseName, client, outcomes, expected);
  for (const u of takeUnhandled()) problems.push(`${caseName}: an error nobody handled (it would end a service's process): ${u}`);
  return problems;
}

test("gRPC: an error is HTTP 200 with grpc-status, grpc-message and grpc-status-details-bin, and no message", async () => {
  const body = envelope(unaryBytes({ headers: [{ name: "x-conf-h", value: "one" }], trailers: [{ name: "x-conf-t", value: "three" }], failure: { code: Code.InvalidArgument, message: "bad: ü ✓ 100%", violations: [{ field: "answer.response_size", description: "must be ≥ 0 ✓" }], detail: { reason: "conformance", number: 42n } } }));
  const problems = await both("gRPC error answer", "raw HTTP/2", async (t) => grpcView(await h2(t.h2c, { ":path": `${SERVICE}/Unary`, "content-type": "application/grpc" }, body)), {
    http: 200,
    contentType: "application/grpc",
    grpcStatus: String(Code.InvalidArgument),
    grpcMessage: "bad: ü ✓ 100%",
    details: [badRequestDetail, caseDetail],
    statusAgrees: true,
    messages: [],
    header: "one",
    trailer: "three",
  });
  assertNone(problems);
});

test("gRPC: an answer is one uncompressed message, then grpc-status 0 in the trailers", async () => {
  const body = envelope(unaryBytes({ responseSize: 100, headers: [{ name: "x-conf-h", value: "one" }], trailers: [{ name: "x-conf-t", value: "three" }] }));
  const problems = await both("gRPC answer", "raw HTTP/2", async (t) => grpcView(await h2(t.h2c, { ":path": `${SERVICE}/Unary`, "content-type": "application/grpc", "grpc-accept-encoding": "identity" }, body)), {
    http: 200,
    contentType: "application/grpc",
    statusIn: "trailers",
    grpcStatus: "0",
    messages: [0],
    header: "one",
    trailer: "three",
  });
  assertNone(problems);
});

/** Connect's HTTP status for each code (connect protocol specification, "Error Codes"). */
const connectHttp: Record<number, number> = { 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401 };
const snake = (c: number) => codeName(c).replace(/[A-Z]/g, (m, i: number) => (i ? "_" : "") + m.toLowerCase());

test("Connect unary: every code has its HTTP status and a JSON error body; details are base64 protobuf", async () => {
  const problems: string[] = [];
  for (const code of Object.keys(connectHttp).map(Number)) {
    const answer = { trailers: [{ name: "x-conf-t", value: "three" }], failure: { code, message: `no ${code} ✓`, detail: { reason: "conformance", number: 42n } } };
    for (const [name, type, body] of [
      ["JSON", "application/json", JSON.stringify(toJson(UnaryRequestSchema, create(UnaryRequestSchema, { answer })))],
      ["binary", "application/proto", unaryBytes(answer)],
    ] as const) {
      problems.push(
        ...(await both(`Connect error ${codeName(code)}`, `raw HTTP/1.1 ${name}`, async (t) => {
          const r = await fetch(`${t.h2c}${SERVICE}/Unary`, { method: "POST", headers: { "content-type": type, "connect-protocol-version": "1" }, body });
          const json = (await r.json()) as { code: string; message: string; details?: { type: string; value: string }[] };
          return {
            http: r.status,
            contentType: r.headers.get("content-type"),
            code: json.code,
            message: json.message,
            details: detailStrings((json.details ?? []).map((d) => ({ type: d.type, value: Buffer.from(d.value, "base64") }))),
            trailer: r.headers.get("trailer-x-conf-t"),
          };
        }, { http: connectHttp[code], contentType: "application/json", code: snake(code), message: `no ${code} ✓`, details: [caseDetail], trailer: "three" })),
      );
    }
  }
  assertNone(problems);
});

test("unsupported encodings: unimplemented, naming the ones the server takes", async () => {
  const problems: string[] = [];
  const body = envelope(unaryBytes({ responseSize: 1 }));
  problems.push(
    ...(await both("gRPC request in snappy", "raw HTTP/2", async (t) => {
      const a = await h2(t.h2c, { ":path": `${SERVICE}/Unary`, "content-type": "application/grpc", "grpc-encoding": "snappy" }, body);
      const v = grpcView(a);
      return { grpcStatus: v.grpcStatus, accepts: String((a.trailersOnly ? a.headers : a.trailers)?.["grpc-accept-encoding"] ?? a.headers["grpc-accept-encoding"]).split(/\s*,\s*/).includes("gzip") };
    }, { grpcStatus: String(Code.Unimplemented), accepts: true })),
  );
  problems.push(
    ...(await both("Connect request in snappy", "raw HTTP/1.1", async (t) => {
      const r = await fetch(`${t.h2c}${SERVICE}/Unary`, { method: "POST", headers: { "content-type": "application/proto", "content-encoding": "snappy" }, body: unaryBytes({}) });
      const json = (await r.json()) as { code: string };
      return { http: r.status, code: json.code, accepts: (r.headers.get("accept-encoding") ?? "").split(/\s*,\s*/).includes("gzip") };
    }, { http: 501, code: "unimplemented", accepts: true })),
  );
  const streamBody = envelope(toBinary(ServerStreamRequestSchema, create(ServerStreamRequestSchema, { count: 1 })));
  problems.push(
    ...(await both("Connect stream request in snappy", "raw HTTP/2", async (t) => {
      const a = await h2(t.h2c, { ":path": `${SERVICE}/ServerStream`, "content-type": "application/connect+proto", "connect-content-encoding": "snappy" }, streamBody);
      const end = frames(a.data).find((f) => f.flags & 0b10);
      const error = end ? (JSON.parse(end.bytes.toString()) as { error?: { code: string } }).error : undefined;
      return { http: a.status, code: error?.code ?? (a.data.length ? JSON.parse(a.data.toString()).code : undefined) };
    }, { code: "unimplemented" })),
  );
  assertNone(problems);
});

test("deadlines: the server ends a call past grpc-timeout or connect-timeout-ms by itself", async () => {
  const problems: string[] = [];
  const waits = envelope(unaryBytes({ delayMs: 20_000 }));
  problems.push(
    ...(await both("grpc-timeout 100m, no client timer", "raw HTTP/2", async (t) => {
      const started = Date.now();
      const v = grpcView(await h2(t.h2c, { ":path": `${SERVICE}/Unary`, "content-type": "application/grpc", "grpc-timeout": "100m" }, waits));
      return { grpcStatus: v.grpcStatus, inTime: Date.now() - started < 5_000 };
    }, { grpcStatus: String(Code.DeadlineExceeded), inTime: true })),
  );
  problems.push(
    ...(await both("connect-timeout-ms 100, no client timer", "raw HTTP/1.1", async (t) => {
      const started = Date.now();
      const r = await fetch(`${t.h2c}${SERVICE}/Unary`, { method: "POST", headers: { "content-type": "application/proto", "connect-timeout-ms": "100" }, body: unaryBytes({ delayMs: 20_000 }) });
      const json = (await r.json()) as { code: string };
      return { http: r.status, code: json.code, inTime: Date.now() - started < 5_000 };
    }, { http: 504, code: "deadline_exceeded", inTime: true })),
  );
  const streamBody = envelope(toBinary(ServerStreamRequestSchema, create(ServerStreamRequestSchema, { count: 1000, delayMs: 20, messageSize: 10 })));
  problems.push(
    ...(await both("grpc-timeout 200m on a stream, no client timer", "raw HTTP/2", async (t) => {
      const v = grpcView(await h2(t.h2c, { ":path": `${SERVICE}/ServerStream`, "content-type": "application/grpc", "grpc-timeout": "200m" }, streamBody));
      return { grpcStatus: v.grpcStatus, someMessages: v.messages.length > 0 && v.messages.length < 1000, note: `${v.messages.length} messages` };
    }, { grpcStatus: String(Code.DeadlineExceeded), someMessages: true })),
  );
  assertNone(problems);
});

test("malformed deadlines are refused with invalid_argument", async () => {
  const problems: string[] = [];
  const body = envelope(unaryBytes({}));
  for (const value of ["abc", "123456789S", "10", "-5m", "1.5S"]) {
    problems.push(
      ...(await both(`grpc-timeout ${JSON.stringify(value)}`, "raw HTTP/2", async (t) => ({ grpcStatus: grpcView(await h2(t.h2c, { ":path": `${SERVICE}/Unary`, "content-type": "application/grpc", "grpc-timeout": value }, body)).grpcStatus }), {
        grpcStatus: String(Code.InvalidArgument),
      })),
    );
  }
  for (const value of ["abc", "12345678901", "-1", "1.5"]) {
    problems.push(
      ...(await both(`connect-timeout-ms ${JSON.stringify(value)}`, "raw HTTP/2", async (t) => {
        const a = await h2(t.h2c, { ":path": `${SERVICE}/Unary`, "content-type": "application/proto", "connect-timeout-ms": value }, unaryBytes({}));
        return { http: a.status, code: a.status === 200 ? "ok" : (JSON.parse(a.data.toString()) as { code: string }).code };
      }, { http: 400, code: "invalid_argument" })),
    );
  }
  assertNone(problems);
});

test("answer compression follows what the client accepts", async () => {
  const problems: string[] = [];
  const big = envelope(unaryBytes({ responseSize: 50_000 }));
  for (const accept of ["gzip", "identity"]) {
    problems.push(
      ...(await both(`gRPC, grpc-accept-encoding: ${accept}`, "raw HTTP/2", async (t) => {
        const a = await h2(t.h2c, { ":path": `${SERVICE}/Unary`, "content-type": "application/grpc", "grpc-accept-encoding": accept }, big);
        const [f] = frames(a.data);
        const encoding = String(a.headers["grpc-encoding"] ?? "identity");
        const bytes = f && f.flags & 1 ? gunzipSync(f.bytes) : f?.bytes;
        const res = bytes ? fromBinary(UnaryResponseSchema, bytes) : undefined;
        // Compressing is the server's choice (connect-node does, the fast path does not): noted, not compared.
        return { allowed: encoding === "identity" ? f?.flags === 0 : encoding === accept && f?.flags === 1, payload: res?.result?.payload.length, note: `grpc-encoding ${encoding}` };
      }, { allowed: true, payload: 50_000 })),
    );
  }
  assertNone(problems);
});

test("a compressed message without grpc-encoding is refused", async () => {
  const body = envelope(gzipSync(unaryBytes({})), 1);
  const problems = await both("compressed flag, no grpc-encoding", "raw HTTP/2", async (t) => {
    const v = grpcView(await h2(t.h2c, { ":path": `${SERVICE}/Unary`, "content-type": "application/grpc" }, body));
    return { refused: v.grpcStatus !== "0", grpcStatus: v.grpcStatus };
  }, { refused: true });
  assertNone(problems);
});

test("JSON: a field the schema does not know is refused (binary: kept, see unary cases)", async () => {
  const problems: string[] = [];
  for (const [where, type, body] of [
    ["Connect unary", "application/json", '{"answer":{},"nope":1}'],
    ["gRPC JSON", "application/grpc+json", envelope(Buffer.from('{"answer":{},"nope":1}'))],
  ] as const) {
    problems.push(
      ...(await both(`${where} with an unknown field`, "raw HTTP/2", async (t) => {
        const a = await h2(t.h2c, { ":path": `${SERVICE}/Unary`, "content-type": type }, Buffer.from(body));
        if (type.startsWith("application/grpc")) return { code: codeName(Number(grpcView(a).grpcStatus)) };
        return { code: (JSON.parse(a.data.toString()) as { code: string }).code };
      }, { code: type.startsWith("application/grpc") ? "InvalidArgument" : "invalid_argument" })),
    );
  }
  assertNone(problems);
});

test("Connect GET: NO_SIDE_EFFECTS methods answer GET with the message in the query; other methods refuse it", async () => {
  const problems: string[] = [];
  const message = create(LookupRequestSchema, { answer: { responseSize: 10, headers: [{ name: "x-conf-h", value: "get" }] } });
  const json = JSON.stringify(toJson(LookupRequestSchema, message));
  const proto = Buffer.from(toBinary(LookupRequestSchema, message));
  const queries: [string, string][] = [
    ["JSON", `encoding=json&message=${encodeURIComponent(json)}`],
    ["binary, base64", `encoding=proto&base64=1&message=${proto.toString("base64url")}`],
    ["JSON, gzip", `encoding=json&base64=1&compression=gzip&message=${gzipSync(json).toString("base64url")}`],
  ];
  for (const [what, query] of queries) {
    problems.push(
      ...(await both(`GET ${what}`, "raw HTTP/1.1", async (t) => {
        const r = await fetch(`${t.h2c}${SERVICE}/Lookup?connect=v1&${query}`);
        const type = r.headers.get("content-type") ?? "";
        const body = Buffer.from(await r.arrayBuffer());
        const decoded = type === "application/proto" ? toJson(UnaryResponseSchema, fromBinary(UnaryResponseSchema, body)) : JSON.parse(body.toString());
        return { http: r.status, method: (decoded as { result?: { httpMethod?: string } }).result?.httpMethod, header: r.headers.get("x-conf-h") };
      }, { http: 200, method: "GET", header: "get" })),
    );
  }
  problems.push(
    ...(await both("GET of a method with side effects", "raw HTTP/1.1", async (t) => {
      const r = await fetch(`${t.h2c}${SERVICE}/Unary?connect=v1&encoding=json&message=%7B%7D`);
      return { http: r.status, allow: r.headers.get("allow") };
    }, { http: 405, allow: "POST" })),
  );
  assertNone(problems);
});

// ---------------------------------------------------------------------------------------------
// Trailers-only answers: a reference responder (raw HTTP/2) answers every call with one HEADERS
// frame that ends the stream and carries the status; each gRPC client must read code, message,
// details and metadata from it, as from trailers. gRPC-Web: the status in the headers, no body.

let responder: http2.Http2Server;
let responderBase: string;
const responderSessions = new Set<http2.ServerHttp2Session>();
/** grpc-status-details-bin of the trailers-only answer: google.rpc.Status {code 7, message, [CaseDetail]}. */
const trailersOnlyDetails = setTrailerStatus(new Headers(), new ConnectError("not yours ✓", Code.PermissionDenied, undefined, [{ desc: CaseDetailSchema, value: { reason: "conformance", number: 42n } }])).get("grpc-status-details-bin")!;

async function startResponder() {
  responder = http2.createServer();
  responder.on("session", (s) => (responderSessions.add(s), s.once("close", () => responderSessions.delete(s))));
  responder.on("stream", (stream, headers) => {
    const web = String(headers["content-type"]).startsWith("application/grpc-web");
    stream.on("error", () => {});
    stream.resume();
    stream.on("end", () => {
      stream.respond(
        {
          ":status": 200,
          "content-type": web ? "application/grpc-web+proto" : "application/grpc",
          "grpc-status": String(Code.PermissionDenied),
          "grpc-message": encodeURIComponent("not yours ✓"),
          "grpc-status-details-bin": trailersOnlyDetails,
          "x-conf-m": "m",
        },
        { endStream: true },
      );
    });
  });
  await new Promise<void>((r) => responder.listen(0, "127.0.0.1", r));
  responderBase = `http://127.0.0.1:${(responder.address() as AddressInfo).port}`;
}

/** Stops the responder, ending the clients' connections to it (they would keep it open). */
function stopResponder() {
  for (const s of responderSessions) s.destroy();
  return new Promise<void>((r) => responder.close(() => r()));
}

test("trailers-only answers: every gRPC and gRPC-Web client reads the status, details and metadata from the headers", async () => {
  const problems: string[] = [];
  // Not a server path: the responder stands in for a server that answers trailers-only.
  const target: Target = { path: "fast path", h2c: responderBase, tls: undefined, watch: () => ({ started: new Promise(() => {}), aborted: new Promise(() => {}), produced: 0, finished: false }) };
  for (const client of clients.filter((c) => c.protocol !== "connect" && c.http === "2" && c.binary)) {
    const outcome = await client.unary(target, { method: "unary" });
    const expected = { code: "PermissionDenied", message: shownMessage(client, "not yours ✓"), details: [caseDetail], metadata: { "x-conf-m": "m" } };
    problems.push(...mismatches(outcome, expected).map((m) => `trailers-only answer × ${client.name}: ${m}`));
  }
  assertNone(problems);
});
