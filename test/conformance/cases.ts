/**
 * The suite's cases as data, one call each, played by every client that can (clients.ts for the
 * Node clients, external.test.ts for buf curl and python3-grpcio) on both server paths. `expect`
 * is the protocol's answer (gRPC over HTTP/2, Connect, gRPC-Web), which connect-node gives on the
 * plain path; the runner adds the comparison of the two paths.
 */
import { Code } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { AnswerSchema, ServerStreamRequestSchema } from "@crm/gen/crm/conformance/v1/conformance_pb";
import { codeName, SERVER_READ_MAX, shownMessage, type ClientInfo, type Expected, type PlayableCase } from "./harness.js";
import { payload } from "./service.js";

export interface UnaryCall {
  method: "unary" | "lookup";
  answer?: MessageInitShape<typeof AnswerSchema>;
  payload?: Uint8Array;
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** Cancel once the handler has started. */
  cancel?: boolean;
  sendGzip?: boolean;
  /** Send the request in an encoding the server does not support. */
  badEncoding?: boolean;
  /** The client's own read limit. */
  readMaxBytes?: number;
  /** Connect GET (NO_SIDE_EFFECTS methods). */
  get?: boolean;
  /** Add field 999 (unknown to the server) to the request. */
  unknownField?: boolean;
  /** Record how the handler's signal aborted (serverAbort). */
  watchAbort?: boolean;
}

/**
 * One case: a call, what a client needs to play it, and the protocol's answer. `volatile` names
 * outcome fields that are not the protocol's (the words of a library's own errors) or that may
 * differ from run to run (who noticed a deadline first): they are moved to the note, not compared.
 */
export interface UnaryCase extends PlayableCase {
  call: UnaryCall;
}

export interface StreamCall {
  request: MessageInitShape<typeof ServerStreamRequestSchema>;
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** Cancel after the first message. */
  cancelAfterFirst?: boolean;
  /** Stop reading after the first message until the server stops producing, then read the rest. */
  pauseAfterFirst?: boolean;
  sendGzip?: boolean;
  readMaxBytes?: number;
  watchAbort?: boolean;
}

export interface StreamCase extends PlayableCase {
  call: StreamCall;
}

const ok = (c: ClientInfo, result: Expected["result"] = {}): Expected => ({
  code: "OK",
  result: { payloadIntact: true, httpMethod: "POST", protocol: c.protocol, deadline: "none", unknownFields: 0, ...result },
});

/** Every code a handler can end a call with, each with a message that needs percent-encoding in grpc-message. */
const statusCases: UnaryCase[] = Array.from({ length: 16 }, (_, i) => i + 1).map((code) => ({
  name: `status ${code} ${codeName(code)}`,
  needs: [],
  call: { method: "unary", answer: { failure: { code, message: `failed with ${codeName(code)}: ü ✓ 100% "q"` } } },
  expect: (c) => ({ code: codeName(code), message: shownMessage(c, `failed with ${codeName(code)}: ü ✓ 100% "q"`), metadata: {} }),
}));

export const badRequestDetail = 'google.rpc.BadRequest {"fieldViolations":[{"field":"answer.response_size","description":"must be ≥ 0 ✓"}]}';
export const caseDetail = 'crm.conformance.v1.CaseDetail {"reason":"conformance","number":"42"}';
const withDetails = { code: Code.InvalidArgument, message: "invalid request", violations: [{ field: "answer.response_size", description: "must be ≥ 0 ✓" }], detail: { reason: "conformance", number: 42n } };

