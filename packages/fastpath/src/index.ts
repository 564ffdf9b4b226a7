export * from "./unary.js";
export * from "./grpc-client.js";
