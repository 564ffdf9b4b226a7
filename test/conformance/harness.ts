/**
 * The differential conformance suite's harness: the same ConformanceService served twice, by the
 * kit's fast path and by plain connect-node (startServer's `fastPath` switch), each on a cleartext
 * port (HTTP/1.1 and h2c) and a TLS port (HTTP/2 and HTTP/1.1 by ALPN); what a client saw of a call
 * as a comparable Outcome; and the runner that plays each case for each client on both paths,
 * checks the protocol's expected answer, and fails on any difference between the two paths,
 * naming case, client and path.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary, toJson, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { CaseDetailSchema, type Result } from "@crm/gen/crm/conformance/v1/conformance_pb";
import { BadRequestSchema } from "@crm/gen/google/rpc/error_details_pb";
import { AppError, createLogger, startServer, type RunningServer, type ServerOptions, type TokenVerifier } from "@crm/kit";
import { need } from "@crm/testkit";
import { conformanceModule, payload, type CallWatch } from "./service.js";
import { ensureCa, ensureCert } from "../../scripts/certs.mjs";

/** The server's read limit: requests over it are refused (resource_exhausted). */
export const SERVER_READ_MAX = 64 * 1024;

export type PathName = "fast path" | "connect-node";

/** One server path: a cleartext and a TLS server of the same module. */
export interface Target {
  path: PathName;
  /** http://127.0.0.1:port (HTTP/1.1 and h2c on one port). */
  h2c: string;
  /** https://127.0.0.1:port, or undefined without openssl. */
  tls: string | undefined;
  watch(callId: string): CallWatch;
}

export interface Tls {
  ca: Buffer;
  caFile: string;
}

const log = createLogger("conformance", "silent");
const nobody: TokenVerifier = {
  verify: async () => {
    throw new AppError("token_invalid", "the conformance service needs no token");
  },
};

const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;
/** The skip reason for TLS clients (one loud line; a failure under CI=true), or false. */
export const tlsSkip = need("openssl", hasOpenssl, "apt-get install -y openssl");

let tlsFiles: { dir: string; tls: Tls; cert: Buffer; key: Buffer } | undefined;
/** A CA and a server certificate for 127.0.0.1 / localhost, made once per process in a temporary folder. */
function tlsMaterial() {
  if (!tlsFiles) {
    const dir = mkdtempSync(join(tmpdir(), "crm-conformance-"));
    ensureCa(dir, { cn: "CRM conformance test CA" });
    ensureCert(dir, "conformance");
    const caFile = join(dir, "ca.crt");
    tlsFiles = { dir, tls: { ca: readFileSync(caFile), caFile }, cert: readFileSync(join(dir, "conformance.crt")), key: readFileSync(join(dir, "conformance.key")) };
  }
  return tlsFiles;
}

