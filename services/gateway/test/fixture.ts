/**
 * A gateway in front of the stub upstream, in a temporary folder with its own dev CA, JWT key and
 * free ports: what the gateway tests and the gateway benchmark run against.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ensureCert, ensureDevPki, ensureJwtKeys, type DevPki } from "../../../scripts/certs.mjs";
import { startNginx, type RunningNginx } from "../run.mjs";
import { freePort, TokenMaker } from "./helpers.ts";
import { startStub, type Stub } from "./stub.ts";

export const upstreamNames = ["auth", "chats", "timers", "admin", "email", "logs", "cache", "records", "webhooks"] as const;

export interface GatewayFixture {
  dir: string;
  pki: DevPki;
  ca: Buffer;
  clientCert: Buffer;
  clientKey: Buffer;
  jwksFile: string;
  tokens: TokenMaker;
  stub: Stub;
  nginx: RunningNginx;
  port: number;
  httpPort: number;
  vars: Record<string, string>;
  errors: string[];
  close(): Promise<void>;
}

export async function startGatewayFixture(opts: {
  clientVerify?: "off" | "optional" | "on";
  vars?: Record<string, string>;
  /** upstreams that point at a closed port instead of the stub */
  down?: string[];
  workers?: string;
  stub?: { echoAll?: boolean; clientAuth?: "require" | "optional" };
  patch?: (conf: string) => string;
  /** files beside nginx.conf (path → text), e.g. http.d/*.conf or modules.d/*.conf */
  files?: Record<string, string>;
  /** upstreams served elsewhere (name → port on 127.0.0.1), started with the fixture's PKI */
  upstreams?: (pki: DevPki) => Promise<Record<string, number>>;
} = {}): Promise<GatewayFixture> {
  const dir = mkdtempSync(join(tmpdir(), "crm-gw-"));
  const errors: string[] = [];
  let stub: Stub | undefined;
  try {
    const pki = ensureDevPki(join(dir, "certs"), { names: ["auth"] });
    const keys = ensureJwtKeys(join(dir, "keys"));
    const tokens = await TokenMaker.fromPem(readFileSync(keys.privateKeyFile, "utf8"), keys.kid);
    const ca = readFileSync(pki.ca);
    // the stub presents the "auth" certificate; nginx checks it against the upstream's name, so
    // every upstream name must be in its SAN: reissue it with all of them
    ensureCert(pki.dir, "stub", { hosts: [...upstreamNames], force: true });
    stub = await startStub({ cert: readFileSync(pki.cert("stub")), key: readFileSync(pki.key("stub")), ca, ...opts.stub });
    const closed = await freePort(); // nothing listens here
    const [https, http] = [await freePort(), await freePort()];
    const vars: Record<string, string> = {
      CRM_GW_WORKERS: opts.workers ?? "1",
      CRM_GW_HTTPS_LISTEN: `127.0.0.1:${https}`,
      CRM_GW_HTTP_LISTEN: `127.0.0.1:${http}`,
      CRM_GW_HTTPS_REDIRECT_PORT: `:${https}`,
      CRM_GW_TLS_CERT: pki.cert("gateway"),
      CRM_GW_TLS_KEY: pki.key("gateway"),
      CRM_GW_CLIENT_CA: pki.ca,
      CRM_GW_CLIENT_VERIFY: opts.clientVerify ?? "optional",
      CRM_GW_UPSTREAM_CA: pki.ca,
      CRM_GW_UPSTREAM_CERT: pki.cert("gateway"),
      CRM_GW_UPSTREAM_KEY: pki.key("gateway"),
      CRM_GW_JWKS_FILE: keys.jwksFile,
      CRM_GW_ACCESS_LOG: join(dir, "gateway", "logs", "access.log"),
      CRM_GW_MAX_BODY: "256k",
      CRM_GW_AUTH_RATE: "120r/m",
      CRM_GW_AUTH_BURST: "10",
      ...opts.vars,
    };
    const elsewhere = (await opts.upstreams?.(pki)) ?? {};
    for (const n of upstreamNames) {
      vars[`CRM_GW_${n.toUpperCase()}_ADDR`] = `127.0.0.1:${(opts.down ?? []).includes(n) ? closed : (elsewhere[n] ?? stub.port)}`;
    }
    for (const [path, text] of Object.entries(opts.files ?? {})) {
      mkdirSync(dirname(join(dir, "gateway", path)), { recursive: true });
      writeFileSync(join(dir, "gateway", path), text);
    }
    const nginx = await startNginx({
      dir: join(dir, "gateway"),
      vars,
      patch: opts.patch,
      onLine: (l) => {
        if (/\[(error|alert|emerg|crit)\]|js exception/.test(l)) errors.push(l);
      },
    });
    const fixture: GatewayFixture = {
      dir,
      pki,
      ca,
      clientCert: readFileSync(pki.cert("client")),
      clientKey: readFileSync(pki.key("client")),
      jwksFile: keys.jwksFile,
      tokens,
      stub,
      nginx,
      port: nginx.httpsPort,
      httpPort: nginx.httpPort,
      vars,
      errors,
      async close() {
        await nginx.stop();
        await fixture.stub.close(); // the current stub: a test may have replaced it (restart)
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return fixture;
  } catch (err) {
    await stub?.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
