/**
 * The same cases (cases.ts) from clients that are not ours nor Node's: `buf curl` (connect-go:
 * Connect, gRPC and gRPC-Web; HTTP/1.1, h2c, TLS) and Debian's python3-grpcio (gRPC core: h2c and
 * TLS), on the fast path and on plain connect-node. Python runs as one process for the file
 * (grpcio_client.py, generic calls on bytes Node encodes); buf curl is one process per call,
 * several at a time. A missing tool skips with one loud line (a failure under CI=true).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { fromBinary, fromJson, toBinary, toJsonString, type JsonValue } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import {
  ConformanceService,
  LookupRequestSchema,
  LookupResponseSchema,
  ServerStreamRequestSchema,
  ServerStreamResponseSchema,
  UnaryRequestSchema,
  UnaryResponseSchema,
} from "@crm/gen/crm/conformance/v1/conformance_pb";
import { need } from "@crm/testkit";
import { streamCases, unaryCases, type StreamCall, type UnaryCall } from "./cases.js";
import { requestMessage, streamRequestMessage, unknownCount, type NodeClient } from "./clients.js";
import {
  assertNone,
  codeName,
  confHeaders,
  detailsFromStatusBin,
  detailStrings,
  Matrix,
  newCallId,
  noteAbort,
  playCase,
  resultView,
  stalledBefore,
  startTargets,
  type Capability,
  type Outcome,
  type Target,
  type Tls,
} from "./harness.js";
import { payload } from "./service.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const root = join(here, "..", "..");

// ---------------------------------------------------------------------------------------------
// What is installed.

const PYTHON = "/usr/bin/python3"; // Debian's interpreter: python3-grpcio installs for it, not for a pyenv python on PATH
const hasGrpcio = spawnSync(PYTHON, ["-c", "import grpc"]).status === 0;
const pythonSkip = need("python3-grpcio (Debian's gRPC for /usr/bin/python3)", hasGrpcio, "apt-get install -y python3-grpcio");

/** buf's own binary (the npm package's platform build): `npx buf` would add a Node start per call. */
function bufBinary(): string | undefined {
  const require = createRequire(import.meta.url);
  const arch = process.arch === "arm64" ? "aarch64" : process.arch;
  try {
    return require.resolve(`@bufbuild/buf-${process.platform}-${arch}/bin/buf`);
  } catch {
    return undefined;
  }
}
const BUF = bufBinary();
const bufSkip = need("buf (npm devDependency @bufbuild/buf)", BUF !== undefined, "npm ci");

let targets: Target[];
let tls: Tls | undefined;
let close: () => Promise<void>;
let work: string;
let image: string;
const matrix = new Matrix();

