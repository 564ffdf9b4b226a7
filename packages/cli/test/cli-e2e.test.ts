/**
 * The real `crm` binary (node_modules/.bin/crm, as npx runs it) against the real all-in-one,
 * each a child process: login → whoami → users add → timers report → chat tail sees a message
 * sent meanwhile → a refused filter's field violation → import (dry run, then real, error file) →
 * export → another session of the user listed and ended → logout. The session file must be 0600.
 * The all-in-one is started by path (packages never import services) on a free port with its
 * embedded PostgreSQL, memory bus and .eml outbox in a temporary DATA_DIR.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { PipelineService, StageKind } from "@crm/gen/crm/records/v1/pipeline_pb";
import { TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import { testAppAt, until, type TestApp } from "@crm/testkit";

const root = new URL("../../../", import.meta.url).pathname;
const bin = join(root, "node_modules", ".bin", "crm");
const work = mkdtempSync(join(tmpdir(), "crm-cli-e2e-"));
const config = join(work, "config");

let server: ChildProcess | undefined;
let app: TestApp;

/** The all-in-one, as `npm start` runs it; resolves with its URL at the ready line. */
function startAllInOne(dataDir: string): Promise<{ child: ChildProcess; url: string }> {
  const env = { ...process.env, PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir, LOG_LEVEL: "info", DATABASE_URL: "", REDIS_URL: "", AMQP_URL: "", SMTP_URL: "" };
  const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", join(root, "services/all/src/main.ts")], { cwd: root, env, stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const m = /"url":"(http:\/\/[^"]+)".*ready/.exec(line);
      if (m) resolve({ child, url: m[1]! });
    });
    child.once("exit", (code) => reject(new Error(`the all-in-one exited with ${code} before its ready line`)));
  });
}

interface Result {
  code: number | null;
  out: string;
  err: string;
}

const env = () => ({ ...process.env, XDG_CONFIG_HOME: config, CRM_SERVER: app.baseUrl, CRM_API_KEY: "", CRM_PASSWORD: "", NO_COLOR: "1" });

/** Runs `crm args…` to its end. */
function crm(args: string[], stdin = ""): Promise<Result> {
  const child = spawn(bin, args, { env: env(), stdio: ["pipe", "pipe", "pipe"] });
  child.stdin!.end(stdin);
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, out, err })));
}

before(async () => {
  const dataDir = join(work, "data");
  const started = await startAllInOne(dataDir);
  server = started.child;
  app = testAppAt(started.url, dataDir, async () => {});
});

after(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server!.once("exit", r));
    server.kill("SIGTERM");
    await exited;
  }
  rmSync(work, { recursive: true, force: true });
});