/** Starts both paths (fast path first). `close()` stops every server and removes the certificates. */
export async function startTargets(): Promise<{ targets: Target[]; tls: Tls | undefined; close(): Promise<void> }> {
  const servers: RunningServer[] = [];
  const targets: Target[] = [];
  const material = tlsSkip ? undefined : tlsMaterial();
  for (const fastPath of [true, false]) {
    const { module, watch } = conformanceModule();
    const base: ServerOptions = { modules: [module], port: 0, host: "127.0.0.1", log, verifier: nobody, readMaxBytes: SERVER_READ_MAX, shutdownTimeoutMs: 500, fastPath };
    const plain = await startServer(base);
    servers.push(plain);
    let tls: string | undefined;
    if (material) {
      const secure = await startServer({ ...base, tls: { cert: material.cert, key: material.key, clientAuth: "off", serviceIdentities: new Set() } });
      servers.push(secure);
      tls = `https://127.0.0.1:${secure.port}`;
    }
    targets.push({ path: fastPath ? "fast path" : "connect-node", h2c: `http://127.0.0.1:${plain.port}`, tls, watch });
  }
  return {
    targets,
    tls: material?.tls,
    async close() {
      await Promise.all(servers.map((s) => s.close()));
      if (tlsFiles) rmSync(tlsFiles.dir, { recursive: true, force: true });
      tlsFiles = undefined;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// What a client saw.

export type Protocol = "connect" | "grpc" | "grpc-web";

/** What can differ between clients: what they can send, and what the suite can ask of them. */
export type Capability =
  | "gzip" // sends a gzip request
  | "badEncoding" // sends a request in an encoding the server does not know
  | "readLimit" // bounds what it reads (a client-side readMaxBytes)
  | "deadline" // sends grpc-timeout / connect-timeout-ms
  | "cancel" // cancels a call in flight
  | "get" // Connect GET for NO_SIDE_EFFECTS methods
  | "unknownField" // sends a request with a field the server's schema does not know
  | "headers" // sends custom request headers
  | "streams" // server-streaming calls
  | "pause" // stops reading a stream (backpressure)
  | "unaryTrailers"; // the suite can see the trailers of a unary answer

export interface ClientInfo {
  name: string;
  protocol: Protocol;
  /** Protobuf binary on the wire (false: JSON). */
  binary: boolean;
  http: "1.1" | "2";
  tls: boolean;
  can: ReadonlySet<Capability>;
  /**
   * How the client decodes grpc-message: "decodeURI" for @grpc/grpc-js, which leaves escapes of
   * reserved characters (":" stays "%3A") as connect-node's encodeURIComponent sends them.
   */
  grpcMessage?: "decodeURI";
}

/** The message `c` shows for an error message `m` sent by a server. */
export const shownMessage = (c: ClientInfo, m: string) => (c.grpcMessage === "decodeURI" ? decodeURI(encodeURIComponent(m)) : m);

/** The server-side result as a client decoded it, reduced to what a case checks. */
export interface ResultView {
  payloadSize: number;
  /** The payload's bytes are the ones the server made (no truncation, no mixing). */
  payloadIntact: boolean;
  requestSize: number;
  unknownFields: number;
  deadline: "none" | "set";
  echoed: Record<string, string>;
  httpMethod: string;
  protocol: string;
}

/** One call as a client saw it. Headers, trailers and metadata hold the x-conf-* names only. */
export interface Outcome {
  code: string;
  message?: string;
  /** Error details, each "type json". */
  details?: string[];
  /** Success: response headers and trailers. */
  headers?: Record<string, string>;
  trailers?: Record<string, string>;
  /** Error: headers, trailers and the error's metadata together (clients put them in different places). */
  metadata?: Record<string, string>;
  result?: ResultView;
  /** Unknown fields the client kept from the response message (binary clients). */
  responseUnknownFields?: number;
  /** Streams: messages received, and whether each was the one the server made. */
  messages?: number;
  messagesIntact?: boolean;
  /** Streams paused after the first message: the server stopped producing before the end. */
  stalled?: boolean;
  /** Cancelled or timed-out calls: the code of the abort the handler's signal saw. */
  serverAbort?: string;
  /** Not compared: for messages only (e.g. the deadline the handler saw, messages produced while paused). */
  note?: string;
}

export const codeName = (c: Code | number) => (c === 0 ? "OK" : (Code[c] ?? `code ${c}`));

const detailSchemas: DescMessage[] = [BadRequestSchema, CaseDetailSchema];

/** Error details as "type json" (unknown types: "type base64"), from any client's representation. */
export function detailStrings(details: readonly ({ type: string; value: Uint8Array } | { desc: DescMessage; value: unknown })[]): string[] {
  return details.map((d) => {
    if ("desc" in d) return `${d.desc.typeName} ${JSON.stringify(d.value)}`;
    const schema = detailSchemas.find((s) => s.typeName === d.type);
    if (!schema) return `${d.type} ${Buffer.from(d.value).toString("base64")}`;
    return `${d.type} ${JSON.stringify(toJson(schema, fromBinary(schema, d.value)))}`;
  });
}

/** Details of a grpc-status-details-bin value (bytes or unpadded base64), as detailStrings. */
export function detailsFromStatusBin(bin: Uint8Array | string | undefined): string[] | undefined {
  if (bin === undefined) return undefined;
  const b64 = typeof bin === "string" ? bin : Buffer.from(bin).toString("base64");
  const err = findTrailerError(new Headers({ "grpc-status-details-bin": b64 }));
  return err ? detailStrings(err.details as { type: string; value: Uint8Array }[]) : [];
}

/** The x-conf-* entries of header sets (several values of a name joined by ", "), or undefined when none. */
export function confHeaders(...sets: (Iterable<[string, unknown]> | undefined)[]): Record<string, string> {
  const out: Record<string, string[]> = {};
  for (const set of sets) {
    if (!set) continue;
    for (const [k, v] of set) {
      const name = k.toLowerCase();
      if (!name.startsWith("x-conf-")) continue;
      for (const one of Array.isArray(v) ? v : [v]) (out[name] ??= []).push(String(one));
    }
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, v.join(", ")]));
}

export function resultView(r: Result | undefined): ResultView | undefined {
  if (!r) return undefined;
  return {
    payloadSize: r.payload.length,
    payloadIntact: Buffer.from(r.payload).equals(Buffer.from(payload(r.payload.length))),
    requestSize: r.requestSize,
    unknownFields: r.unknownFields,
    deadline: r.timeoutMs < 0n ? "none" : "set",
    echoed: Object.fromEntries(r.echoedHeaders.map((h) => [h.name, h.value])),
    httpMethod: r.httpMethod,
    protocol: r.protocol,
  };
}

/** An error as an Outcome (metadata: the x-conf-* entries of everything the client collected). */
export function errorOutcome(err: unknown): Outcome {
  const e = ConnectError.from(err);
  const o: Outcome = { code: codeName(e.code), message: e.rawMessage, metadata: confHeaders(e.metadata) };
  const details = detailStrings(e.details as { type: string; value: Uint8Array }[]);
  if (details.length) o.details = details;
  return o;
}

// ---------------------------------------------------------------------------------------------
// Expectations and the differential runner.

/** The outcome a case expects: only the fields it names are checked (result: only the named ones). */
export type Expected = { [K in keyof Outcome]?: K extends "result" ? Partial<ResultView> : Outcome[K] };

/** Where `actual` differs from the subset `expected` (objects compared key by key, recursively). */
export function mismatches(actual: unknown, expected: unknown, at = ""): string[] {
  if (expected !== null && typeof expected === "object" && !Array.isArray(expected)) {
    if (actual === null || typeof actual !== "object") return [`${at || "outcome"}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
    return Object.entries(expected as Record<string, unknown>).flatMap(([k, v]) => (v === undefined ? [] : mismatches((actual as Record<string, unknown>)[k], v, at ? `${at}.${k}` : k)));
  }
  try {
    assert.deepStrictEqual(actual, expected);
    return [];
  } catch {
    return [`${at}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
  }
}

/** The outcome without what is not compared between paths. */
const comparable = <O extends { note?: string | undefined }>(o: O): Omit<O, "note"> => {
  const { note: _note, ...rest } = o;
  return rest;
};

export interface Cell {
  case: string;
  client: string;
  path: PathName;
  outcome: Outcome;
}

/** Tally of case × client × path cells, per test file, for the summary line. */
export class Matrix {
  cells = 0;
  leftOut: string[] = [];
  cases = new Set<string>();
  clients = new Set<string>();
  failures: string[] = [];

  /**
   * Checks one case for one client on both paths: each path's outcome against `expected`, then
   * the two outcomes against each other. Returns the problems (none: the cell passes).
   */
  check<O extends { note?: string | undefined }>(caseName: string, client: string, outcomes: { path: PathName; outcome: O }[], expected: unknown): string[] {
    this.cases.add(caseName);
    this.clients.add(client);
    const problems: string[] = [];
    for (const { path, outcome } of outcomes) {
      this.cells++;
      for (const m of mismatches(outcome, expected)) problems.push(`${caseName} × ${client} × ${path}: ${m}${outcome.note ? ` (${outcome.note})` : ""}`);
    }
    const [a, b] = outcomes;
    if (a && b) {
      try {
        assert.deepStrictEqual(comparable(a.outcome), comparable(b.outcome));
      } catch {
        problems.push(`${caseName} × ${client}: the paths differ: ${a.path} ${JSON.stringify(comparable(a.outcome))} vs ${b.path} ${JSON.stringify(comparable(b.outcome))}`);
      }
    }
    this.failures.push(...problems);
    return problems;
  }

  summary(what: string) {
    const out = `${what}: ${this.cases.size} cases × ${this.clients.size} clients × 2 paths = ${this.cells} cells, ${this.failures.length} problems`;
    return this.leftOut.length ? `${out}; left out (known bugs): ${this.leftOut.join("; ")}` : out;
  }
}

/**
 * Errors nobody handled while cases ran (e.g. an "error" event of a server's HTTP/2 stream that no
 * listener takes, which would end a service's process). The runner takes them after each case.
 */
const unhandled: string[] = [];
process.on("uncaughtException", (err) => unhandled.push(`${(err as Error).stack ?? String(err)}`.split("\n").slice(0, 3).join(" | ")));
export const takeUnhandled = () => unhandled.splice(0);

/** Fails with every problem on its own line. */
export function assertNone(problems: string[]) {
  if (problems.length) assert.fail(`${problems.length} problem(s):\n  ${problems.join("\n  ")}`);
}

/** Resolves with `p`, or with `fallback` after `ms` (a watch that never fires must not hang the suite). */
export function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((r) => (timer = setTimeout(() => r(fallback), ms)))]).finally(() => clearTimeout(timer));
}