export const unaryCases: UnaryCase[] = [
  {
    name: "answer with payload; request headers reach the handler",
    needs: ["headers"],
    call: { method: "unary", answer: { responseSize: 3000, echoHeaders: ["x-conf-echo"] }, payload: payload(2000), headers: { "x-conf-echo": "hello" } },
    expect: (c) => ({ ...ok(c, { payloadSize: 3000, requestSize: 2000, echoed: { "x-conf-echo": "hello" } }), headers: {}, trailers: {} }),
  },
  {
    name: "empty request and empty answer",
    needs: [],
    call: { method: "unary" },
    expect: (c) => ok(c, { payloadSize: 0, requestSize: 0 }),
  },
  ...statusCases,
  {
    name: "error details round-trip (google.rpc.BadRequest and a detail of our own)",
    needs: [],
    call: { method: "unary", answer: { failure: withDetails } },
    expect: (c) => ({ code: "InvalidArgument", message: shownMessage(c, "invalid request"), details: [badRequestDetail, caseDetail] }),
  },
  {
    name: "response headers (one of them twice) and trailers",
    needs: ["unaryTrailers"],
    call: { method: "unary", answer: { headers: [{ name: "x-conf-h", value: "one" }, { name: "x-conf-h", value: "two" }, { name: "x-conf-single", value: "s" }], trailers: [{ name: "x-conf-t", value: "three" }] } },
    expect: (c) => ({ ...ok(c), headers: { "x-conf-h": "one, two", "x-conf-single": "s" }, trailers: { "x-conf-t": "three" } }),
  },
  {
    name: "headers, trailers and error metadata of a failed call",
    needs: ["unaryTrailers"],
    call: { method: "unary", answer: { headers: [{ name: "x-conf-h", value: "one" }], trailers: [{ name: "x-conf-t", value: "three" }], failure: { code: Code.FailedPrecondition, message: "not now", metadata: [{ name: "x-conf-m", value: "m" }] } } },
    expect: () => ({ code: "FailedPrecondition", message: "not now", metadata: { "x-conf-h": "one", "x-conf-m": "m", "x-conf-t": "three" } }),
  },
  {
    name: "gzip request",
    needs: ["gzip"],
    call: { method: "unary", sendGzip: true, payload: payload(20_000), answer: { responseSize: 10 } },
    expect: (c) => ok(c, { requestSize: 20_000, payloadSize: 10 }),
  },
  {
    name: "large answer (gzip where the client accepts it)",
    needs: [],
    call: { method: "unary", answer: { responseSize: 50_000 } },
    expect: (c) => ok(c, { payloadSize: 50_000 }),
  },
  {
    name: "request in an encoding the server does not support",
    needs: ["badEncoding"],
    call: { method: "unary", badEncoding: true, payload: payload(100) },
    expect: () => ({ code: "Unimplemented" }),
    // the words of a limit or protocol error are the library's, not the protocol's
    volatile: ["message"],
  },
  {
    name: "deadline reaches the handler",
    needs: ["deadline"],
    call: { method: "unary", timeoutMs: 30_000 },
    expect: (c) => ok(c, { deadline: "set" }),
  },
  {
    name: "deadline exceeded while the handler waits",
    needs: ["deadline"],
    call: { method: "unary", timeoutMs: 500, answer: { delayMs: 20_000 }, watchAbort: true },
    expect: () => ({ code: "DeadlineExceeded", serverAbort: "aborted" }),
    volatile: ["message", "metadata"],
  },
  {
    name: "cancelled by the client while the handler waits",
    needs: ["cancel"],
    call: { method: "unary", cancel: true, answer: { delayMs: 20_000 }, watchAbort: true },
    expect: () => ({ code: "Canceled", serverAbort: "aborted" }),
    volatile: ["message", "metadata"],
  },
  {
    name: "request over the server's read limit",
    needs: [],
    call: { method: "unary", payload: payload(SERVER_READ_MAX + 1000) },
    expect: () => ({ code: "ResourceExhausted" }),
    // the words of a limit or protocol error are the library's, not the protocol's
    volatile: ["message"],
  },
  {
    name: "gzip request over the server's read limit once decompressed",
    needs: ["gzip"],
    call: { method: "unary", sendGzip: true, payload: new Uint8Array(4 * SERVER_READ_MAX) },
    expect: () => ({ code: "ResourceExhausted" }),
    // the words of a limit or protocol error are the library's, not the protocol's
    volatile: ["message"],
  },
  {
    name: "answer over the client's read limit",
    needs: ["readLimit"],
    call: { method: "unary", readMaxBytes: 16 * 1024, answer: { responseSize: 32 * 1024 } },
    expect: () => ({ code: "ResourceExhausted" }),
    // the words of a limit or protocol error are the library's, not the protocol's
    volatile: ["message"],
  },
  {
    name: "unknown field in the request is kept, not refused",
    needs: ["unknownField"],
    call: { method: "unary", unknownField: true },
    expect: (c) => ok(c, { unknownFields: 1 }),
  },
  {
    name: "unknown field in the answer is skipped by the client",
    needs: [],
    call: { method: "unary", answer: { unknownField: true, responseSize: 10 } },
    expect: (c) => ({ ...ok(c, { payloadSize: 10 }), responseUnknownFields: c.binary ? 1 : 0 }),
  },
  {
    name: "NO_SIDE_EFFECTS method by POST",
    needs: [],
    call: { method: "lookup", answer: { responseSize: 10 } },
    expect: (c) => ok(c, { payloadSize: 10 }),
  },
  {
    name: "NO_SIDE_EFFECTS method by Connect GET",
    needs: ["get"],
    call: { method: "lookup", get: true, answer: { responseSize: 10, headers: [{ name: "x-conf-h", value: "get" }] } },
    expect: (c) => ({ ...ok(c, { payloadSize: 10, httpMethod: "GET" }), headers: { "x-conf-h": "get" } }),
  },
  {
    name: "Connect GET of a failing call",
    needs: ["get"],
    call: { method: "lookup", get: true, answer: { failure: withDetails } },
    expect: (c) => ({ code: "InvalidArgument", message: shownMessage(c, "invalid request"), details: [badRequestDetail, caseDetail] }),
  },
];

