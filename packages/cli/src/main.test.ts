/**
 * The CLI in memory: run() with captured streams, a temporary config dir and an in-memory server
 * (createRouterTransport) whose handlers this test writes. Arguments, exit codes, messages, the
 * stored session (mode 0600) and the silent refresh.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { after, beforeEach, describe, test } from "node:test";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport, type ConnectRouter } from "@connectrpc/connect";
import { AddUserStatus, AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import { AuthService, Role } from "@crm/gen/crm/auth/v1/auth_pb";
import { ChatService, MessageSchema } from "@crm/gen/crm/chat/v1/chat_pb";
import { ImportSchema, ImportService, ImportState, type Import } from "@crm/gen/crm/records/v1/import_pb";
import { BadRequestSchema } from "@crm/gen/google/rpc/error_details_pb";
import type { Io } from "./context.js";
import { run } from "./main.js";
import type { TransportFactory } from "./session.js";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

class Sink extends Writable {
  text = "";
  override _write(chunk: Buffer, _enc: string, cb: () => void) {
    this.text += chunk.toString();
    cb();
  }
}

/** The server's state: which tokens it takes, what it was sent. */
const BOB = "5b0a6c1e-2f3d-4e5f-8a9b-0c1d2e3f4a5b";
const SESSION_1 = "0e7c2d4a-1111-4a2b-9c3d-4e5f6a7b8c9d";
const SESSION_2 = "0e7c2d4a-2222-4a2b-9c3d-4e5f6a7b8c9d";