/**
 * Whether the handler's signal of a call aborted ("aborted", or "none" within 5 s). Its reason is
 * not compared: a client that gives up at its deadline and the server's own deadline timer race
 * (DeadlineExceeded or Canceled), and connect-node reports some resets as Internal.
 */
export async function serverAbort(target: Target, callId: string): Promise<{ serverAbort: string; why: string }> {
  const e = await within(target.watch(callId).aborted, 5_000, undefined);
  return e ? { serverAbort: "aborted", why: codeName(e.code) } : { serverAbort: "none", why: "" };
}

/** Sets serverAbort (and notes why) on an outcome. */
export async function noteAbort(outcome: Outcome, target: Target, callId: string) {
  const { serverAbort: s, why } = await serverAbort(target, callId);
  outcome.serverAbort = s;
  if (why) outcome.note = `${outcome.note ? `${outcome.note}; ` : ""}server signal: ${why}`;
}

/**
 * Waits until a paused stream's handler stops producing (no new message for `quietMs`), and says
 * whether it stopped before `count`: the server waited for the client to read (backpressure).
 */
export async function stalledBefore(watch: CallWatch, count: number, quietMs = 150, limitMs = 5_000): Promise<{ stalled: boolean; produced: number }> {
  const deadline = Date.now() + limitMs;
  let last = -1;
  let since = Date.now();
  while (Date.now() < deadline) {
    const now = watch.produced;
    if (now >= count || watch.finished) return { stalled: false, produced: now };
    if (now !== last) (last = now), (since = Date.now());
    else if (Date.now() - since >= quietMs) return { stalled: true, produced: now };
    await new Promise((r) => setTimeout(r, 10));
  }
  return { stalled: false, produced: watch.produced };
}

