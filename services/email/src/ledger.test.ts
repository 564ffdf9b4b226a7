/** The ledger's batching rules, with a fake AdvanceEmailWorkers call. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { EmailStatus } from "@crm/gen/crm/email/v1/email_pb";
import { createLedger, type AdvanceCall, type EmailRef, type LedgerOptions, type SentRecord } from "./ledger.js";

const company = "00000000-0000-4000-8000-000000000001";
const ref = (n: number): EmailRef => ({ emailId: `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`, companyId: company });
const rec = (n: number): SentRecord => ({ ...ref(n), sentAt: new Date(), messageId: `<${n}@test>` });

const opts = (over: Partial<LedgerOptions> = {}): LedgerOptions => ({ maxBatch: 100, recordTries: 3, retryDelayMs: () => 1, onLost: () => {}, ...over });

/** A fake database: e-mails 1..99 exist and are queued until recorded; every call is logged. */
function fakeCall(fail: () => boolean = () => false) {
  const sent = new Set<string>();
  const calls: { records: string[]; lookups: string[] }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const call: AdvanceCall = async (records, lookups) => {
    calls.push({ records: records.map((r) => r.emailId), lookups: lookups.map((l) => l.emailId) });
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    await new Promise((r) => setTimeout(r, 5));
    inFlight--;
    if (fail()) throw new Error("database unavailable");
    for (const r of records) sent.add(r.emailId);
    return { next: lookups.map((l) => (Number(l.emailId.slice(-12)) >= 100 ? undefined : sent.has(l.emailId) ? EmailStatus.SENT : EmailStatus.QUEUED)) };
  };
  return { call, calls, sent, maxInFlight: () => maxInFlight };
}

test("what is asked for at once goes in one call; what is asked for during a call goes in the next; one call at a time", async () => {
  const db = fakeCall();
  const ledger = createLedger(db.call, opts());
  const first = Promise.all([ledger.status(ref(1)), ledger.status(ref(2)), ledger.recordSent(rec(3))]);
  await new Promise((r) => setImmediate(r));
  const second = Promise.all([ledger.status(ref(4)), ledger.recordSent(rec(5)), ledger.status(ref(100))]);
  assert.deepEqual(await first, [EmailStatus.QUEUED, EmailStatus.QUEUED, undefined]);
  assert.deepEqual(await second, [EmailStatus.QUEUED, undefined, undefined], "e-mail 100 does not exist");
  assert.equal(db.calls.length, 2);
  assert.deepEqual(db.calls[0], { records: [ref(3).emailId], lookups: [ref(1).emailId, ref(2).emailId] });
  assert.equal(db.maxInFlight(), 1);
});

test("a lookup sees every record asked for before it, even one already in a call under way", async () => {
  const db = fakeCall();
  const ledger = createLedger(db.call, opts());
  const recorded = ledger.recordSent(rec(7));
  await new Promise((r) => setImmediate(r)); // the record's call is under way
  assert.equal(await ledger.status(ref(7)), EmailStatus.SENT);
  await recorded;
  // Asked in the same turn: the record is written first.
  const [, status] = await Promise.all([ledger.recordSent(rec(8)), ledger.status(ref(8))]);
  assert.equal(status, EmailStatus.SENT);
});

test("a batch holds at most maxBatch records and lookups; the rest follow", async () => {
  const db = fakeCall();
  const ledger = createLedger(db.call, opts({ maxBatch: 2 }));
  await Promise.all([1, 2, 3, 4, 5].map((n) => ledger.status(ref(n))));
  assert.deepEqual(
    db.calls.map((c) => c.lookups.length),
    [2, 2, 1],
  );
});

test("a failed call rejects its lookups and retries its records; a record is given up after its tries", async () => {
  let failures = 2;
  const db = fakeCall(() => failures-- > 0);
  const lost: SentRecord[] = [];
  const ledger = createLedger(db.call, opts({ recordTries: 3, onLost: (r) => lost.push(r) }));
  const [status, recorded] = await Promise.allSettled([ledger.status(ref(1)), ledger.recordSent(rec(2))]);
  assert.equal(status.status, "rejected");
  assert.equal(recorded.status, "fulfilled");
  assert.ok(db.sent.has(ref(2).emailId), "written on the third try");
  assert.equal(lost.length, 0);

  const down = fakeCall(() => true);
  const gone = createLedger(down.call, opts({ recordTries: 3, onLost: (r) => lost.push(r) }));
  await gone.recordSent(rec(3)); // resolves: the e-mail went out; the loss is reported
  assert.deepEqual(lost.map((r) => r.emailId), [ref(3).emailId]);
  assert.equal(down.calls.length, 3);
});
