/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha) for connect-node, so grpcurl and
 * buf curl can list and call services without local protos. Written from reflection.proto:
 * no npm package provides it for connect-node.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import { createRegistry, toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as v1 from "@crm/gen/grpc/reflection/v1/reflection_pb";
import * as v1alpha from "@crm/gen/grpc/reflection/v1alpha/reflection_pb";

type Request = v1.ServerReflectionRequest;

function closure(files: DescFile[]): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (f: DescFile) => {
    if (seen.has(f.name)) return;
    seen.set(f.name, f);
    f.dependencies.forEach(visit);
  };
  files.forEach(visit);
  return [...seen.values()];
}

export function createReflection(services: DescService[]) {
  const files = closure(services.map((s) => s.file));
  const registry = createRegistry(...files);
  const byName = new Map(files.map((f) => [f.name, f]));
  const encoded = new Map(files.map((f) => [f.name, toBinary(FileDescriptorProtoSchema, f.proto)]));
  const withDeps = (f: DescFile) => closure([f]).map((d) => encoded.get(d.name)!);

  function fileOfSymbol(symbol: string): DescFile | undefined {
    const direct = registry.get(symbol);
    if (direct) return direct.file;
    const dot = symbol.lastIndexOf(".");
    const parent = dot > 0 ? registry.getService(symbol.slice(0, dot)) : undefined;
    return parent?.file; // "pkg.Service.Method"
  }

  function answer(req: Request) {
    const base = { validHost: req.host, originalRequest: req };
    const notFound = (what: string) => ({ ...base, messageResponse: { case: "errorResponse" as const, value: { errorCode: 5, errorMessage: `${what} not found` } } });
    const fileResponse = (f: DescFile | undefined, what: string) =>
      f ? { ...base, messageResponse: { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: withDeps(f) } } } : notFound(what);
    const m = req.messageRequest;
    switch (m.case) {
      case "listServices":
        return { ...base, messageResponse: { case: "listServicesResponse" as const, value: { service: services.map((s) => ({ name: s.typeName })) } } };
      case "fileByFilename":
        return fileResponse(byName.get(m.value), `file ${m.value}`);
      case "fileContainingSymbol":
        return fileResponse(fileOfSymbol(m.value), `symbol ${m.value}`);
      case "fileContainingExtension":
        return notFound(`extension ${m.value.extensionNumber} of ${m.value.containingType}`);
      case "allExtensionNumbersOfType":
        return registry.getMessage(m.value)
          ? { ...base, messageResponse: { case: "allExtensionNumbersResponse" as const, value: { baseTypeName: m.value, extensionNumber: [] } } }
          : notFound(`type ${m.value}`);
      default:
        return { ...base, messageResponse: { case: "errorResponse" as const, value: { errorCode: 3, errorMessage: "empty reflection request" } } };
    }
  }

  return function register(router: ConnectRouter) {
    router.service(v1.ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) yield answer(req);
      },
    });
    // v1alpha has the same wire format; older grpcurl versions ask it first.
    router.service(v1alpha.ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) yield answer(req as unknown as Request) as never;
      },
    });
  };
}
