/**
 * Starts the all-in-one app in this test process on a free port with a temporary DATA_DIR,
 * and builds Connect (HTTP/1.1 JSON) and gRPC (HTTP/2) clients for it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { startAllInOne } from "@crm/all/all-in-one";

export interface TestApp {
  baseUrl: string;
  dataDir: string;
  /** Typed client; `token` is sent as Authorization: Bearer. */
  client<S extends DescService>(service: S, opts?: { token?: string; protocol?: "connect" | "grpc" }): Client<S>;
  close(): Promise<void>;
}

export async function startTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), "crm-test-"));
  const app = await startAllInOne({ LOG_LEVEL: "warn", ...env, PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir });
  const baseUrl = `http://127.0.0.1:${app.port}`;
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
    async close() {
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