export const streamCases: StreamCase[] = [
  {
    name: "stream of messages",
    needs: [],
    call: { request: { count: 5, messageSize: 100 } },
    expect: () => ({ code: "OK", messages: 5, messagesIntact: true }),
  },
  {
    name: "empty stream",
    needs: [],
    call: { request: { count: 0 } },
    expect: () => ({ code: "OK", messages: 0 }),
  },
  {
    name: "stream headers and trailers",
    needs: [],
    call: { request: { count: 2, messageSize: 10, headers: [{ name: "x-conf-h", value: "one" }], trailers: [{ name: "x-conf-t", value: "three" }] } },
    expect: () => ({ code: "OK", messages: 2, headers: { "x-conf-h": "one" }, trailers: { "x-conf-t": "three" } }),
  },
  {
    name: "error mid-stream with details and metadata",
    needs: [],
    call: { request: { count: 10, messageSize: 10, failAfter: 3, failure: { ...withDetails, metadata: [{ name: "x-conf-m", value: "m" }] }, trailers: [{ name: "x-conf-t", value: "three" }] } },
    expect: () => ({ code: "InvalidArgument", message: "invalid request", details: [badRequestDetail, caseDetail], messages: 3, messagesIntact: true, metadata: { "x-conf-m": "m", "x-conf-t": "three" } }),
  },
  {
    name: "error before the first message",
    needs: [],
    call: { request: { count: 10, failAfter: 0, failure: { code: Code.PermissionDenied, message: "no ✓" }, headers: [{ name: "x-conf-h", value: "one" }] } },
    expect: () => ({ code: "PermissionDenied", message: "no ✓", messages: 0, metadata: { "x-conf-h": "one" } }),
  },
  {
    name: "backpressure: the server waits while the client does not read",
    needs: ["pause"],
    // 4 MiB: past what any client reads ahead (@grpc/grpc-js buffers 16 messages) and the HTTP/2 windows
    call: { request: { count: 64, messageSize: 64 * 1024 }, pauseAfterFirst: true },
    serial: true,
    expect: () => ({ code: "OK", messages: 64, messagesIntact: true, stalled: true }),
  },
  {
    name: "stream cancelled by the client",
    needs: ["cancel"],
    call: { request: { count: 1000, messageSize: 10, delayMs: 20 }, cancelAfterFirst: true, watchAbort: true },
    expect: () => ({ code: "Canceled", serverAbort: "aborted" }),
    volatile: ["message", "messages", "messagesIntact", "metadata"],
  },
  {
    name: "stream deadline exceeded",
    needs: ["deadline"],
    call: { request: { count: 1000, messageSize: 10, delayMs: 50 }, timeoutMs: 300, watchAbort: true },
    expect: () => ({ code: "DeadlineExceeded", serverAbort: "aborted" }),
    volatile: ["message", "messages", "messagesIntact", "metadata"],
  },
  {
    name: "stream message over the client's read limit",
    needs: ["readLimit"],
    call: { request: { count: 3, messageSize: 32 * 1024 }, readMaxBytes: 16 * 1024 },
    expect: () => ({ code: "ResourceExhausted", messages: 0 }),
    volatile: ["message"],
  },
  {
    name: "stream request over the server's read limit",
    needs: [],
    call: { request: { count: 1, payload: payload(SERVER_READ_MAX + 1000) } },
    expect: () => ({ code: "ResourceExhausted", messages: 0 }),
    volatile: ["message"],
  },
  {
    name: "gzip stream request and answers",
    needs: ["gzip"],
    call: { request: { count: 3, messageSize: 20_000, payload: payload(20_000) }, sendGzip: true },
    expect: () => ({ code: "OK", messages: 3, messagesIntact: true }),
  },
];