function server() {
  const s = {
    now: Date.parse("2026-12-07T12:00:00Z"),
    access: new Set<string>(),
    refresh: new Map<string, boolean>(), // token → spent
    issued: 0,
    refreshes: 0,
    added: [] as string[],
    uploaded: 0,
    subscribes: [] as bigint[],
    /** Messages of the one chat, seq 1.. */
    messages: ["one", "two"],
    mapping: [] as string[],
    authHeaders: [] as string[],
    bobSessions: [SESSION_1, SESSION_2],
    stop: new AbortController(),
  };
  const tokens = () => {
    const n = ++s.issued;
    s.access.add(`at${n}`);
    s.refresh.set(`rt${n}`, false);
    return { accessToken: `at${n}`, refreshToken: `rt${n}`, accessExpiresAt: timestampFromMs(s.now + 15 * 60_000), refreshExpiresAt: timestampFromMs(s.now + 30 * 86_400_000) };
  };
  const authed = (h: Headers) => {
    const t = (h.get("authorization") ?? "").replace(/^Bearer /, "");
    s.authHeaders.push(t);
    if (!s.access.has(t)) throw new ConnectError("the access token expired", Code.Unauthenticated);
  };
  const routes = (r: ConnectRouter) => {
    r.service(AuthService, {
      login: (req) => {
        if (req.password !== "right password") throw new ConnectError("wrong login or password", Code.Unauthenticated, new Headers({ "crm-error": "invalid_credentials" }));
        return { userId: "u1", companyId: "c1", role: Role.ADMIN, ...tokens() };
      },
      refresh: (req) => {
        s.refreshes++;
        if (s.refresh.get(req.refreshToken) !== false) throw new ConnectError("session ended", Code.Unauthenticated, new Headers({ "crm-error": "session_ended" }));
        s.refresh.set(req.refreshToken, true);
        return tokens();
      },
      check: (_req, ctx) => {
        authed(ctx.requestHeader);
        return { userId: "u1", companyId: "c1", role: Role.ADMIN };
      },
      logout: (_req, ctx) => {
        authed(ctx.requestHeader);
        s.access.clear();
        return {};
      },
    });
    r.service(AdminService, {
      addUsers: (req, ctx) => {
        authed(ctx.requestHeader);
        if (req.users.length > 1000) throw new ConnectError("too many", Code.InvalidArgument);
        if (req.users.some((u) => u.email === "all@bad")) {
          throw new ConnectError("invalid request: users[0].email: is bad", Code.InvalidArgument, undefined, [{ desc: BadRequestSchema, value: { fieldViolations: [{ field: "users[0].email", description: "is bad" }, { field: "users[0].name", description: "is required" }] } }]);
        }
        s.added.push(...req.users.map((u) => u.email));
        const results = req.users.map((u, index) =>
          u.email.includes("@") ? { index, email: u.email, status: AddUserStatus.CREATED, userId: `id-${u.email}`, emailQueued: true } : { index, email: u.email, status: AddUserStatus.INVALID, reason: "email: must be a valid e-mail address" },
        );
        return { results, stats: { created: results.filter((x) => x.status === AddUserStatus.CREATED).length } };
      },
      listUsers: (req, ctx) => (authed(ctx.requestHeader), { users: [{ userId: BOB, email: "Bob@Acme.test", name: "Bob" }].filter((u) => u.email.toLowerCase().includes(req.query.toLowerCase())) }),
      listUserSessions: (req, ctx) => {
        authed(ctx.requestHeader);
        if (req.userId !== BOB) throw new ConnectError(`user ${req.userId} not found`, Code.NotFound);
        return { sessions: s.bobSessions.map((sessionId, i) => ({ sessionId, createdAt: timestampFromMs(s.now - 3_600_000), lastUsedAt: timestampFromMs(s.now - i * 60_000), expiresAt: timestampFromMs(s.now + 86_400_000), userAgent: "Firefox", ip: "10.0.0.7" })) };
      },
      revokeUserSession: (req, ctx) => {
        authed(ctx.requestHeader);
        if (req.userId !== BOB || !s.bobSessions.includes(req.sessionId)) throw new ConnectError(`session ${req.sessionId} not found`, Code.NotFound);
        s.bobSessions = s.bobSessions.filter((x) => x !== req.sessionId);
        return {};
      },
      revokeUserSessions: (req, ctx) => {
        authed(ctx.requestHeader);
        const revokedSessions = s.bobSessions.length;
        s.bobSessions = [];
        return { revokedSessions };
      },
    });
  };
  const job = (over: MessageInitShape<typeof ImportSchema>): Import => create(ImportSchema, { id: "imp1", fileName: "people.csv", columns: ["E-mail", "Name"], totalRows: 3n, state: ImportState.READY, ...over });
  const importRoutes = (r: ConnectRouter) =>
    r.service(ImportService, {
      createImport: (_req, ctx) => (authed(ctx.requestHeader), { import: job({ state: ImportState.AWAITING_UPLOAD }) }),
      uploadImport: async (reqs, ctx) => {
        authed(ctx.requestHeader);
        for await (const m of reqs) s.uploaded += m.data.length;
        return { import: job({ suggestedMapping: [{ column: 0, field: "emails" }] }) };
      },
      startImport: (req) => {
        s.mapping = req.mapping.map((m) => `${m.column}:${m.field}`);
        return { import: job({ state: ImportState.QUEUED, dryRun: req.dryRun }) };
      },
      async *watchImport() {
        yield { import: job({ state: ImportState.RUNNING, rowsDone: 1n, rowsPerSecond: 10 }) };
        yield { import: job({ state: ImportState.SUCCEEDED, rowsDone: 3n, createdCount: 2n, failedCount: 1n }) };
      },
      listImportErrors: () => ({ errors: [{ rowNumber: 3n, reason: "emails: must be an e-mail address" }] }),
    });
  const CHAT = "3f0c9a6e-1b2d-4c5e-8f70-112233445566";
  const msg = (i: number) => create(MessageSchema, { chatId: CHAT, seq: BigInt(i + 1), senderId: i % 2 ? "u1" : "u2-abcd", content: s.messages[i]!, createdAt: timestampFromMs(s.now) });
  const chatRoutes = (r: ConnectRouter) =>
    r.service(ChatService, {
      listMessages: (req) => ({ messages: s.messages.map((_, i) => msg(i)).slice(-req.limit), lastSeq: BigInt(s.messages.length) }),
      async *subscribe(req) {
        s.subscribes.push(req.afterSeq ?? -1n);
        s.messages.push(`live ${s.subscribes.length}`);
        // replays everything after after_seq (the new message included), then the stream breaks
        for (let i = Number(req.afterSeq ?? 0n); i < s.messages.length; i++) yield { event: { case: "message", value: msg(i) } };
        if (s.subscribes.length < 3) throw new ConnectError("replica draining", Code.Unavailable);
        yield { event: { case: "heartbeat", value: {} } };
        s.stop.abort(); // the user presses Ctrl-C
      },
    });
  const transport: TransportFactory = (_url, interceptors) => createRouterTransport((r) => (routes(r), importRoutes(r), chatRoutes(r)), { transport: { interceptors } });
  return Object.assign(s, { transport });
}

