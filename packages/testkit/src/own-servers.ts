/**
 * Backing servers a test owns: its own PostgreSQL, Redis and RabbitMQ, on free ports, with their
 * data in a temporary folder, started and stopped by the test. Fault tests freeze them (SIGSTOP),
 * stop and restart them, and never touch the machine's shared servers.
 *
 *   const redis = await ownRedis();          // redis.url; redis.freeze()/thaw(); redis.restart() (empty)
 *   const pg = await ownPostgres();          // pg.url (database "postgres", user postgres, trust)
 *   const rabbit = await ownRabbitMq();      // rabbit.url; ~5-10 s to start: once per file
 *   …
 *   await Promise.all([redis.close(), pg.close(), rabbit.close()]);
 *
 * ownServersProblem() names what is missing (for need()). Every process runs in its own process
 * group, so a freeze stops all of a server's processes (PostgreSQL's backends, RabbitMQ's Erlang VM)
 * and close() leaves nothing behind, even when the test process dies (SIGKILL on exit).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { until } from "./until.js";

const pgBin = () => {
  const base = "/usr/lib/postgresql";
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, "bin", "initdb"))).sort((a, b) => Number(b) - Number(a)) : [];
  return versions[0] ? join(base, versions[0], "bin") : undefined;
};
const which = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).stdout.trim() || undefined;
/** RabbitMQ's own start script (the /usr/sbin wrapper would switch to the rabbitmq user). */
const rabbitScript = () => {
  const base = "/usr/lib/rabbitmq/lib";
  if (!existsSync(base)) return undefined;
  const dir = readdirSync(base).find((d) => d.startsWith("rabbitmq_server-") && existsSync(join(base, d, "sbin", "rabbitmq-server")));
  return dir ? join(base, dir, "sbin", "rabbitmq-server") : undefined;
};
const isRoot = () => process.getuid?.() === 0;

/** What to install for ownPostgres/ownRedis/ownRabbitMq, or undefined when everything is there. */
export function ownServersProblem(...needs: ("postgres" | "redis" | "rabbitmq")[]): string | undefined {
  const missing: string[] = [];
  if (needs.includes("postgres") && !pgBin()) missing.push("PostgreSQL server binaries (apt-get install postgresql: initdb and postgres under /usr/lib/postgresql/<version>/bin)");
  if (needs.includes("postgres") && isRoot() && (!which("setpriv") || spawnSync("id", ["-u", "postgres"]).status !== 0)) missing.push("a postgres user and setpriv (util-linux) to run PostgreSQL when the tests run as root");
  if (needs.includes("redis") && !which("redis-server")) missing.push("redis-server (apt-get install redis-server)");
  if (needs.includes("rabbitmq") && !rabbitScript()) missing.push("rabbitmq-server (apt-get install rabbitmq-server)");
  return missing.length ? missing.join("; ") : undefined;
}

export interface OwnServer {
  url: string;
  port: number;
  /** SIGSTOP to every process of the server: connections stay open, nothing answers (as a stuck VM or a GC pause). */
  freeze(): void;
  /** SIGCONT. */
  thaw(): void;
  /** Stops it (SIGTERM, SIGKILL after 10 s); start() brings it back on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it, removes its data dir and temporary files. */
  close(): Promise<void>;
  /** What it printed (for failure messages). */
  output(): string;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) if (c.pid) try { process.kill(-c.pid, "SIGKILL"); } catch { /* gone */ }
});

/** One server process in its own process group; `ready()` says when it answers. */
function serverProcess(o: { name: string; dir: string; command: () => { file: string; args: string[]; env?: NodeJS.ProcessEnv }; ready: () => Promise<boolean>; readyMs: number; stopSignal?: NodeJS.Signals; url: string; port: number; cleanup?: () => void }): OwnServer {
  let child: ChildProcess | undefined;
  let out = "";
  const signal = (s: NodeJS.Signals) => {
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    process.kill(-child.pid, s);
    // Processes that left the group (PostgreSQL's backends call setsid) are reached as descendants.
    for (const pid of descendants(child.pid)) try { process.kill(pid, s); } catch { /* gone meanwhile */ }
  };
  const server: OwnServer = {
    url: o.url,
    port: o.port,
    freeze: () => signal("SIGSTOP"),
    thaw: () => signal("SIGCONT"),
    async start() {
      const { file, args, env } = o.command();
      const c = spawn(file, args, { cwd: o.dir, env: { ...process.env, ...env }, detached: true, stdio: ["ignore", "pipe", "pipe"] });
      child = c;
      live.add(c);
      const onData = (d: Buffer) => void (out = (out + d.toString()).slice(-20_000));
      c.stdout!.on("data", onData);
      c.stderr!.on("data", onData);
      c.once("exit", () => live.delete(c));
      try {
        await until(`${o.name} to answer on port ${o.port}`, async () => {
          if (c.exitCode !== null || c.signalCode !== null) throw new Error(`${o.name} exited (${c.exitCode ?? c.signalCode}) before it answered:\n${out.slice(-3_000)}`);
          return o.ready();
        }, o.readyMs);
      } catch (err) {
        await server.stop();
        throw err;
      }
    },
    async stop() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((r) => c.once("exit", r));
      signal("SIGCONT"); // a frozen server cannot stop
      process.kill(c.pid!, o.stopSignal ?? "SIGTERM");
      const t = setTimeout(() => signal("SIGKILL"), 10_000);
      await exited;
      clearTimeout(t);
      signal("SIGKILL"); // anything of its group left behind
    },
    async close() {
      await server.stop();
      o.cleanup?.();
      rmSync(o.dir, { recursive: true, force: true });
    },
    output: () => out,
  };
  return server;
}

