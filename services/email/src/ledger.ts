/**
 * The workers' bookkeeping in dbservice, batched (group commit): every "sent" record and every
 * status lookup the workers ask for while a call is under way goes into the next call, so five
 * workers cost about one AdvanceEmailWorkers call per round instead of five, and dbservice one
 * transaction instead of five.
 *
 * One call at a time, and in a call the records are written before the lookups: a lookup sees
 * every record asked for before it (but one whose call failed and waits for its retry). A record
 * that fails is tried again with backoff (a lost record means a resend after a crash); a lookup
 * that fails rejects (its task comes again later).
 */
import { AsyncResource } from "node:async_hooks";
import type { EmailStatus } from "@crm/gen/crm/email/v1/email_pb";

export interface EmailRef {
  emailId: string;
  companyId: string;
}

export interface SentRecord extends EmailRef {
  sentAt: Date;
  /** The Message-ID the SMTP server was given. */
  messageId: string;
}

/** One call to dbservice: records first, then lookups; `next[i]` answers `lookups[i]` (undefined: no such e-mail). */
export type AdvanceCall = (records: SentRecord[], lookups: EmailRef[]) => Promise<{ next: (EmailStatus | undefined)[] }>;

export interface LedgerOptions {
  /** Items per call (records and lookups each). */
  maxBatch: number;
  /** Tries of a record before it is given up (logged by `onLost`). */
  recordTries: number;
  /** Delay before retry n (1-based) of a failed record. */
  retryDelayMs: (n: number) => number;
  /** A record given up after its tries: the e-mail went out, but a redelivery would send it again. */
  onLost: (r: SentRecord, err: unknown) => void;
}

export interface Ledger {
  /** Resolves once the record is written (or given up, see `onLost`); never rejects. */
  recordSent(r: SentRecord): Promise<void>;
  /** The e-mail's status; undefined when the company has no such e-mail. */
  status(ref: EmailRef): Promise<EmailStatus | undefined>;
}

interface PendingRecord {
  item: SentRecord;
  resolve: () => void;
  tries: number;
}

interface PendingLookup {
  item: EmailRef;
  resolve: (status: EmailStatus | undefined) => void;
  reject: (err: unknown) => void;
}

export function createLedger(call: AdvanceCall, opts: LedgerOptions): Ledger {
  const records: PendingRecord[] = [];
  const lookups: PendingLookup[] = [];
  let busy = false;
  let scheduled = false;
  // Calls run in the context the ledger was made in, not in that of whichever task asked first
  // (its request id and trace would otherwise be stamped on every e-mail's bookkeeping).
  const detached = AsyncResource.bind((fn: () => void) => fn());

  function schedule() {
    if (busy || scheduled || (records.length === 0 && lookups.length === 0)) return;
    scheduled = true;
    // Everything asked for in this turn of the event loop joins the call.
    detached(() => setImmediate(() => void flush()));
  }

  async function flush() {
    scheduled = false;
    busy = true;
    const recs = records.splice(0, opts.maxBatch);
    const looks = lookups.splice(0, opts.maxBatch);
    try {
      const { next } = await call(
        recs.map((r) => r.item),
        looks.map((l) => l.item),
      );
      for (const r of recs) r.resolve();
      looks.forEach((l, i) => l.resolve(next[i]));
    } catch (err) {
      for (const l of looks) l.reject(err);
      for (const r of recs) retry(r, err);
    } finally {
      busy = false;
      schedule();
    }
  }

  function retry(r: PendingRecord, err: unknown) {
    if (++r.tries >= opts.recordTries) {
      opts.onLost(r.item, err);
      r.resolve();
      return;
    }
    setTimeout(() => {
      records.push(r);
      schedule();
    }, opts.retryDelayMs(r.tries));
  }

  return {
    recordSent(item) {
      return new Promise((resolve) => {
        records.push({ item, resolve, tries: 0 });
        schedule();
      });
    },
    status(item) {
      return new Promise((resolve, reject) => {
        lookups.push({ item, resolve, reject });
        schedule();
      });
    },
  };
}
