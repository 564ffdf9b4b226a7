/**
 * The fast path's wire pieces on their own: protocol errors in connect-node's words, the request
 * decoder both paths share, deadlines, status codes. The fast path against real clients and
 * connect-node is tested through the kit's server (packages/kit/src/unary.test.ts, streams.test.ts).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { GetRequestSchema } from "@crm/gen/crm/cache/v1/cache_pb";
import { decodeProblem, envelopeError, envelopeOf, grpcErrorTrailers, httpStatus, timeoutOf } from "./wire.js";

const strict = { ignoreUnknownFields: false };

test("a gRPC body that is not exactly one uncompressed message is refused as connect-node refuses it", () => {
  const one = envelopeOf(Buffer.from([0x0a, 1, 0x61]));
  assert.equal(envelopeError(one, "unary"), undefined);
  const cases: [string, Buffer, Code, string][] = [
    ["empty", Buffer.alloc(0), Code.Unimplemented, "protocol error: missing input message for unary method"],
    ["short", Buffer.from([0, 0, 0]), Code.InvalidArgument, "protocol error: incomplete envelope"],
    ["truncated", one.subarray(0, one.length - 1), Code.InvalidArgument, "protocol error: incomplete envelope"],
    ["compressed", envelopeOf(Buffer.from([1]), 1), Code.Internal, "received compressed envelope, but do not know how to decompress"],
    ["two messages", Buffer.concat([one, one]), Code.Unimplemented, "protocol error: received extra input message for unary method"],
    ["one and a half", Buffer.concat([one, one.subarray(0, 3)]), Code.InvalidArgument, "protocol error: incomplete envelope"],
  ];
  for (const [name, body, code, message] of cases) {
    const e = envelopeError(body, "unary");
    assert.equal(e?.code, code, name);
    assert.equal(e?.rawMessage, message, name);
  }
});

test("request messages decode, or say why not (JSON: UTF-8 only, unknown fields refused, lone surrogates replaced)", () => {
  const good = decodeProblem(GetRequestSchema, toBinary(GetRequestSchema, create(GetRequestSchema, { key: "k" })), false, strict);
  assert.equal(typeof good === "string" ? good : good.message.key, "k");
  assert.equal(typeof decodeProblem(GetRequestSchema, Buffer.from([0x0f]), false, strict), "string");
  assert.equal(decodeProblem(GetRequestSchema, Buffer.from([0x7b, 0xff, 0x7d]), true, strict), "the JSON is not valid UTF-8: send it encoded as UTF-8");
  const empty = decodeProblem(GetRequestSchema, Buffer.from("  "), true, strict);
  assert.equal(typeof empty === "string" ? empty : empty.message.key, "", "an empty JSON body is the empty message");
  const unknown = decodeProblem(GetRequestSchema, Buffer.from('{"nope\\ud800":1}'), true, strict);
  assert.equal(typeof unknown, "string");
  assert.ok(typeof unknown === "string" && unknown.includes("nope\uFFFD") && !/[\uD800-\uDFFF]/.test(unknown), String(unknown));
});

test("deadlines: grpc-timeout units and connect-timeout-ms; a malformed one is connect-node's invalid_argument", () => {
  assert.deepEqual(timeoutOf({ "grpc-timeout": "2S" }, "grpc"), { timeoutMs: 2000 });
  assert.deepEqual(timeoutOf({ "grpc-timeout": "100m" }, "grpc"), { timeoutMs: 100 });
  assert.deepEqual(timeoutOf({ "connect-timeout-ms": "250" }, "connect-json"), { timeoutMs: 250 });
  assert.deepEqual(timeoutOf({}, "grpc"), {});
  assert.equal(timeoutOf({ "grpc-timeout": "5 seconds" }, "grpc").error?.code, Code.InvalidArgument);
  assert.equal(timeoutOf({ "connect-timeout-ms": "soon" }, "connect-proto").error?.rawMessage, "protocol error: invalid connect timeout value: soon");
});

test("Connect HTTP statuses and gRPC error trailers (with the handler's trailers and the error's metadata)", () => {
  assert.equal(httpStatus(Code.InvalidArgument), 400);
  assert.equal(httpStatus(Code.Unauthenticated), 401);
  assert.equal(httpStatus(Code.ResourceExhausted), 429);
  assert.equal(httpStatus(Code.DataLoss), 500);
  const err = new ConnectError("bad", Code.NotFound, { "crm-error": "not_found" });
  const trailers = grpcErrorTrailers(err, new Headers({ "x-probe": "t" }));
  assert.equal(trailers["grpc-status"], String(Code.NotFound));
  assert.equal(trailers["grpc-message"], "bad");
  assert.equal(trailers["crm-error"], "not_found");
  assert.equal(trailers["x-probe"], "t");
});
