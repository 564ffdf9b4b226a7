/**
 * Start-up failures are ONE line naming the setting, its value (passwords hidden) and what to do,
 * with a non-zero exit and no stack trace: unreachable or missing database, busy or forbidden
 * ports, an address that is not this machine's, unreadable key and TLS files, an unusable DATA_DIR,
 * in the all-in-one (also through `npm start`) and in the service targets.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ensureKeyFiles } from "@crm/auth/tokens";
import { installHint, need, postgresUp, TEST_PG_URL } from "@crm/testkit";

const root = new URL("../../../", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "crm-startup-"));
let keys: { privateFile: string; jwksFile: string };
let busy: net.Server;
let busyPort: number;

before(async () => {
  keys = await ensureKeyFiles(join(dir, "keys"));
  busy = net.createServer();
  await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
  busyPort = (busy.address() as net.AddressInfo).port;
});
after(() => {
  busy.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a target with only PATH and `env`; returns exit code and stderr. */
function run(target: string, env: Record<string, string>) {
  const r = spawnSync(process.execPath, ["--conditions=source", "--import", "tsx", "services/all/src/main.ts", target], {
    cwd: root,
    env: { PATH: process.env.PATH!, DATA_DIR: join(dir, "data"), LOG_LEVEL: "warn", LOGS_REPORT_ERRORS: "false", ...env },
    encoding: "utf8",
    timeout: 90_000,
  });
  return { status: r.status, stderr: r.stderr };
}

/** Exit code ≠ 0, exactly one line on stderr, no stack, and the line matches. */
function assertOneLine(r: { status: number | null; stderr: string }, line: RegExp, secret?: string) {
  assert.notEqual(r.status, 0, "exit code");
  assert.notEqual(r.status, null, "it exited by itself");
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
  assert.match(lines[0]!, line);
  if (secret) assert.ok(!r.stderr.includes(secret), "the password is hidden");
}

const svc = () => ({ JWT_PUBLIC_KEYS_FILE: keys.jwksFile, PORT: "0" });
const pgSkip = need("PostgreSQL", await postgresUp(), installHint.postgres);