let srv: ReturnType<typeof server>;
let home: string;
beforeEach(() => {
  srv = server();
  home = mkdtempSync(join(tmpdir(), "crm-cli-unit-"));
  dirs.push(home);
});

async function crm(args: string[], opts: { env?: Record<string, string>; stdin?: string | string[]; tty?: boolean } = {}) {
  const stdout = new Sink();
  const stderr = Object.assign(new Sink(), { isTTY: opts.tty ?? false, columns: 100 });
  const stdin = Object.assign(new PassThrough(), { isTTY: opts.tty ?? false });
  if (Array.isArray(opts.stdin)) {
    // typed line by line, each after the prompt asking for it (on the next turn of the event loop:
    // read() listens for the line only once its prompt is written)
    const lines = [...opts.stdin];
    stderr.on("prompt", () => setImmediate(() => stdin.write(lines.shift() ?? "")));
    const write = stderr._write.bind(stderr);
    stderr._write = (chunk, enc, cb) => {
      write(chunk, enc, cb);
      if (/(phone|Password): /.test(chunk.toString())) stderr.emit("prompt");
    };
  } else stdin.end(opts.stdin ?? "");
  const io: Partial<Io> = { stdout, stderr, stdin, env: { XDG_CONFIG_HOME: home, ...opts.env }, transport: srv.transport, now: () => srv.now, signal: srv.stop.signal };
  const code = await run(args, io);
  return { code, out: stdout.text, err: stderr.text };
}

const credentials = () => join(home, "crm", "credentials.json");
const stored = () => JSON.parse(readFileSync(credentials(), "utf8"));
const login = () => crm(["login", "ann@acme.test", "--password-stdin"], { stdin: "right password\n" });

