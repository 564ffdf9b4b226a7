/**
 * Clients for a CRM app a test started: Connect (HTTP/1.1 JSON) and gRPC (HTTP/2). The testkit
 * never starts a service itself (packages never import services): the all-in-one is started by
 * `startTestApp` in services/all/test/app.ts (`@crm/all/test-app`), which returns one of these.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";

export interface TestApp {
  baseUrl: string;
  dataDir: string;
  /** Typed client; `token` is sent as Authorization: Bearer. */
  client<S extends DescService>(service: S, opts?: { token?: string; protocol?: "connect" | "grpc" }): Client<S>;
  close(): Promise<void>;
}

/** A TestApp for an app listening at `baseUrl` with its data in `dataDir`; `close` stops it. */
export function testAppAt(baseUrl: string, dataDir: string, close: () => Promise<void>): TestApp {
  return {
    baseUrl,
    dataDir,
    client(service, opts = {}) {
      const auth: Interceptor = (next) => (req) => {
        if (opts.token) req.header.set("authorization", `Bearer ${opts.token}`);
        return next(req);
      };
      const transport =
        opts.protocol === "grpc"
          ? createGrpcTransport({ baseUrl, interceptors: [auth] })
          : createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [auth] });
      return createClient(service, transport);
    },
    close,
  };
}

/** The .eml files (raw text) the app has written for `to` so far under its DATA_DIR/outbox. */
export function emlTo(app: Pick<TestApp, "dataDir">, to: string): string[] {
  const dir = join(app.dataDir, "outbox");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".eml"))
    .map((f) => readFileSync(join(dir, f), "utf8"))
    .filter((raw) => new RegExp(`^To: ${to.replace(/[.+]/g, "\\$&")}$`, "mi").test(raw));
}