describe("crm against the all-in-one", { timeout: 600_000 }, () => {
  const owner = { email: "olga@cli-e2e.test", password: "correct horse battery staple" };
  let ownerId = "";

  test("npx crm --help: the workspace's bin after npm ci", async () => {
    const child = spawn("npx", ["--no-install", "crm", "--help"], { cwd: root, env: env() });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    const code = await new Promise((r) => child.once("close", r));
    assert.equal(code, 0);
    assert.match(out, /^Usage: crm \[options\] \[command\]/);
    assert.match(out, /Exit codes: 0 ok, 1 error/);
  });

  test("login: the password from stdin, the session stored 0600; whoami", async () => {
    const reg = await app.client(AuthService).registerCompany({ companyName: "CLI Ltd", email: owner.email, password: owner.password, ownerName: "Olga" });
    ownerId = reg.userId;

    const bad = await crm(["login", owner.email, "--password-stdin"], "not the password\n");
    assert.equal(bad.code, 3, bad.err);
    assert.match(bad.err, /^crm: /);

    const r = await crm(["login", owner.email, "--password-stdin"], `${owner.password}\n`);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, new RegExp(`Logged in to ${app.baseUrl.replace(/[.]/g, "\\.")} as olga@cli-e2e\\.test \\(owner\\)`));
    const file = join(config, "crm", "credentials.json");
    assert.equal(statSync(file).mode & 0o777, 0o600, "the refresh token is readable by its owner only");
    assert.ok(!readFileSync(file, "utf8").includes(owner.password), "the password is not stored");

    const who = await crm(["whoami", "--json"]);
    assert.equal(who.code, 0, who.err);
    const me = JSON.parse(who.out);
    assert.deepEqual([me.userId, me.companyId, me.role, me.login], [reg.userId, reg.companyId, "owner", owner.email]);
  });

  test("users add: one result per row, exit 4 for the bad one, the others invited by e-mail", async () => {
    const csv = join(work, "users.csv");
    writeFileSync(csv, "E-mail;Name;Role\nann@cli-e2e.test;Ann;admin\nnot-an-email;Bob;\n");
    const r = await crm(["users", "add", csv]);
    assert.equal(r.code, 4, r.err);
    const lines = r.out.trim().split("\n");
    assert.match(lines[0]!, /^ROW\s+EMAIL\s+RESULT\s+USER \/ REASON$/);
    assert.match(lines[1]!, /^2\s+ann@cli-e2e\.test\s+created\s+[0-9a-f-]{36}$/);
    assert.match(lines[2]!, /^3\s+not-an-email\s+invalid\s+email: /);
    assert.match(r.err, /1 invited, 0 already existed, 1 failed; 1 e-mail queued\./);

    const again = await crm(["users", "add", csv, "--json"]);
    assert.equal(again.code, 4);
    assert.deepEqual(JSON.parse(again.out).results.map((x: { status: string }) => x.status), ["already_exists", "invalid"], "repeating is safe");

    const outbox = join(app.dataDir, "outbox");
    await until("Ann's invitation e-mail", () => {
      try {
        return readdirSync(outbox).some((f) => /^To: ann@cli-e2e\.test$/m.test(readFileSync(join(outbox, f), "utf8")));
      } catch {
        return false;
      }
    }, 30_000);
  });

  test("timers report: worked time per day in the zone asked for, as a table and as JSON", async () => {
    const login = await app.client(AuthService).login({ email: owner.email, password: owner.password });
    const start = Date.parse("2026-03-02T09:00:00Z"); // a Monday
    await app.client(TimerService, { token: login.accessToken }).addTimer({ startTime: timestampFromMs(start), endTime: timestampFromMs(start + 90 * 60_000), description: "cli e2e" });

    const r = await crm(["timers", "report", "--from", "2026-03-01", "--to", "2026-03-03", "--tz", "UTC"]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, ["DAY         WORKED  BILLABLE", "2026-03-01  0:00    0:00", "2026-03-02  1:30    0:00", "2026-03-03  0:00    0:00", "total       1:30    0:00", ""].join("\n"));
    const json = await crm(["timers", "report", "--from", "2026-03-02", "--to", "2026-03-08", "--by", "week", "--tz", "UTC", "--json"]);
    assert.equal(json.code, 0, json.err);
    assert.equal(JSON.parse(json.out).total, "5400s");
    assert.equal((await crm(["timers", "report", "--week"])).code, 0, "this week, in this machine's zone");
  });

  test("chat tail: the latest messages, then a message sent meanwhile, live", async () => {
    const login = await app.client(AuthService).login({ email: owner.email, password: owner.password });
    const chats = app.client(ChatService, { token: login.accessToken });
    const { chat } = await chats.createChat({ name: "cli-room", memberIds: [] });
    await chats.sendMessage({ chatId: chat!.chatId, content: "before the tail" });

    const tail = spawn(bin, ["chat", "tail", "cli-room"], { env: env(), stdio: ["ignore", "pipe", "pipe"] });
    const lines: string[] = [];
    let err = "";
    createInterface({ input: tail.stdout! }).on("line", (l) => lines.push(l));
    tail.stderr!.on("data", (d) => (err += d));
    try {
      await until("the history line", () => lines.some((l) => l.endsWith("you: before the tail")), 60_000);
      await until("the following note", () => err.includes("following cli-room"), 60_000);
      await chats.sendMessage({ chatId: chat!.chatId, content: "sent while tailing" });
      await until("the live message", () => lines.some((l) => l.endsWith("you: sent while tailing")), 60_000);
      assert.equal(lines.length, 2, "each message once");
      assert.match(lines[1]!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  you: sent while tailing$/);
      assert.equal(tail.exitCode, null, "still following");
    } finally {
      const closed = new Promise((r) => tail.once("close", r));
      tail.kill("SIGINT");
      await closed;
    }
    assert.ok(!err.includes("crm: "), err);

    const json = await crm(["chat", "tail", chat!.chatId, "--no-follow", "--json", "-n", "1"]);
    assert.equal(json.code, 0, json.err);
    assert.deepEqual([JSON.parse(json.out).content, JSON.parse(json.out).senderId], ["sent while tailing", ownerId]);
  });

  test("a refused request prints the server's field violations, exit 1", async () => {
    const r = await crm(["companies", "list", "--filter", "no_such_field=1"]);
    assert.equal(r.code, 1);
    assert.match(r.err, /^crm: the server refused the request \(invalid_argument\):\n  filter\S*field: must be a field of .+\(got "no_such_field"\)\n$/);
    const ok = await crm(["companies", "list", "--filter", "name~nobody"]);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /^ID\s+NAME\s+DOMAIN/);
  });

  test("import: a dry run writes nothing; the real run imports, merges duplicates, reports the bad row (exit 4)", async () => {
    const csv = join(work, "people.csv");
    writeFileSync(csv, "First name;Last name;E-mail;Tier\nAnn;Lee;ann.lee@import.test;gold\nBob;Ray;bob@import.test;\nBad;Row;not-an-email;\nAnn;Lee;ANN.LEE@import.test;\n");
    const map = ["-m", "First name=first_name", "-m", "last name=last_name", "-m", "#3=emails", "-m", "Tier="];

    const dry = await crm(["import", csv, "--object", "people", ...map, "--dry-run", "--json"]);
    assert.equal(dry.code, 4, dry.err);
    const d = JSON.parse(dry.out);
    assert.equal(d.dryRun, true);
    assert.deepEqual([d.state, d.createdCount, d.failedCount], ["IMPORT_STATE_SUCCEEDED", "2", "1"]);
    assert.equal((await crm(["people", "list", "--json"])).out, "[]\n", "a dry run writes nothing");

    const errors = join(work, "failed.csv");
    const real = await crm(["import", csv, "--object", "people", ...map, "--mode", "upsert", "--errors", errors]);
    assert.equal(real.code, 4, real.err);
    assert.match(real.err, /#3 E-mail\s+→ emails/);
    assert.match(real.err, /#4 Tier\s+\(not imported\)/);
    assert.match(real.err, /4 of 4 rows: 2 created, 0 updated, 1 merged, 0 unchanged, 1 failed\./);
    assert.match(real.out, /^ROW\s+REASON\n4\s+emails?\S*: .+\n$/);
    const failed = readFileSync(errors, "utf8");
    assert.match(failed, /Bad;Row;not-an-email;;?.+/, "the failed row as it was, plus its reason");

    const people = JSON.parse((await crm(["people", "list", "--json", "--order-by", "first_name"])).out);
    assert.deepEqual(people.map((p: { firstName: string; emails: string[] }) => [p.firstName, p.emails.length]), [["Ann", 1], ["Bob", 1]]);
  });

  test("deals list: each deal's stage by name, its status as a word, its amount in its currency", async () => {
    const login = await app.client(AuthService).login({ email: owner.email, password: owner.password });
    const pipeline = (await app.client(PipelineService, { token: login.accessToken }).createPipeline({ pipeline: { name: "Sales", stages: [{ name: "Lead" }, { name: "Won", kind: StageKind.WON }] } })).pipeline!;
    const deals = app.client(DealService, { token: login.accessToken });
    await deals.createDeal({ deal: { name: "Small", pipelineId: pipeline.id, stageId: pipeline.stages[0]!.id, amountMinor: 1_250_050n, currencyCode: "EUR" } });
    await deals.createDeal({ deal: { name: "Big", pipelineId: pipeline.id, stageId: pipeline.stages[1]!.id, amountMinor: 150_000n, currencyCode: "JPY" } });
    const r = await crm(["deals", "list", "-c", "name,stage,status,amount", "--order-by", "name"]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, ["NAME   STAGE  STATUS  AMOUNT", "Big    Won    won     JPY 150,000", "Small  Lead   open    EUR 12,500.50", ""].join("\n"));
    const json = JSON.parse((await crm(["deals", "list", "--json", "--order-by", "name"])).out);
    assert.deepEqual([json[0].status, json[0].amountMinor], ["DEAL_STATUS_WON", "150000"], "--json keeps the API's values");
  });

  test("export: a filtered list as CSV with a BOM, to stdout and to a file", async () => {
    const r = await crm(["export", "people", "-f", "first_name=ann", "-c", "first_name,last_name,emails"]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.replace(/\r\n/g, "\n"), "\uFEFFfirst_name,last_name,emails\nAnn,Lee,ann.lee@import.test\n");
    assert.match(r.err, /^1 people exported\.\n$/);
    const file = join(work, "people-out.csv");
    const all = await crm(["export", "people", "-o", file, "--order-by", "first_name"]);
    assert.equal(all.code, 0, all.err);
    assert.equal(readFileSync(file, "utf8").trim().split(/\r?\n/).length, 3, "a header and two people");
  });

  test("users sessions and signout: another session of the owner is listed and ended; the CLI's own goes on", async () => {
    const browser = await app.client(AuthService).login({ email: owner.email, password: owner.password });
    const listed = await crm(["users", "sessions", owner.email.toUpperCase(), "--json"]);
    assert.equal(listed.code, 0, listed.err);
    const sessions = JSON.parse(listed.out) as { sessionId: string; current: boolean }[];
    assert.ok(sessions.length >= 2, `the CLI's session and the other one: ${listed.out}`);
    assert.equal(sessions.filter((x) => x.current).length, 1, "the CLI's own session is marked");
    // The newest other session is the one just opened (most recently used first).
    const other = sessions.find((x) => !x.current)!;
    await app.client(AuthService, { token: browser.accessToken }).check({});

    const r = await crm(["users", "signout", owner.email, other.sessionId]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /ended/);
    await assert.rejects(app.client(AuthService, { token: browser.accessToken }).check({}), /unauthenticated|ended|revoked/i);
    await assert.rejects(app.client(AuthService).refresh({ refreshToken: browser.refreshToken }), /unauthenticated|ended|revoked/i);
    assert.equal((await crm(["whoami"])).code, 0, "the CLI's own session goes on");
    const again = await crm(["users", "signout", owner.email, other.sessionId]);
    assert.equal(again.code, 1, "an ended session is not found");
  });

  test("logout ends the session; then crm asks for a login (exit 3)", async () => {
    const r = await crm(["logout"]);
    assert.equal(r.code, 0, r.err);
    const who = await crm(["whoami"]);
    assert.equal(who.code, 3);
    assert.equal(who.err, `crm: not logged in to ${app.baseUrl}: run \`crm login\`\n`);
  });
});