describe("usage", () => {
  test("--help and help are exit 0; unknown commands, options and missing arguments exit 2", async () => {
    assert.equal((await crm(["--help"])).code, 0);
    assert.match((await crm(["users", "add", "--help"])).out, /Usage: crm users add/);
    assert.match((await crm(["help", "users"])).out, /Usage: crm users/);
    const unknown = await crm(["bogus"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /^crm: unknown command 'bogus'/);
    assert.equal((await crm(["users", "add"])).code, 2, "FILE missing");
    assert.equal((await crm(["whoami", "--nope"])).code, 2);
    assert.equal((await crm([])).code, 2, "no command: help on stderr");
  });

  test("bad values are exit 2 with one line naming the option", async () => {
    let r = await crm(["timers", "report", "--week", "--from", "2026-01-01"]);
    assert.deepEqual([r.code, r.err], [2, "crm: give one of --week, --last-week or --from/--to\n"]);
    r = await crm(["companies", "list", "--filter", "acme"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /^crm: --filter "acme": expected field, operator and value/);
    r = await crm(["--server", "ftp://x", "whoami"]);
    assert.deepEqual([r.code, r.err], [2, "crm: --server: not an http(s) URL: ftp://x\n"]);
    r = await crm(["login"], {});
    assert.deepEqual([r.code, r.err], [2, "crm: give your e-mail or phone: crm login ann@example.com\n"], "no terminal to ask on");
    r = await crm(["login", "ann@acme.test"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /no password: standard input is not a terminal; use --password-stdin or CRM_PASSWORD/);
  });
});

describe("login, the stored session, refresh", () => {
  test("not logged in: exit 3 telling what to do", async () => {
    const r = await crm(["whoami"]);
    assert.deepEqual([r.code, r.err], [3, "crm: not logged in to http://127.0.0.1:8080: run `crm login`\n"]);
  });

  test("a wrong password is exit 3 with the server's words; nothing stored", async () => {
    const r = await crm(["login", "ann@acme.test"], { env: { CRM_PASSWORD: "wrong" } });
    assert.deepEqual([r.code, r.err], [3, "crm: wrong login or password\n"]);
    assert.throws(() => statSync(credentials()));
  });

  test("on a terminal, login asks for the login and the password, and does not echo the password", async () => {
    const r = await crm(["login"], { tty: true, stdin: ["ann@acme.test\n", "right password\n"] });
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /E-mail or phone: .*ann@acme\.test/, "the login is echoed");
    assert.match(r.err, /Password: /);
    assert.ok(!r.err.includes("right password"), `the password is not echoed: ${JSON.stringify(r.err)}`);
    assert.equal(stored().sessions["http://127.0.0.1:8080"].login, "ann@acme.test");
  });

  test("login stores the session 0600 in a 0700 dir; whoami uses it; --json for scripts", async () => {
    const r = await login();
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /Logged in to http:\/\/127\.0\.0\.1:8080 as ann@acme\.test \(admin\)/);
    assert.equal(statSync(credentials()).mode & 0o777, 0o600);
    assert.equal(statSync(join(home, "crm")).mode & 0o777, 0o700);
    const s = stored();
    assert.equal(s.current, "http://127.0.0.1:8080");
    assert.equal(s.sessions["http://127.0.0.1:8080"].refreshToken, "rt1");
    const who = await crm(["whoami", "--json"]);
    assert.equal(who.code, 0, who.err);
    assert.deepEqual(JSON.parse(who.out), { server: "http://127.0.0.1:8080", login: "ann@acme.test", userId: "u1", companyId: "c1", role: "admin", sessionId: "", accessExpiresAt: "" });
    assert.equal(srv.refreshes, 0, "a valid access token is used as it is");
    assert.match((await crm(["whoami"])).out, /^server +http:\/\/127\.0\.0\.1:8080\nlogin +ann@acme\.test\n/);
  });

  test("an access token about to expire is refreshed silently and the new refresh token stored", async () => {
    await login();
    srv.now += 15 * 60_000 - 10_000; // 10 s left
    const r = await crm(["whoami"]);
    assert.equal(r.code, 0, r.err);
    assert.equal(srv.refreshes, 1);
    assert.equal(stored().sessions["http://127.0.0.1:8080"].refreshToken, "rt2");
    assert.equal(srv.authHeaders.at(-1), "at2");
    assert.equal(statSync(credentials()).mode & 0o777, 0o600, "still 0600 after the rewrite");
  });

  test("a token the server refuses early is refreshed once and the call repeated", async () => {
    await login();
    srv.access.clear(); // e.g. the signing key rotated
    const r = await crm(["whoami"]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(srv.authHeaders, ["at1", "at2"]);
  });

  test("two crm processes refreshing at once: one refresh, both get the new token", async () => {
    await login();
    srv.now += 15 * 60_000;
    const [a, b] = await Promise.all([crm(["whoami"]), crm(["whoami"])]);
    assert.deepEqual([a.code, b.code], [0, 0], a.err + b.err);
    assert.equal(srv.refreshes, 1, "the second found the first's tokens under the lock");
  });

  test("an ended session is forgotten: exit 3, run crm login", async () => {
    await login();
    srv.now += 15 * 60_000;
    srv.refresh.set("rt1", true); // spent elsewhere
    const r = await crm(["whoami"]);
    assert.equal(r.code, 3);
    assert.equal(r.err, "crm: your session at http://127.0.0.1:8080 has ended (session ended): run `crm login`\n");
    assert.deepEqual(stored().sessions, {});
  });

  test("logout ends the session on the server and forgets it; a second logout says so", async () => {
    await login();
    let r = await crm(["logout"]);
    assert.equal(r.code, 0, r.err);
    assert.equal(srv.access.size, 0);
    assert.deepEqual(stored(), { version: 1, sessions: {} });
    r = await crm(["logout"]);
    assert.deepEqual([r.code, r.err], [0, "Not logged in to http://127.0.0.1:8080.\n"]);
  });

  test("--server and CRM_SERVER pick the server; sessions are kept per server", async () => {
    const r = await crm(["login", "ann@acme.test", "--server", "http://crm.example:9000/"], { env: { CRM_PASSWORD: "right password" } });
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(Object.keys(stored().sessions), ["http://crm.example:9000"]);
    assert.equal(JSON.parse((await crm(["whoami", "--json"])).out).server, "http://crm.example:9000", "the last login's server by default");
    assert.equal((await crm(["whoami"], { env: { CRM_SERVER: "http://other:1" } })).code, 3, "not logged in there");
  });

  test("a damaged credentials file is named, not silently replaced", async () => {
    await login();
    writeFileSync(credentials(), "{nope");
    const r = await crm(["whoami"]);
    assert.equal(r.code, 1);
    assert.match(r.err, /credentials\.json is not a credentials file of crm: delete it and run `crm login`/);
  });
});

describe("users add", () => {
  test("one result per row; a bad row is exit 4 and the others are invited", async () => {
    await login();
    const file = join(home, "users.csv");
    writeFileSync(file, "email,name,role\nann2@acme.test,Ann,admin\nnot-an-email,Bob,\ncid@acme.test,Cid,boss\n");
    const r = await crm(["users", "add", file]);
    assert.equal(r.code, 4, r.err);
    assert.deepEqual(srv.added, ["ann2@acme.test", "not-an-email"], "the bad role never left the machine");
    assert.equal(
      r.out,
      [
        "ROW  EMAIL           RESULT   USER / REASON",
        "2    ann2@acme.test  created  id-ann2@acme.test",
        "3    not-an-email    invalid  email: must be a valid e-mail address",
        '4    cid@acme.test   invalid  role: "boss" is not a role; use owner, admin or member',
        "",
      ].join("\n"),
    );
    assert.match(r.err, /1 invited, 0 already existed, 2 failed/);
    const json = await crm(["users", "add", file, "--json"]);
    assert.equal(json.code, 4);
    assert.deepEqual(JSON.parse(json.out).stats, { created: 1, alreadyExisting: 0, failed: 2, emailsQueued: 0 });
  });

  test("every row fine is exit 0; big files go in calls of 1000", async () => {
    await login();
    const file = join(home, "many.csv");
    writeFileSync(file, ["email", ...Array.from({ length: 2500 }, (_, i) => `u${i}@acme.test`)].join("\n"));
    const r = await crm(["users", "add", file]);
    assert.equal(r.code, 0, r.err);
    assert.equal(srv.added.length, 2500);
  });

  test("field violations are listed one per line; --json gives them to scripts", async () => {
    await login();
    const file = join(home, "bad.csv");
    writeFileSync(file, "email\nall@bad\n");
    let r = await crm(["users", "add", file]);
    assert.deepEqual([r.code, r.err], [1, "crm: the server refused the request (invalid_argument):\n  users[0].email: is bad\n  users[0].name: is required\n"]);
    r = await crm(["users", "add", file, "--json"]);
    assert.deepEqual(JSON.parse(r.err), { error: { code: "invalid_argument", message: "the server refused the request (invalid_argument):", violations: [{ field: "users[0].email", description: "is bad" }, { field: "users[0].name", description: "is required" }] } });
  });

  test("a missing file is exit 1 naming it", async () => {
    await login();
    const r = await crm(["users", "add", join(home, "nope.csv")]);
    assert.deepEqual([r.code, r.err], [1, `crm: no such file: ${join(home, "nope.csv")}\n`]);
  });
});

describe("users sessions and signout", () => {
  test("a user by e-mail (any case) or id: sessions as a table or JSON; one ended, then all", async () => {
    await login();
    const listed = await crm(["users", "sessions", "bob@acme.test"]);
    assert.equal(listed.code, 0, listed.err);
    assert.match(listed.out, /^SESSION\s+LAST USED/);
    assert.match(listed.out, new RegExp(`${SESSION_1}.*10\\.0\\.0\\.7\\s+Firefox`));
    const json = JSON.parse((await crm(["--json", "users", "sessions", BOB])).out) as { sessionId: string }[];
    assert.deepEqual(json.map((x) => x.sessionId), [SESSION_1, SESSION_2]);

    const one = await crm(["users", "signout", "Bob@acme.test", SESSION_1]);
    assert.equal(one.code, 0, one.err);
    assert.match(one.err, /Session .* of Bob@acme.test ended/);
    assert.deepEqual(srv.bobSessions, [SESSION_2]);
    const again = await crm(["users", "signout", BOB, SESSION_1]);
    assert.equal(again.code, 1, "an ended session is the server's not_found");
    assert.match(again.err, /not found/);

    const all = await crm(["--json", "users", "signout", BOB]);
    assert.deepEqual(JSON.parse(all.out), { userId: BOB, revokedSessions: 1 });
    assert.deepEqual(srv.bobSessions, []);
    assert.match((await crm(["users", "sessions", BOB])).err, /has no active session/);
  });

  test("an unknown e-mail is exit 1 naming it; a user or session that is neither e-mail nor id is exit 2", async () => {
    await login();
    const unknown = await crm(["users", "sessions", "nobody@acme.test"]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.err, /no user with the e-mail nobody@acme.test/);
    assert.equal((await crm(["users", "sessions", "bob"])).code, 2);
    assert.equal((await crm(["users", "signout", BOB, "not-a-session"])).code, 2);
  });
});

describe("import", () => {
  test("uploads the file, maps by --map, follows the job with a progress bar; a failed row is exit 4", async () => {
    await login();
    const file = join(home, "people.csv");
    writeFileSync(file, "E-mail,Name\na@x.io,A\nb@x.io,B\nnope,C\n");
    const r = await crm(["import", file, "--object", "people", "-m", "name=custom.nick"], { tty: true });
    assert.equal(r.code, 4, r.err);
    assert.equal(srv.uploaded, 37, "the whole file, streamed");
    assert.deepEqual(srv.mapping, ["0:emails", "1:custom.nick"], "the suggestion, changed by --map");
    assert.match(r.err, /#1 E-mail +→ emails\n +#2 Name +→ custom\.nick/);
    assert.match(r.err, /100% \| 3\/3 rows/, "the progress bar reached the end");
    assert.match(r.err, /3 of 3 rows: 2 created, 0 updated, 0 merged, 0 unchanged, 1 failed\./);
    assert.equal(r.out, "ROW  REASON\n3    emails: must be an e-mail address\n");
  });

  test("usage: a missing --object, an unknown object or mode, an unknown column are exit 2; a missing file exit 1 before any job", async () => {
    await login();
    const file = join(home, "p.csv");
    writeFileSync(file, "E-mail\n");
    assert.equal((await crm(["import", file])).code, 2);
    assert.equal((await crm(["import", file, "--object", "deals"])).code, 2, "deals are not imported");
    assert.equal((await crm(["import", file, "--object", "people", "--mode", "merge"])).code, 2);
    const r = await crm(["import", file, "--object", "people", "-m", "Phone=phones"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /the file has no column "Phone" \(its columns: #1 "E-mail", #2 "Name"\)/);
    const missing = await crm(["import", join(home, "none.csv"), "--object", "people"]);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /no such file/);
  });
});

describe("chat tail", () => {
  test("history, then live; a broken stream is resumed after the last message printed, nothing twice", async () => {
    await login();
    const r = await crm(["chat", "tail", "3f0c9a6e-1b2d-4c5e-8f70-112233445566", "-n", "1"]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(srv.subscribes, [2n, 3n, 4n], "each reconnect starts after the last seq printed");
    assert.deepEqual(
      r.out.split("\n").filter(Boolean).map((l) => l.replace(/^\S+ \S+  /, "")),
      ["you: two", "member …abcd: live 1", "you: live 2", "member …abcd: live 3"],
    );
    assert.equal((r.err.match(/the chat's stream broke \(replica draining\); reconnecting in/g) ?? []).length, 2);
  });

  test("--json: one message per line", async () => {
    await login();
    const r = await crm(["chat", "tail", "3f0c9a6e-1b2d-4c5e-8f70-112233445566", "--no-follow", "--json"]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.out.trim().split("\n").map((l) => JSON.parse(l).content), ["one", "two"]);
  });
});