describe("all-in-one", () => {
  it("DATABASE_URL with nothing listening (npm start)", { timeout: 120_000 }, async () => {
    const child = spawn("npm", ["start", "--silent"], {
      cwd: root,
      env: { ...process.env, PORT: "0", DATA_DIR: join(dir, "npm"), DATABASE_URL: "postgres://nobody:hunter2@127.0.0.1:1/x", LOG_LEVEL: "warn" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    const status = await new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    assertOneLine({ status, stderr }, /^config: DATABASE_URL=postgres:\/\/nobody:\*\*\*\*@127\.0\.0\.1:1\/x: nothing accepts connections at 127\.0\.0\.1:1 \(connection refused\); start PostgreSQL there/, "hunter2");
  });

  it("DATABASE_URL naming a database that does not exist", { skip: pgSkip, timeout: 60_000 }, () => {
    const url = new URL(TEST_PG_URL);
    url.pathname = "/crm_no_such_database";
    assertOneLine(run("all", { PORT: "0", DATABASE_URL: url.toString() }), /^config: DATABASE_URL=.*\/crm_no_such_database: database "crm_no_such_database" does not exist; create it \(createdb crm_no_such_database/);
  });

  it("DATABASE_URL that is not a postgres URL hides its password", { timeout: 60_000 }, () => {
    assertOneLine(run("all", { PORT: "0", DATABASE_URL: "mysql://root:hunter2@db/crm" }), /^config: DATABASE_URL must be a URL starting with postgres:\/\/.*\(got "mysql:\/\/root:\*\*\*\*@db\/crm"\)$/, "hunter2");
  });

  it("PORT already in use", { timeout: 60_000 }, () => {
    assertOneLine(run("all", { PORT: String(busyPort) }), new RegExp(`^config: PORT=${busyPort}: the port is already in use at 127\\.0\\.0\\.1:${busyPort}; stop what listens there or choose another PORT`));
  });

  it("HOST that is not an address", { timeout: 60_000 }, () => {
    assertOneLine(run("all", { PORT: "0", HOST: "999.1.1.1" }), /^config: HOST=999\.1\.1\.1: the host name "999\.1\.1\.1" cannot be resolved .*; set HOST to an address of this machine/);
  });

  it("HOST that is not this machine's", { timeout: 60_000 }, () => {
    assertOneLine(run("all", { PORT: "0", HOST: "192.0.2.1" }), /^config: HOST=192\.0\.2\.1: the address is not one of this machine's .*; set HOST to an address of this machine/);
  });

  it("DATA_DIR that cannot be a folder", { timeout: 60_000 }, () => {
    assertOneLine(run("all", { PORT: "0", DATA_DIR: join(keys.jwksFile, "data") }), /^config: DATA_DIR=.*jwks\.json\/data: ENOTDIR: .*; set DATA_DIR to a folder this user can create and write/);
  });

  it("one JWT key file without the other", { timeout: 60_000 }, () => {
    assertOneLine(run("all", { PORT: "0", JWT_PRIVATE_KEY_FILE: keys.privateFile }), /^config: JWT_PRIVATE_KEY_FILE is set but JWT_PUBLIC_KEYS_FILE is not: set both .* or neither/);
  });

  it("JWT key files that are not keys", { timeout: 60_000 }, () => {
    assertOneLine(run("all", { PORT: "0", JWT_PRIVATE_KEY_FILE: keys.jwksFile, JWT_PUBLIC_KEYS_FILE: keys.jwksFile }), /^config: JWT_PRIVATE_KEY_FILE .*jwks\.json is not a readable PEM private key/);
    assertOneLine(run("all", { PORT: "0", JWT_PRIVATE_KEY_FILE: keys.privateFile, JWT_PUBLIC_KEYS_FILE: keys.privateFile }), /^config: JWT_PUBLIC_KEYS_FILE=.*private\.pem: not a readable JSON file/);
  });
});

describe("service targets", () => {
  it("PORT already in use", { timeout: 60_000 }, () => {
    assertOneLine(run("logs", { ...svc(), HOST: "127.0.0.1", PORT: String(busyPort) }), new RegExp(`^config: PORT=${busyPort}: the port is already in use`));
  });

  it("OPS_PORT already in use", { timeout: 60_000 }, () => {
    assertOneLine(run("logs", { ...svc(), HOST: "127.0.0.1", OPS_PORT: String(busyPort) }), new RegExp(`^config: OPS_PORT=${busyPort}: the port is already in use`));
  });

  it("HOST that is not an address", { timeout: 60_000 }, () => {
    assertOneLine(run("logs", { ...svc(), HOST: "999.1.1.1" }), /^config: HOST=999\.1\.1\.1: .*cannot be resolved/);
  });

  it("TLS files that are not PEM", { timeout: 60_000 }, () => {
    assertOneLine(run("logs", { ...svc(), TLS_CERT_FILE: keys.jwksFile, TLS_KEY_FILE: keys.privateFile, TLS_CLIENT_AUTH: "off" }), /^config: TLS_CERT_FILE=.*jwks\.json: not a PEM certificate .*; point it at a PEM file/);
    assertOneLine(run("logs", { ...svc(), TLS_CERT_FILE: keys.privateFile, TLS_KEY_FILE: keys.jwksFile, TLS_CLIENT_AUTH: "off" }), /^config: TLS_(CERT|KEY)_FILE=.*: not a PEM /);
  });

  it("JWT_PUBLIC_KEYS_FILE that is not JSON", { timeout: 60_000 }, () => {
    assertOneLine(run("logs", { ...svc(), JWT_PUBLIC_KEYS_FILE: keys.privateFile }), /^config: JWT_PUBLIC_KEYS_FILE=.*private\.pem: not a readable JSON file/);
  });

  it("auth and admin: PUBLIC_URL not set (their e-mailed links need it)", { timeout: 60_000 }, () => {
    assertOneLine(run("auth", { ...svc(), JWT_PRIVATE_KEY_FILE: keys.privateFile }), /^config: PUBLIC_URL must be the URL people reach the CRM at, e\.g\. https:\/\/crm\.example\.com .*\(it is not set\)$/);
    assertOneLine(run("admin", { ...svc(), AMQP_URL: "amqp://127.0.0.1:1" }), /^config: PUBLIC_URL must be the URL people reach the CRM at/);
  });

  it("admin: AMQP_URL not set (the audit log's events come from RabbitMQ)", { timeout: 60_000 }, () => {
    assertOneLine(run("admin", { ...svc(), PUBLIC_URL: "https://crm.example.com" }), /^config: AMQP_URL must be a URL starting with amqp:\/\/ or amqps:\/\/ .*\(it is not set\)$/);
  });

  it("auth: JWT_PRIVATE_KEY_FILE that is not a key", { timeout: 60_000 }, () => {
    assertOneLine(run("auth", { ...svc(), JWT_PRIVATE_KEY_FILE: keys.jwksFile, PUBLIC_URL: "https://crm.example.com" }), /^config: JWT_PRIVATE_KEY_FILE .*jwks\.json is not a readable PEM private key/);
  });

  it("dbservice: DATABASE_URL with nothing listening", { timeout: 60_000 }, () => {
    assertOneLine(
      run("dbservice", { ...svc(), DATABASE_URL: "postgres://crm:hunter2@127.0.0.1:1/crm", AMQP_URL: "amqp://127.0.0.1:1" }),
      /^config: DATABASE_URL=postgres:\/\/crm:\*\*\*\*@127\.0\.0\.1:1\/crm: nothing accepts connections/,
      "hunter2",
    );
  });
});
