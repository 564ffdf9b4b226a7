/** Shared by the timers integration tests: companies, people with tokens, SQL peeks, error checks. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { timestampFromMs, timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import pg from "pg";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import { hashPassword } from "@crm/auth/passwords";
import type { TestApp } from "@crm/testkit";

export const PASSWORD = "correct horse battery staple";

export interface Person {
  userId: string;
  companyId: string;
  token: string;
  timers: Client<typeof TimerService>;
}

const tag = () => randomBytes(4).toString("hex");

export async function newCompany(app: TestApp, name = "Timers"): Promise<Person> {
  const t = tag();
  const reg = await app.client(AuthService).registerCompany({
    companyName: `${name} ${t}`,
    email: `owner-${t}@example.com`,
    password: PASSWORD,
    ownerName: `Owner ${t}`,
  });
  return { userId: reg.userId, companyId: reg.companyId, token: reg.accessToken, timers: app.client(TimerService, { token: reg.accessToken }) };
}

/** A colleague in the owner's company (inserted directly: the admin service is not needed for these tests). */
export async function addPerson(app: TestApp, dbUrl: string, companyId: string, role: "admin" | "member"): Promise<Person> {
  const email = `${role}-${tag()}@example.com`;
  const hash = await hashPassword(PASSWORD);
  await query(dbUrl, "INSERT INTO users (company_id, email, name, role, status, password_hash) VALUES ($1, $2, $3, $4, 'active', $5)", [companyId, email, `A ${role}`, role, hash]);
  const login = await app.client(AuthService).login({ email, password: PASSWORD });
  return { userId: login.userId, companyId, token: login.accessToken, timers: app.client(TimerService, { token: login.accessToken }) };
}

/** As the superuser (no RLS): to look behind the service's back. */
export async function query<R extends pg.QueryResultRow = Record<string, unknown>>(dbUrl: string, text: string, params: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    return (await c.query<R>(text, params)).rows;
  } finally {
    await c.end();
  }
}

export const at = (iso: string): Timestamp => timestampFromMs(Date.parse(iso));
export const ago = (ms: number): Timestamp => timestampFromMs(Date.now() - ms);
export const iso = (t: Timestamp | undefined) => (t ? new Date(timestampMs(t)).toISOString() : undefined);
export const H = 3_600_000;
export const hours = (d: { seconds: bigint; nanos: number } | undefined) => (d ? (Number(d.seconds) * 1000 + d.nanos / 1e6) / H : NaN);

export async function expectCode(p: Promise<unknown>, code: Code, message?: RegExp): Promise<ConnectError> {
  let caught: ConnectError | undefined;
  await assert.rejects(p, (err: unknown) => {
    caught = ConnectError.from(err);
    assert.equal(Code[caught.code], Code[code], `${Code[caught.code]}: ${caught.rawMessage}`);
    if (message) assert.match(caught.rawMessage, message);
    return true;
  });
  return caught!;
}

export async function countTimers(dbUrl: string, userId: string): Promise<{ all: number; running: number }> {
  const [r] = await query<{ all: string; running: string }>(dbUrl, "SELECT count(*) AS all, count(*) FILTER (WHERE end_time IS NULL) AS running FROM timers WHERE user_id = $1", [userId]);
  return { all: Number(r!.all), running: Number(r!.running) };
}