/** Every descendant of `root` (from /proc; none where there is no /proc). */
function descendants(root: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  const children = new Map<number, number[]>();
  for (const e of entries) {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(e)]);
    } catch {
      /* exited meanwhile */
    }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const c of children.get(pid) ?? []) out.push(c), walk(c);
  };
  walk(root);
  return out;
}

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.setTimeout(1_000, () => (s.destroy(), resolve(false)));
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });

/** A Redis of its own, without persistence: restart() brings it back EMPTY (as a Redis that lost its data). */
export async function ownRedis(): Promise<OwnServer & { restart(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "crm-own-redis-"));
  const port = await freePort();
  const redisPing = async () => {
    const { Redis } = await import("ioredis");
    const r = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000 });
    r.on("error", () => {});
    try {
      await r.connect();
      return (await r.ping()) === "PONG";
    } catch {
      return false;
    } finally {
      r.disconnect();
    }
  };
  const s = serverProcess({
    name: "redis-server",
    dir,
    url: `redis://127.0.0.1:${port}`,
    port,
    command: () => ({ file: which("redis-server")!, args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir] }),
    ready: redisPing,
    readyMs: 15_000,
  });
  await s.start();
  return { ...s, restart: async () => (await s.stop(), await s.start()) };
}

/** A PostgreSQL cluster of its own (initdb in a temporary folder; user postgres, trust, fsync off). */
export async function ownPostgres(): Promise<OwnServer> {
  const bin = pgBin();
  if (!bin) throw new Error(ownServersProblem("postgres"));
  const dir = mkdtempSync(join(tmpdir(), "crm-own-pg-"));
  const data = join(dir, "data");
  // PostgreSQL refuses to run as root: then it runs as the postgres user.
  const asPostgres = (file: string, args: string[]) => (isRoot() ? { file: which("setpriv")!, args: ["--reuid", "postgres", "--regid", "postgres", "--clear-groups", "--", file, ...args] } : { file, args });
  if (isRoot()) {
    const uid = Number(spawnSync("id", ["-u", "postgres"], { encoding: "utf8" }).stdout.trim());
    const gid = Number(spawnSync("id", ["-g", "postgres"], { encoding: "utf8" }).stdout.trim());
    chownSync(dir, uid, gid);
  }
  const init = asPostgres(join(bin, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"]);
  const r = spawnSync(init.file, init.args, { encoding: "utf8", cwd: dir });
  if (r.status !== 0) throw new Error(`initdb failed: ${r.stderr || r.stdout}`);
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const pgReady = async () => {
    const { default: pg } = await import("pg");
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
    c.on("error", () => {});
    try {
      await c.connect();
      await c.query("SELECT 1");
      return true;
    } catch {
      return false;
    } finally {
      await c.end().catch(() => {});
    }
  };
  const s = serverProcess({
    name: "postgres",
    dir,
    url,
    port,
    command: () => asPostgres(join(bin, "postgres"), ["-D", data, "-p", String(port), "-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=100"]),
    ready: pgReady,
    readyMs: 30_000,
    stopSignal: "SIGINT", // fast shutdown
  });
  await s.start();
  return s;
}

/**
 * A RabbitMQ node of its own (its own node name, AMQP and distribution ports, data and logs in a
 * temporary folder, no plugins). Starting takes 5-10 s: start one per test file.
 */
export async function ownRabbitMq(): Promise<OwnServer> {
  const script = rabbitScript();
  if (!script) throw new Error(ownServersProblem("rabbitmq"));
  const dir = mkdtempSync(join(tmpdir(), "crm-own-rabbit-"));
  const port = await freePort();
  const distPort = await freePort();
  const node = `crmfault${port}@localhost`;
  writeFileSync(join(dir, "enabled_plugins"), "[].\n");
  writeFileSync(join(dir, "rabbitmq.conf"), `listeners.tcp.local = 127.0.0.1:${port}\nloopback_users = none\n`);
  const url = `amqp://guest:guest@127.0.0.1:${port}`;
  const s = serverProcess({
    name: "rabbitmq-server",
    dir,
    url,
    port,
    command: () => ({
      file: script,
      args: [],
      env: {
        HOME: dir, // its own Erlang cookie
        RABBITMQ_NODENAME: node,
        RABBITMQ_NODE_PORT: String(port),
        RABBITMQ_DIST_PORT: String(distPort),
        RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
        RABBITMQ_LOG_BASE: join(dir, "log"),
        RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, "enabled_plugins"),
        RABBITMQ_CONFIG_FILE: join(dir, "rabbitmq"),
        RABBITMQ_PID_FILE: join(dir, "rabbit.pid"),
      },
    }),
    ready: async () => {
      if (!(await accepts(port))) return false;
      const { default: amqp } = await import("amqplib");
      const c = await amqp.connect(url, { timeout: 2_000 }).catch(() => undefined);
      await c?.close().catch(() => {});
      return Boolean(c);
    },
    readyMs: 90_000,
  });
  await s.start();
  return s;
}
