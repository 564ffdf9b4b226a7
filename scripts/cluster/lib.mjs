/**
 * The local cluster: every service as its own process on its own port with TLS and mTLS, real
 * PostgreSQL, Redis and RabbitMQ, and the NGINX gateway in front. Used by `npm run cluster`
 * (scripts/cluster.mjs) and by the end-to-end tests (test/e2e), which start it on free ports.
 */
import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import net from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureDevPki, ensureJwtKeys } from "../certs.mjs";
import { nginxProblem, startNginx } from "../../services/gateway/run.mjs";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Services in start order, with the ports of the original design (ARCHITECTURE §1). */
export const clusterServices = [
  { name: "dbservice", port: 8081 },
  { name: "auth", port: 50055 },
  { name: "chats", port: 50095 },
  { name: "timers", port: 50020 },
  { name: "admin", port: 50070 },
  { name: "email", port: 50051 },
  { name: "logs", port: 50150 },
  { name: "cache", port: 50060 },
  { name: "records", port: 50110 },
  { name: "webhooks", port: 50130 },
];

export const defaults = {
  databaseUrl: "postgres://postgres@127.0.0.1:5432/crm",
  redisUrl: "redis://127.0.0.1:6379",
  amqpUrl: "amqp://guest:guest@127.0.0.1:5672",
  httpsPort: 8443,
  httpPort: 8080,
  opsBase: 9100,
};

export class ClusterError extends Error {
  name = "ClusterError";
}