before(async () => {
  const started = await startTargets();
  targets = started.targets;
  tls = started.tls;
  close = started.close;
  work = mkdtempSync(join(tmpdir(), "crm-conformance-ext-"));
  image = join(work, "conformance.binpb");
  if (BUF) {
    // The schema from the proto folder, built once: buf curl reads the image instead of compiling per call.
    const built = spawnSync(BUF, ["build", join(root, "proto"), "--path", join(root, "proto", "crm", "conformance"), "-o", image], { cwd: root, encoding: "utf8" });
    if (built.status !== 0) throw new Error(`buf build failed: ${built.stderr}`);
  }
  if (!pythonSkip) python = new Python();
  clients = externalClients();
});
after(async () => {
  process.stdout.write(`# ${matrix.summary("unary and streams × buf curl, python3-grpcio")}\n`);
  await python?.close();
  await close();
  rmSync(work, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// python3-grpcio, driven line by line (grpcio_client.py).

interface PyResult {
  id: string;
  code: number;
  message: string;
  initial: [string, string][];
  trailing: [string, string][];
  details_bin: string | null;
  response?: string;
  messages?: string[];
}

class Python {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly results = new Map<string, (r: PyResult) => void>();
  readonly firsts = new Map<string, () => void>();
  readonly exited: Promise<void>;
  constructor() {
    this.proc = spawn(PYTHON, [join(here, "grpcio_client.py")], { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    this.proc.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    this.exited = new Promise((resolve) =>
      this.proc.once("exit", (code) => {
        for (const [id, done] of this.results) done({ id, code: -1, message: `python exited (${code}): ${stderr.slice(-500)}`, initial: [], trailing: [], details_bin: null });
        resolve();
      }),
    );
    createInterface({ input: this.proc.stdout }).on("line", (line) => {
      const msg = JSON.parse(line) as PyResult & { event?: string };
      if (msg.event === "first") return this.firsts.get(msg.id)?.();
      const done = this.results.get(msg.id);
      this.results.delete(msg.id);
      done?.(msg);
    });
  }
  send(cmd: Record<string, unknown>) {
    this.proc.stdin.write(`${JSON.stringify(cmd)}\n`);
  }
  call(spec: Record<string, unknown> & { id: string }): Promise<PyResult> {
    const p = new Promise<PyResult>((resolve) => this.results.set(spec.id, resolve));
    this.send({ op: "call", ...spec });
    return p;
  }
  async close() {
    this.proc.stdin.end();
    await this.exited;
  }
}
let python: Python | undefined;

/** An Outcome from what python saw: status, metadata (base64 for -bin keys), response bytes. */
function pythonOutcome(r: PyResult): Outcome {
  if (r.code === -1) return { code: "harness error", message: r.message };
  if (r.code !== 0) {
    const o: Outcome = { code: codeName(r.code), message: r.message, metadata: confHeaders(r.initial, r.trailing) };
    const details = detailsFromStatusBin(r.details_bin ?? undefined);
    if (details?.length) o.details = details;
    return o;
  }
  return { code: "OK", headers: confHeaders(r.initial), trailers: confHeaders(r.trailing) };
}

function pythonClient(useTls: boolean): NodeClient {
  const common = (target: Target) => ({ target: new URL(useTls ? target.tls! : target.h2c).host, tls_ca: useTls ? tls!.caFile : null });
  // No "pause": gRPC core reads a stream ahead into its own buffers (its flow-control window grows
  // with its bandwidth estimate), so a Python reader that stops does not hold the server back.
  const can = new Set<Capability>(["gzip", "badEncoding", "readLimit", "deadline", "cancel", "headers", "unknownField", "streams", "unaryTrailers"]);
  return {
    name: `python3-grpcio ${useTls ? "h2 TLS" : "h2c"}`,
    protocol: "grpc",
    binary: true,
    http: "2",
    tls: useTls,
    can,
    async unary(target, call) {
      const id = newCallId("python");
      const lookup = call.method === "lookup";
      const request = toBinary(lookup ? (LookupRequestSchema as unknown as typeof UnaryRequestSchema) : UnaryRequestSchema, requestMessage(call, id));
      const pending = python!.call({
        id,
        kind: "unary",
        ...common(target),
        path: `/${ConformanceService.typeName}/${lookup ? "Lookup" : "Unary"}`,
        request: Buffer.from(request).toString("base64"),
        metadata: Object.entries(call.headers ?? {}),
        timeout: call.timeoutMs === undefined ? null : call.timeoutMs / 1000,
        compression: call.sendGzip ? "gzip" : call.badEncoding ? "deflate" : null, // grpcio's deflate: an encoding our servers do not take
        max_receive: call.readMaxBytes ?? null,
      });
      if (call.cancel) void target.watch(id).started.then(() => python!.send({ op: "cancel", id }));
      const r = await pending;
      const outcome = pythonOutcome(r);
      if (r.code === 0 && r.response !== undefined) {
        const res = fromBinary(lookup ? (LookupResponseSchema as unknown as typeof UnaryResponseSchema) : UnaryResponseSchema, Buffer.from(r.response, "base64"));
        outcome.result = resultView(res.result);
        outcome.responseUnknownFields = unknownCount(res);
      }
      if (call.watchAbort) await noteAbort(outcome, target, id);
      return outcome;
    },
    async stream(target, call) {
      const id = newCallId("python-stream");
      const request = toBinary(ServerStreamRequestSchema, streamRequestMessage(call, id));
      let stalled: boolean | undefined;
      let note: string | undefined;
      if (call.pauseAfterFirst) {
        python!.firsts.set(id, () => {
          void stalledBefore(target.watch(id), call.request.count ?? 0).then((s) => {
            stalled = s.stalled;
            note = `${s.produced} produced while paused`;
            python!.send({ op: "resume", id });
          });
        });
      }
      const r = await python!.call({
        id,
        kind: "stream",
        ...common(target),
        path: `/${ConformanceService.typeName}/ServerStream`,
        request: Buffer.from(request).toString("base64"),
        metadata: Object.entries(call.headers ?? {}),
        timeout: call.timeoutMs === undefined ? null : call.timeoutMs / 1000,
        compression: call.sendGzip ? "gzip" : null,
        max_receive: call.readMaxBytes ?? null,
        cancel_after_first: call.cancelAfterFirst ?? false,
        pause_after_first: call.pauseAfterFirst ?? false,
      });
      python!.firsts.delete(id);
      const outcome = pythonOutcome(r);
      const messages = (r.messages ?? []).map((b) => fromBinary(ServerStreamResponseSchema, Buffer.from(b, "base64")));
      outcome.messages = messages.length;
      if (messages.length) outcome.messagesIntact = messages.every((m, i) => m.index === i && Buffer.from(m.payload).equals(Buffer.from(payload(m.payload.length, i))));
      if (stalled !== undefined) outcome.stalled = stalled;
      if (note) outcome.note = note;
      if (call.watchAbort) await noteAbort(outcome, target, id);
      return outcome;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// buf curl: one process per call, its verbose log read for headers and trailers.

/** At most this many buf processes at once. */
const BUF_PARALLEL = 6;
let running = 0;
const queue: (() => void)[] = [];
async function limited<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= BUF_PARALLEL) await new Promise<void>((r) => queue.push(r));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    queue.shift()?.();
  }
}

interface BufRun {
  exit: number;
  stdout: string;
  /** Response headers and trailers from the verbose log (names lower-cased). */
  headers: [string, string][];
  trailers: [string, string][];
  /** The error buf printed (JSON), if the call failed. */
  error: { code: string; message?: string; details?: { type: string; value: string }[] } | undefined;
}

function runBuf(args: string[], input: string): Promise<BufRun> {
  return limited(
    () =>
      new Promise((resolve) => {
        const p = spawn(BUF!, args, { stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        p.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
        p.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
        p.stdin.end(input);
        p.on("close", (exit) => {
          const headers: [string, string][] = [];
          const trailers: [string, string][] = [];
          let section: "none" | "headers" | "trailers" = "none";
          const rest: string[] = [];
          for (const line of stderr.split("\n")) {
            const m = /^buf: < \(#\d+\)(?: (.*))?$/.exec(line);
            if (!m) {
              if (!line.startsWith("buf: ")) rest.push(line);
              continue;
            }
            const text = m[1] ?? "";
            if (/^HTTP\//.test(text)) section = "headers";
            else if (text === "") section = section === "headers" ? "trailers" : section;
            else {
              const kv = /^(?:\[\*\] )?([^:]+):\s?(.*)$/.exec(text);
              if (kv) (section === "headers" ? headers : trailers).push([kv[1]!.toLowerCase(), kv[2]!]);
            }
          }
          const errorText = rest.join("\n").trim();
          let error: BufRun["error"];
          if (exit !== 0) {
            try {
              error = JSON.parse(errorText) as BufRun["error"];
            } catch {
              error = { code: "harness error", message: errorText.slice(0, 300) || stderr.slice(-300) };
            }
          }
          resolve({ exit: exit ?? -1, stdout, headers, trailers, error });
        });
      }),
  );
}

const codeOf = (snake: string) => {
  const camel = snake.replace(/(^|_)([a-z])/g, (_m, _u: string, c: string) => c.toUpperCase());
  return camel in Code ? camel : snake;
};

/** Headers and trailers as the protocol means them: Connect unary sends trailers as "trailer-" headers. */
function bufMetadata(run: BufRun) {
  const headers = run.headers.filter(([k]) => !k.startsWith("trailer-"));
  const trailers = [...run.trailers, ...run.headers.filter(([k]) => k.startsWith("trailer-")).map(([k, v]) => [k.slice("trailer-".length), v] as [string, string])];
  return { headers, trailers };
}

function bufOutcome(run: BufRun): Outcome {
  const { headers, trailers } = bufMetadata(run);
  if (run.error) {
    const o: Outcome = { code: codeOf(run.error.code), message: run.error.message ?? "", metadata: confHeaders(headers, trailers) };
    const details = detailStrings((run.error.details ?? []).map((d) => ({ type: d.type, value: Buffer.from(d.value, "base64") })));
    if (details.length) o.details = details;
    return o;
  }
  return { code: "OK", headers: confHeaders(headers), trailers: confHeaders(trailers) };
}

/** Concatenated JSON documents (buf curl's output for a stream). */
function jsonDocuments(text: string): JsonValue[] {
  const out: JsonValue[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === "\\") i++;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (ch === "{") {
      if (depth++ === 0) start = i;
    } else if (ch === "}" && --depth === 0) out.push(JSON.parse(text.slice(start, i + 1)) as JsonValue);
  }
  return out;
}

function bufClient(protocol: "connect" | "grpc" | "grpcweb", http: "1.1" | "2", useTls: boolean): NodeClient {
  const flags = (target: Target, headers: Record<string, string> | undefined, timeoutMs: number | undefined) => [
    "curl",
    "--schema",
    image,
    "--protocol",
    protocol,
    "-v",
    ...(http === "2" && !useTls ? ["--http2-prior-knowledge"] : []),
    ...(useTls ? ["--cacert", tls!.caFile] : []),
    ...Object.entries(headers ?? {}).flatMap(([k, v]) => ["-H", `${k}: ${v}`]),
    ...(timeoutMs !== undefined ? ["--timeout", `${timeoutMs}ms`] : []),
    "-d",
    "@-",
  ];
  const base = (target: Target) => (useTls ? target.tls! : target.h2c);
  return {
    name: `buf curl ${protocol === "grpcweb" ? "gRPC-Web" : protocol === "grpc" ? "gRPC" : "Connect"} ${useTls ? `HTTP/${http === "2" ? "2" : "1.1"} TLS` : http === "2" ? "h2c" : "HTTP/1.1"}`,
    protocol: protocol === "grpcweb" ? "grpc-web" : protocol,
    // its output is JSON: unknown fields of an answer do not reach it
    binary: false,
    http,
    tls: useTls,
    // deadlines: buf's --timeout also counts its own start, so only long ones are played; its log
    // shows no trailers of a unary gRPC-Web answer (they are in the body)
    can: new Set<Capability>(["headers", "deadline", "streams", ...(protocol === "grpcweb" ? [] : (["unaryTrailers"] as const))]),
    async unary(target, call) {
      const lookup = call.method === "lookup";
      const message = requestMessage(call, newCallId("buf"));
      const json = toJsonString(lookup ? (LookupRequestSchema as unknown as typeof UnaryRequestSchema) : UnaryRequestSchema, message);
      const run = await runBuf([...flags(target, call.headers, call.timeoutMs), `${base(target)}/${ConformanceService.typeName}/${lookup ? "Lookup" : "Unary"}`], json);
      const outcome = bufOutcome(run);
      if (!run.error) {
        const res = fromJson(lookup ? (LookupResponseSchema as unknown as typeof UnaryResponseSchema) : UnaryResponseSchema, JSON.parse(run.stdout) as JsonValue);
        outcome.result = resultView(res.result);
        outcome.responseUnknownFields = 0;
      }
      return outcome;
    },
    async stream(target, call) {
      const json = toJsonString(ServerStreamRequestSchema, streamRequestMessage(call, newCallId("buf-stream")));
      const run = await runBuf([...flags(target, call.headers, call.timeoutMs), `${base(target)}/${ConformanceService.typeName}/ServerStream`], json);
      const outcome = bufOutcome(run);
      const messages = jsonDocuments(run.stdout).map((d) => fromJson(ServerStreamResponseSchema, d));
      outcome.messages = messages.length;
      if (messages.length) outcome.messagesIntact = messages.every((m, i) => m.index === i && Buffer.from(m.payload).equals(Buffer.from(payload(m.payload.length, i))));
      return outcome;
    },
  };
}

/**
 * The cases buf plays: one process per call costs, so of the status codes only a sample (every
 * code is played by the other clients; what buf adds is connect-go's reading of each protocol),
 * and deadlines long enough to outlast its own start.
 */
const bufSample = new Set(["status 2 Unknown", "status 5 NotFound", "status 14 Unavailable", "status 16 Unauthenticated"]);
const bufPlays = (c: { name: string; call: UnaryCall | StreamCall }) => (!c.name.startsWith("status ") || bufSample.has(c.name)) && (c.call.timeoutMs === undefined || c.call.timeoutMs >= 10_000);

function externalClients(): NodeClient[] {
  const list: NodeClient[] = [];
  if (!bufSkip) {
    list.push(bufClient("connect", "1.1", false), bufClient("grpc", "2", false), bufClient("grpcweb", "1.1", false));
    if (tls) list.push(bufClient("grpc", "2", true));
  }
  if (!pythonSkip) {
    list.push(pythonClient(false));
    if (tls) list.push(pythonClient(true));
  }
  return list;
}

let clients: NodeClient[];

const isBuf = (c: NodeClient) => c.name.startsWith("buf curl");

for (const c of unaryCases) {
  test(`unary: ${c.name}`, { skip: pythonSkip && bufSkip }, async () => {
    const players = clients.filter((cl) => !isBuf(cl) || bufPlays(c));
    assertNone(await playCase(matrix, c, players, targets, (client, target) => client.unary(target, c.call)));
  });
}

for (const c of streamCases) {
  test(`stream: ${c.name}`, { skip: pythonSkip && bufSkip }, async () => {
    const players = clients.filter((cl) => !isBuf(cl) || bufPlays(c));
    assertNone(await playCase(matrix, c, players, targets, (client, target) => client.stream!(target, c.call)));
  });
}


