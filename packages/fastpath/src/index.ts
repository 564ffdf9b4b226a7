/**
 * @crm/fastpath: unary calls and HTTP/2 server streams served without connect-node's per-call
 * machinery, and a unary gRPC client for calls between services. It imports nothing of the
 * workspace; @crm/kit wires it in (interceptors, limits, error hooks) and switches it off with
 * RPC_FAST_PATH=off. README.md says what it serves and what it leaves to connect-node.
 */
export { CallContext, UnaryMethods, unaryResponse, withInterceptors, type AnyFn, type StreamEntry, type UnaryEntry } from "./methods.js";
export { createFastPath, takeStreams, type FastPath, type FastPathOptions } from "./serve.js";
export { ClientUnaryRequest, createGrpcClientTransport, type GrpcClientOptions, type GrpcClientTransport } from "./client.js";
export { decodeProblem, strictUtf8 } from "./wire.js";