function canConnect(host, port, timeoutMs = 15_000) {
  return new Promise((resolvePromise) => {
    const s = net.connect({ host, port });
    const done = (ok) => {
      s.destroy();
      resolvePromise(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

function canListen(port, host = "127.0.0.1") {
  return new Promise((resolvePromise) => {
    const s = net.createServer();
    s.once("error", () => resolvePromise(false));
    s.listen(port, host, () => s.close(() => resolvePromise(true)));
  });
}

/**
 * A port free now, picked below the kernel's ephemeral range (32768-60999 on Linux): a port from
 * listen(0) is released before the service binds it, and any outgoing connection on the machine
 * (a database client, another test) may take it in between. Below that range only listeners
 * compete, and canListen checks those. Falls back to listen(0) if nothing is found.
 */
const handedOut = new Set();
export async function freePort() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (handedOut.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  return new Promise((resolvePromise, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolvePromise(port));
    });
  });
}

/** One line per missing piece (nginx, njs, PostgreSQL, Redis, RabbitMQ), naming what to install. */
export async function checkPrerequisites({ databaseUrl, redisUrl, amqpUrl, gateway = true }) {
  const problems = [];
  if (gateway) {
    const p = nginxProblem();
    if (p) problems.push(p);
  }
  const backing = [
    ["PostgreSQL", "DATABASE_URL", databaseUrl, 5432, "postgresql"],
    ["Redis", "REDIS_URL", redisUrl, 6379, "redis-server"],
    ["RabbitMQ", "AMQP_URL", amqpUrl, 5672, "rabbitmq-server"],
  ];
  for (const [what, variable, url, defPort, pkg] of backing) {
    let u;
    try {
      u = new URL(url);
    } catch {
      problems.push(`${variable} is not a URL (got ${JSON.stringify(url)})`);
      continue;
    }
    const host = u.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1";
    const port = Number(u.port || defPort);
    if (!(await canConnect(host, port))) {
      problems.push(`${what} is not reachable at ${host}:${port} (${variable}): start it, or install it with: apt-get install -y ${pkg}`);
    }
  }
  return problems;
}

/** Creates the database of DATABASE_URL when it does not exist yet (connecting to "postgres"). */
export async function ensureDatabase(databaseUrl) {
  const { default: pg } = await import("pg");
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (!name) return;
  const admin = new URL(databaseUrl);
  admin.pathname = "/postgres";
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (!rowCount) await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`).catch((err) => {
      if (err.code !== "42P04") throw err; // created meanwhile by someone else
    });
  } catch (err) {
    throw new ClusterError(`cannot create database ${name} on ${url.host} (DATABASE_URL): ${err.message}`);
  } finally {
    await client.end().catch(() => {});
  }
}

/** A line-buffered reader that keeps the last `keep` lines and calls `onLine` for each. */
function lineSplitter(onLine) {
  let buf = "";
  return (chunk) => {
    buf += chunk.toString();
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  };
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * One service process: started with `node --conditions=source --import tsx services/all/src/main.ts
 * <name>` (or `node <bundle> <name>`, as the image runs it), "ready" when it logs a JSON line with
 * msg "ready". Its output goes to `logFile` and the last 200 lines are kept in `lines`.
 */
class ServiceProcess {
  constructor({ name, port, opsPort, env, logFile, root, bundle, sourceMaps, onExit, onLog, readyTimeoutMs }) {
    Object.assign(this, { name, port, opsPort, env, logFile, root, bundle, sourceMaps, onExit, onLog, readyTimeoutMs });
    this.lines = [];
    this.child = undefined;
    this.exited = Promise.resolve(null);
    this.requests = 0;
  }

  get running() {
    return Boolean(this.child && this.child.exitCode === null && this.child.signalCode === null);
  }

  start() {
    const log = createWriteStream(this.logFile, { flags: "a" });
    // CRM_NODE_ARGS: extra node flags for this process (--cpu-prof, --inspect=…), which NODE_OPTIONS refuses.
    const extra = (this.env.CRM_NODE_ARGS ?? "").split(" ").filter(Boolean);
    // From source (tsx), or from a built bundle as the image runs it (`node dist/crm.mjs <name>`).
    const entry = this.bundle ? [...(this.sourceMaps === true ? ["--enable-source-maps"] : []), this.bundle] : ["--conditions=source", "--import", "tsx", "services/all/src/main.ts"];
    const child = spawn(process.execPath, [...extra, ...entry, this.name], {
      cwd: this.root,
      env: this.env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    this.child = child;
    let ready = false;
    let resolveReady;
    let rejectReady;
    const readyPromise = new Promise((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    const onLine = (line) => {
      log.write(`${line}\n`);
      // keep the line first: an onLog listener that looks at `lines` sees it there
      this.lines.push(line);
      if (this.lines.length > 200) this.lines.shift();
      this.onLog?.(this.name, line);
      if (!ready && line.includes('"ready"')) {
        try {
          if (JSON.parse(line).msg === "ready") {
            ready = true;
            resolveReady();
          }
        } catch {
          /* not JSON */
        }
      }
    };
    child.stdout.on("data", lineSplitter(onLine));
    child.stderr.on("data", lineSplitter(onLine));
    this.exited = new Promise((res) =>
      child.once("exit", (code, signal) => {
        log.end();
        const how = code ?? signal;
        if (!ready) rejectReady(new ClusterError(`${this.name} exited (${how}) before it was ready: ${this.lastLines(3)}`));
        else this.onExit?.(this, how);
        res(how);
      }),
    );
    const timer = setTimeout(() => {
      if (!ready) rejectReady(new ClusterError(`${this.name} did not log "ready" within ${this.readyTimeoutMs / 1000} s: ${this.lastLines(3)}`));
    }, this.readyTimeoutMs);
    return readyPromise.finally(() => clearTimeout(timer));
  }

  /** The most telling recent output: error lines first (config errors, exceptions), else the last lines. */
  lastLines(n) {
    const text = (l) => {
      try {
        const j = JSON.parse(l);
        return [j.msg, j.err?.message ?? j.err].filter(Boolean).join(": ");
      } catch {
        return l.trim();
      }
    };
    const lines = this.lines.map(text).filter((l) => l && !/^(at |\^|}|Node\.js v)/.test(l));
    const errors = lines.filter((l) => /error|config:|cannot|failed|refused/i.test(l));
    return (errors.length ? errors : lines).slice(-n).join(" | ") || "(no output)";
  }

  /** SIGTERM (the service drains), SIGKILL after graceMs. */
  async stop(graceMs = 10_000) {
    const child = this.child;
    if (!child || !this.running) return;
    this.onExitSaved = this.onExit;
    this.onExit = undefined; // an exit we asked for is not a crash
    killGroup(child.pid, "SIGTERM");
    const timer = setTimeout(() => killGroup(child.pid, "SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
    this.onExit = this.onExitSaved;
  }

  kill() {
    if (this.child && this.running) killGroup(this.child.pid, "SIGKILL");
  }
}

/**
 * Starts the cluster. Options (all optional):
 *   dataDir        where certs/, keys/, cluster/logs/ and the gateway's runtime folder go (./data)
 *   ports          "default" (the design's ports, 8443/8080, ops 9100+i) or "free" (tests)
 *   only           service names to start (default: all)
 *   databaseUrl, redisUrl, amqpUrl   backing servers (env DATABASE_URL… or the local defaults)
 *   env            extra environment for every service; serviceEnv: {name: {...}} per service
 *   gateway        false to start no nginx; or { clientVerify: "off"|"optional"|"on", vars: {...} }
 *   onLog          (name, line) for every output line; onExit (name, code) when a service dies
 *   readyTimeoutMs per service (default 90 s)
 *   bundle         a built crm.mjs (scripts/build.mjs buildBundle) to run each service from, as the image
 *                  does (without --enable-source-maps: the logger maps logged stacks itself;
 *                  sourceMaps: true adds the flag); default: from source through tsx
 */
export async function startCluster(opts = {}) {
  const root = opts.root ?? repoRoot;
  const dataDir = resolve(opts.dataDir ?? join(root, "data"));
  const databaseUrl = opts.databaseUrl ?? process.env.DATABASE_URL ?? defaults.databaseUrl;
  const redisUrl = opts.redisUrl ?? process.env.REDIS_URL ?? defaults.redisUrl;
  const amqpUrl = opts.amqpUrl ?? process.env.AMQP_URL ?? defaults.amqpUrl;
  const wantGateway = opts.gateway !== false;
  const selected = clusterServices.filter((s) => !opts.only || opts.only.includes(s.name));

  const problems = await checkPrerequisites({ databaseUrl, redisUrl, amqpUrl, gateway: wantGateway });
  if (problems.length) throw new ClusterError(problems.join("\n"));

  // ports
  const free = opts.ports === "free";
  const ports = {};
  const opsPorts = {};
  for (const [i, s] of clusterServices.entries()) {
    ports[s.name] = free ? await freePort() : s.port;
    opsPorts[s.name] = free ? await freePort() : defaults.opsBase + i;
  }
  const httpsPort = free ? await freePort() : Number(process.env.GATEWAY_HTTPS_PORT ?? defaults.httpsPort);
  const httpPort = free ? await freePort() : Number(process.env.GATEWAY_HTTP_PORT ?? defaults.httpPort);
  if (!free) {
    const wanted = [
      ...selected.flatMap((s) => [[ports[s.name], s.name], [opsPorts[s.name], `${s.name} ops`]]),
      ...(wantGateway ? [[httpsPort, "gateway https"], [httpPort, "gateway http"]] : []),
    ];
    for (const [port, what] of wanted) {
      if (!(await canListen(port))) throw new ClusterError(`port ${port} (${what}) is in use: stop what holds it (another cluster?) and retry`);
    }
  }

  if (selected.some((s) => s.name === "dbservice")) await ensureDatabase(databaseUrl);

  // certificates and keys
  const pki = ensureDevPki(join(dataDir, "certs"));
  const keys = ensureJwtKeys(join(dataDir, "keys"));
  const logDir = join(dataDir, "cluster", "logs");
  mkdirSync(logDir, { recursive: true });
  const gatewayUrl = `https://127.0.0.1:${httpsPort}`;

  const peerUrls = Object.fromEntries(clusterServices.map((s) => [`${s.name.toUpperCase()}_URL`, `https://127.0.0.1:${ports[s.name]}`]));
  const envFor = (name) => ({
    ...process.env,
    ...peerUrls,
    PORT: String(ports[name]),
    HOST: "127.0.0.1",
    OPS_PORT: String(opsPorts[name]),
    TLS_CERT_FILE: pki.cert(name),
    TLS_KEY_FILE: pki.key(name),
    TLS_CA_FILE: pki.ca,
    TLS_CLIENT_AUTH: "require",
    JWT_PUBLIC_KEYS_FILE: keys.jwksFile,
    REDIS_URL: redisUrl,
    AMQP_URL: amqpUrl,
    PUBLIC_URL: gatewayUrl,
    DATA_DIR: join(dataDir, "cluster", name),
    LOG_LEVEL: process.env.LOG_LEVEL ?? "info",
    ...(name === "dbservice" ? { DATABASE_URL: databaseUrl } : {}),
    ...(name === "auth" ? { JWT_PRIVATE_KEY_FILE: keys.privateKeyFile, JWT_KEY_ID: keys.kid } : {}),
    ...opts.env,
    ...opts.serviceEnv?.[name],
  });

  const services = new Map();
  for (const s of selected) {
    services.set(
      s.name,
      new ServiceProcess({
        name: s.name,
        port: ports[s.name],
        opsPort: opsPorts[s.name],
        env: envFor(s.name),
        logFile: join(logDir, `${s.name}.log`),
        root,
        bundle: opts.bundle,
        sourceMaps: opts.sourceMaps,
        readyTimeoutMs: opts.readyTimeoutMs ?? 90_000,
        onExit: (p, code) => opts.onExit?.(p.name, code),
        onLog: opts.onLog,
      }),
    );
  }

  let nginx;
  // if this process dies without stop(), do not leave services behind (they run in their own groups)
  const killOnExit = () => {
    for (const p of services.values()) p.kill();
  };
  process.on("exit", killOnExit);
  const stopAll = async () => {
    await nginx?.stop().catch(() => {});
    await Promise.all([...services.values()].map((p) => p.stop().catch(() => p.kill())));
    process.off("exit", killOnExit);
  };
  try {
    // dbservice first (migrations), then the rest together
    const db = services.get("dbservice");
    if (db) await db.start();
    await Promise.all([...services.values()].filter((p) => p !== db).map((p) => p.start()));
    if (wantGateway) {
      const g = opts.gateway && typeof opts.gateway === "object" ? opts.gateway : {};
      const vars = {
        CRM_GW_HTTPS_LISTEN: `127.0.0.1:${httpsPort}`,
        CRM_GW_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
        CRM_GW_HTTPS_REDIRECT_PORT: `:${httpsPort}`,
        CRM_GW_TLS_CERT: pki.cert("gateway"),
        CRM_GW_TLS_KEY: pki.key("gateway"),
        CRM_GW_CLIENT_CA: pki.ca,
        CRM_GW_CLIENT_VERIFY: g.clientVerify ?? "optional",
        // the dev client certificate (data/certs/client.crt) may use server reflection: grpcurl, buf curl
        CRM_GW_OPS_CLIENTS: "client",
        CRM_GW_UPSTREAM_CA: pki.ca,
        CRM_GW_UPSTREAM_CERT: pki.cert("gateway"),
        CRM_GW_UPSTREAM_KEY: pki.key("gateway"),
        CRM_GW_JWKS_FILE: keys.jwksFile,
        CRM_GW_ACCESS_LOG: join(logDir, "gateway-access.log"),
        CRM_GW_WORKERS: process.env.CRM_GW_WORKERS ?? "auto",
        ...Object.fromEntries(clusterServices.filter((s) => s.name !== "dbservice").map((s) => [`CRM_GW_${s.name.toUpperCase()}_ADDR`, `127.0.0.1:${ports[s.name]}`])),
        ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("CRM_GW_"))),
        ...g.vars,
      };
      nginx = await startNginx({
        dir: join(dataDir, "cluster", free ? `gateway-${httpsPort}` : "gateway"),
        vars,
        onLine: (line) => opts.onLog?.("gateway", line),
      });
    }
  } catch (err) {
    await stopAll();
    throw err instanceof ClusterError ? err : new ClusterError(err instanceof Error ? err.message : String(err));
  }

  return {
    dataDir,
    gatewayUrl,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    httpsPort,
    httpPort,
    ports,
    opsPorts,
    pki,
    keys,
    logDir,
    databaseUrl,
    services,
    nginx,
    service(name) {
      const p = services.get(name);
      if (!p) throw new ClusterError(`no service ${name} in this cluster`);
      return p;
    },
    async stopService(name) {
      await this.service(name).stop();
    },
    async startService(name) {
      await this.service(name).start();
    },
    async restartService(name) {
      await this.service(name).stop();
      await this.service(name).start();
    },
    stop: stopAll,
    /** Last resort on process exit: SIGKILL every process group we started (synchronous). */
    killAll() {
      if (nginx?.running) killGroup(nginx.pid, "SIGKILL");
      for (const p of services.values()) p.kill();
    },
  };
}