let ids = 0;
/** A call id unique in this process. */
export const newCallId = (what: string) => `${what.replace(/\W+/g, "-")}-${process.pid}-${++ids}`;

/** What the runner needs of a case (UnaryCase and StreamCase in cases.ts). */
export interface PlayableCase {
  name: string;
  needs: Capability[];
  expect(c: ClientInfo): Expected;
  volatile?: (keyof Outcome)[];
  /** Run one cell at a time (cases that measure the server, e.g. backpressure). */
  serial?: boolean;
  /**
   * Clients left out of this case, and why: a known bug, reported and to be fixed, which would
   * otherwise turn CI red. Every run names them (the summary line); delete the entry with the fix.
   */
  leaveOut?: (c: ClientInfo) => string | undefined;
}

/**
 * Plays `c` for every client that can, on every target (cells at once unless `c.serial`), and
 * returns the problems: expectation misses, differences between the paths, unhandled errors.
 */
export async function playCase<C extends PlayableCase, K extends ClientInfo>(matrix: Matrix, c: C, clients: K[], targets: Target[], run: (client: K, target: Target) => Promise<Outcome>): Promise<string[]> {
  const cell = async (client: K, target: Target) => {
    const outcome = await run(client, target);
    for (const k of c.volatile ?? []) {
      if (outcome[k] !== undefined) outcome.note = `${outcome.note ? `${outcome.note}; ` : ""}${k}: ${JSON.stringify(outcome[k])}`;
      delete outcome[k];
    }
    return { path: target.path, outcome };
  };
  const runnable = clients.filter((cl) => {
    if (!c.needs.every((n) => cl.can.has(n))) return false;
    const why = c.leaveOut?.(cl);
    if (why) matrix.leftOut.push(`${c.name} × ${cl.name}: ${why}`);
    return !why;
  });
  const results: { client: K; outcomes: { path: PathName; outcome: Outcome }[] }[] = [];
  if (c.serial) {
    for (const client of runnable) {
      const outcomes = [];
      for (const target of targets) outcomes.push(await cell(client, target));
      results.push({ client, outcomes });
    }
  } else {
    results.push(...(await Promise.all(runnable.map(async (client) => ({ client, outcomes: await Promise.all(targets.map((t) => cell(client, t))) })))));
  }
  const problems = results.flatMap((r) => matrix.check(c.name, r.client.name, r.outcomes, c.expect(r.client)));
  for (const u of takeUnhandled()) problems.push(`${c.name}: an error nobody handled (it would end a service's process): ${u}`);
  return problems;
}

