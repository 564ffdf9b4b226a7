/**
 * Test helpers shared by the gateway tests and the end-to-end tests: HTTPS requests with the dev
 * CA (and optionally a client certificate), free ports, access tokens good and bad, and the
 * Python gRPC client.
 */
import { spawn, spawnSync } from "node:child_process";
import { createPublicKey, randomUUID } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SignJWT, importPKCS8 } from "jose";
import { tokenCases, type TokenCase } from "@crm/testkit/token-cases";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const python = "/usr/bin/python3";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json(): any;
}

export interface ReqOpts {
  port: number;
  path: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  plain?: boolean;
  host?: string;
  timeoutMs?: number;
}

/** One HTTP/1.1 request on a fresh connection (so client-certificate tests see a new handshake). */
export function request(o: ReqOpts): Promise<Res> {
  return new Promise((resolve, reject) => {
    const mod = o.plain ? http : https;
    const req = mod.request(
      {
        host: o.host ?? "127.0.0.1",
        port: o.port,
        path: o.path,
        method: o.method ?? "GET",
        headers: o.body !== undefined ? { "content-length": String(Buffer.byteLength(o.body)), ...o.headers } : o.headers,
        agent: false,
        ...(o.plain ? {} : { ca: o.ca, cert: o.cert, key: o.key, servername: "localhost" }),
        timeout: o.timeoutMs ?? 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`request ${o.path} timed out`)));
    req.on("error", reject);
    if (o.body !== undefined) req.write(o.body);
    req.end();
  });
}

/** One HTTP/2 request on a fresh connection; `chunked` leaves out content-length (the body's size is unknown up front). */
export function request2(o: ReqOpts & { chunked?: boolean }): Promise<Res> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://${o.host ?? "localhost"}:${o.port}`, { ca: o.ca, cert: o.cert, key: o.key, servername: "localhost" });
    session.on("error", reject);
    const headers: http2.OutgoingHttpHeaders = { ":method": o.method ?? "GET", ":path": o.path, ...o.headers };
    if (o.body !== undefined && !o.chunked) headers["content-length"] = String(Buffer.byteLength(o.body));
    const stream = session.request(headers, { endStream: o.body === undefined });
    const timer = setTimeout(() => stream.destroy(new Error(`request ${o.path} timed out`)), o.timeoutMs ?? 15_000);
    let status = 0;
    let head: http.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      head = h as http.IncomingHttpHeaders;
    });
    // trailers (gRPC) are folded into the headers; a trailers-only answer has them in the response headers
    stream.on("trailers", (t) => Object.assign(head, t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    // the gateway may answer before the whole body is sent and reset the rest of the stream: that is fine
    stream.on("error", (err) => (status ? undefined : reject(err)));
    stream.on("close", () => {
      clearTimeout(timer);
      session.close();
      const body = Buffer.concat(chunks).toString();
      if (!status) return reject(new Error(`no answer to ${o.path} (stream closed, code ${stream.rstCode})`));
      resolve({ status, headers: head, body, json: () => JSON.parse(body) });
    });
    if (o.body !== undefined) stream.end(o.body);
  });
}

export interface TokenClaims {
  sub?: string;
  cid?: string;
  role?: string;
  sid?: string;
  iss?: string;
  aud?: string | string[];
  exp?: number;
  nbf?: number;
  iat?: number;
  [k: string]: unknown;
}

/** Signs access tokens the way the auth service does; the tokens every layer must refuse come from @crm/testkit/token-cases. */
export class TokenMaker {
  private constructor(
    private readonly key: Awaited<ReturnType<typeof importPKCS8>>,
    private readonly privatePem: string,
    readonly kid: string,
    readonly publicPem: string,
    readonly issuer: string,
    readonly audience: string,
  ) {}

  static async fromPem(privatePem: string, kid: string, issuer = "crm-auth", audience = "crm-api") {
    const key = await importPKCS8(privatePem, "RS256");
    const publicPem = createPublicKey(privatePem).export({ type: "spki", format: "pem" }).toString();
    return new TokenMaker(key, privatePem, kid, publicPem, issuer, audience);
  }

  claims(over: TokenClaims = {}): TokenClaims {
    const now = Math.floor(Date.now() / 1000);
    return {
      iss: this.issuer,
      aud: this.audience,
      sub: randomUUID(),
      cid: randomUUID(),
      role: "owner",
      sid: randomUUID(),
      jti: randomUUID(),
      iat: now,
      exp: now + 900,
      ...over,
    };
  }

  async sign(over: TokenClaims = {}, header: Record<string, unknown> = {}): Promise<string> {
    const claims = Object.fromEntries(Object.entries(this.claims(over)).filter(([, v]) => v !== undefined));
    return new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: this.kid, typ: "at+jwt", ...header }).sign(this.key);
  }

  /** The shared table of token cases (good and bad), signed with this key. */
  cases(): Promise<TokenCase[]> {
    return tokenCases({ privatePem: this.privatePem, kid: this.kid, issuer: this.issuer, audience: this.audience });
  }

  /** Every token the gateway must refuse, by name (the table's invalid cases). */
  async bad(): Promise<Record<string, string>> {
    return Object.fromEntries((await this.cases()).filter((c) => !c.valid).map((c) => [c.name, c.token]));
  }
}

