/**
 * dbservice and email as their own processes, as in the cluster: TLS with client certificates
 * from a throw-away dev CA (scripts/certs.mjs), real PostgreSQL and RabbitMQ, a unique e-mail
 * queue per run so parallel test files and other apps on the same broker never share tasks.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import amqp from "amqplib";
import { ensureDevPki, ensureJwtKeys, type DevPki } from "../../../scripts/certs.mjs";
import { deadLetterQueueOf } from "@crm/contracts";
import { TEST_AMQP_URL, freshDatabase, type TestDatabase } from "@crm/testkit";

const root = resolve(fileURLToPath(new URL("../../..", import.meta.url)));
const entry = join(root, "services/all/src/main.ts");

export interface ServiceProcess {
  name: string;
  port: number;
  child: ChildProcess;
  output: string[];
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `node services/all/src/main.ts <target>` and resolves when it logs "ready" (with its port). */
export function startService(target: string, env: Record<string, string>, timeoutMs = 60_000): Promise<ServiceProcess> {
  // `npm run bench -- --profile` sets BENCH_CPU_PROF: each process writes a CPU profile there on a clean exit.
  const prof = process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}${target}`] : [];
  const child = spawn(process.execPath, [...prof, "--conditions=source", "--import", "tsx", entry, target], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...(process.env.NODE_OPTIONS ? { NODE_OPTIONS: process.env.NODE_OPTIONS } : {}), LOG_LEVEL: "info", LOGS_REPORT_ERRORS: "false", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${target} did not get ready within ${timeoutMs} ms:\n${output.slice(-30).join("\n")}`));
    }, timeoutMs);
    let buffered = "";
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        output.push(line);
        if (output.length > 2000) output.splice(0, 1000);
        if (line.includes('"msg":"ready"')) {
          clearTimeout(timer);
          const port = (JSON.parse(line) as { port: number }).port;
          resolvePromise({
            name: target,
            port,
            child,
            output,
            exited,
            kill(signal = "SIGTERM") {
              if (child.exitCode === null && child.signalCode === null) child.kill(signal);
              return exited;
            },
          });
        }
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${target} exited (${code}) before it was ready:\n${output.slice(-30).join("\n")}`));
    });
  });
}

export interface MiniCluster {
  dir: string;
  pki: DevPki;
  db: TestDatabase;
  queue: string;
  jwksFile: string;
  dbservice: ServiceProcess;
  /** A typed client of dbservice presenting the named service's certificate. */
  client<S extends DescService>(desc: S, as: string): Client<S>;
  startEmail(env?: Record<string, string>): Promise<ServiceProcess>;
  /** Messages waiting in a queue of this run (e.g. the dead-letter queue). */
  queueDepth(name: string): Promise<number>;
  close(): Promise<void>;
}

export async function startMiniCluster(): Promise<MiniCluster> {
  const dir = mkdtempSync(join(tmpdir(), "crm-email-"));
  const pki = ensureDevPki(join(dir, "certs"), { names: ["dbservice", "email", "auth", "admin"] });
  const keys = ensureJwtKeys(join(dir, "keys"));
  const db = await freshDatabase();
  const queue = `email_tasks.test-${randomBytes(5).toString("hex")}`;
  const tls = (name: string) => ({ TLS_CERT_FILE: pki.cert(name), TLS_KEY_FILE: pki.key(name), TLS_CA_FILE: pki.ca, TLS_CLIENT_AUTH: "require" });
  const common = { HOST: "127.0.0.1", PORT: "0", JWT_PUBLIC_KEYS_FILE: keys.jwksFile, AMQP_URL: TEST_AMQP_URL, EMAIL_QUEUE: queue };
  const processes: ServiceProcess[] = [];
  let dbservice: ServiceProcess;
  try {
    dbservice = await startService("dbservice", { ...common, ...tls("dbservice"), DATABASE_URL: db.url });
    processes.push(dbservice);
  } catch (err) {
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const dbUrl = `https://127.0.0.1:${dbservice.port}`;
  const conn = await amqp.connect(TEST_AMQP_URL);
  const withChannel = async <T>(fn: (ch: amqp.Channel) => Promise<T>): Promise<T> => {
    const ch = await conn.createChannel();
    ch.on("error", () => {});
    try {
      return await fn(ch);
    } finally {
      await ch.close().catch(() => {});
    }
  };
  return {
    dir,
    pki,
    db,
    queue,
    jwksFile: keys.jwksFile,
    dbservice,
    client(desc, as) {
      const transport = createGrpcTransport({ baseUrl: dbUrl, nodeOptions: { cert: readFileSync(pki.cert(as)), key: readFileSync(pki.key(as)), ca: readFileSync(pki.ca) } });
      return createClient(desc, transport);
    },
    async startEmail(env = {}) {
      const p = await startService("email", { ...common, ...tls("email"), DBSERVICE_URL: dbUrl, ...env });
      processes.push(p);
      return p;
    },
    async queueDepth(name) {
      return withChannel(async (ch) => (await ch.checkQueue(name)).messageCount);
    },
    async close() {
      await Promise.all(processes.map((p) => p.kill("SIGKILL")));
      for (const q of [queue, `${queue}.retry`, deadLetterQueueOf(queue)]) await withChannel((ch) => ch.deleteQueue(q)).catch(() => {});
      await conn.close().catch(() => {});
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