/** The Python modules the gRPC client imports, and the Debian package that provides each. */
export const pythonModules = [
  ["grpc", "python3-grpcio"],
  ["grpc_tools.protoc", "python3-grpc-tools"],
  ["google.protobuf", "python3-protobuf"],
] as const;

/**
 * undefined when /usr/bin/python3 can import every module the gRPC client needs; else ONE line
 * naming exactly the Debian packages whose modules fail to import (not the whole list).
 */
export function pythonGrpcProblem(opts: { python?: string; env?: NodeJS.ProcessEnv } = {}): string | undefined {
  const bin = opts.python ?? python;
  const missing = pythonModules.filter(([mod]) => spawnSync(bin, ["-c", `import ${mod}`], { stdio: "ignore", env: opts.env ?? process.env }).status !== 0);
  if (missing.length === 0) return undefined;
  const pkgs = missing.map(([, pkg]) => pkg).join(" ");
  return `${pkgs} ${missing.length === 1 ? "is" : "are"} not installed (${bin} cannot import ${missing.map(([mod]) => mod).join(", ")}); install with: apt-get install -y ${pkgs}`;
}

let pythonChecked: string | undefined | null = null;
/** pythonGrpcProblem() for /usr/bin/python3, checked once per test file. */
export function pythonGrpcMissing(): string | undefined {
  if (pythonChecked === null) pythonChecked = pythonGrpcProblem();
  return pythonChecked;
}

export interface PyResult {
  messages: any[];
  status: string;
  details: string;
  stderr: string;
}

/** Runs services/gateway/test/grpc_call.py (a grpcio client) and collects its JSON lines. */
export function pythonGrpcCall(opts: {
  port: number;
  ca: string;
  method: string;
  request?: unknown;
  token?: string;
  cert?: string;
  key?: string;
  max?: number;
  metadata?: Record<string, string>;
  timeoutMs?: number;
  /** Called for each response message as it arrives; return true to end the call (SIGTERM). */
  onMessage?: (message: any) => boolean | void;
}): Promise<PyResult> {
  const script = join(repoRoot, "services", "gateway", "test", "grpc_call.py");
  const args = [script, "--protos", join(repoRoot, "proto"), "--target", `localhost:${opts.port}`, "--ca", opts.ca];
  if (opts.token) args.push("--token", opts.token);
  if (opts.cert) args.push("--cert", opts.cert, "--key", opts.key ?? "");
  if (opts.max) args.push("--max", String(opts.max));
  for (const [k, v] of Object.entries(opts.metadata ?? {})) args.push("--metadata", `${k}=${v}`);
  // the request goes on stdin: a large message does not fit in an argument (E2BIG)
  args.push(opts.method, "-");
  return new Promise((resolve, reject) => {
    const child = spawn(python, args, { stdio: ["pipe", "pipe", "pipe"] });
    child.stdin.on("error", () => {}); // the script may exit before reading it all
    child.stdin.end(JSON.stringify(opts.request ?? {}));
    let out = "";
    let err = "";
    let pending = "";
    child.stdout.on("data", (d) => {
      out += d;
      pending += d;
      let i;
      while ((i = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        try {
          const j = JSON.parse(line);
          if ("message" in j && opts.onMessage?.(j.message)) child.kill("SIGTERM");
        } catch {
          /* partial or not JSON */
        }
      }
    });
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      const lines = out.split("\n").filter(Boolean).map((l) => JSON.parse(l));
      const last = lines.find((l) => "status" in l) ?? (code === null ? { status: "ENDED_BY_TEST", details: "" } : undefined);
      if (!last) return reject(new Error(`grpc_call.py exited ${code}: ${err.trim().split("\n").slice(-3).join(" | ")}`));
      resolve({ messages: lines.filter((l) => "message" in l).map((l) => l.message), status: last.status, details: last.details, stderr: err });
    });
  });
}

/** An nginx time ("1h", "2s", "500ms", "1m30s"; a bare number is seconds) in milliseconds. */
export function nginxTimeMs(value: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const parts = [...value.trim().matchAll(/(\d+)(ms|s|m|h|d)?/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== value.trim()) throw new Error(`not an nginx time: ${JSON.stringify(value)}`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * units[p[2] ?? "s"]!, 0);
}

/** The directives of `location <match> {…}` in a rendered nginx.conf (no nested blocks), by name. */
export function locationDirectives(conf: string, match: string): Map<string, string> {
  const start = conf.indexOf(`location ${match} {`);
  if (start < 0) throw new Error(`no location ${match} in the configuration`);
  const body = conf.slice(conf.indexOf("{", start) + 1, conf.indexOf("}", start)).replace(/#[^\n]*/g, "");
  const directives = new Map<string, string>();
  for (const statement of body.split(";")) {
    const [name, ...args] = statement.trim().split(/\s+/);
    if (name) directives.set(name, args.join(" "));
  }
  return directives;
}
