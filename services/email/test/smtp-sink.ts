/**
 * A real SMTP server for tests (the smtp-server package), offering STARTTLS with its built-in
 * self-signed certificate. It records every message it ACCEPTED (answered 250) by Message-ID, and
 * a policy decides per message: accept, refuse for now (451), refuse for good (550), or hold the
 * answer (the client waits, as with a slow server) until `release()`.
 */
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from "smtp-server";

export interface Received {
  messageId: string;
  emailId: string;
  to: string[];
  subject: string;
  raw: string;
  secure: boolean;
  /** The SMTP session (one per client connection) and when the message was accepted (performance.now()). */
  session: string;
  at: number;
}

export type Verdict = "accept" | "temporary" | "permanent" | "hold";

export interface SmtpSink {
  /** SMTP_URL for the email service (self-signed STARTTLS accepted). */
  url: string;
  port: number;
  accepted: Received[];
  /** How often each Message-ID was accepted. */
  counts: Map<string, number>;
  /** Messages refused or held so far. */
  refused: number;
  held: number;
  policy: (m: Received) => Verdict;
  /** Answers every held message: accepted (true) or the connection dropped without an answer (false). */
  release(accept: boolean): void;
  /** Resolves when `cond` holds; checked after every message event. */
  until(cond: () => boolean, what: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const header = (raw: string, name: string) => {
  const head = raw.split(/\r?\n\r?\n/, 1)[0] ?? "";
  const m = new RegExp(`^${name}:[ \\t]*(.*(?:\\r?\\n[ \\t].*)*)`, "im").exec(head);
  return m ? m[1]!.replace(/\r?\n[ \t]/g, " ").trim() : "";
};

export async function startSmtpSink(opts: { starttls?: boolean } = {}): Promise<SmtpSink> {
  let waiters: (() => void)[] = [];
  const notify = () => {
    const w = waiters;
    waiters = [];
    for (const fn of w) fn();
  };
  const heldCallbacks: { cb: (err?: Error | null) => void; m: Received; session: SMTPServerSession }[] = [];

  const sink: SmtpSink = {
    url: "",
    port: 0,
    accepted: [],
    counts: new Map(),
    refused: 0,
    held: 0,
    policy: () => "accept",
    release(accept) {
      const held = heldCallbacks.splice(0);
      sink.held = 0;
      for (const h of held) {
        if (accept) {
          record(h.m);
          h.cb();
        } else {
          h.cb(Object.assign(new Error("Server shutting down"), { responseCode: 421 }));
        }
      }
      notify();
    },
    until(cond, what, timeoutMs = 60_000) {
      if (cond()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (accepted ${sink.accepted.length}, refused ${sink.refused}, held ${sink.held})`)), timeoutMs);
        const check = () => {
          if (cond()) {
            clearTimeout(t);
            resolve();
          } else waiters.push(check);
        };
        waiters.push(check);
      });
    },
    async close() {
      sink.release(false);
      await new Promise<void>((r) => server.close(() => r()));
    },
  };

  function record(m: Received) {
    m.at = performance.now();
    sink.accepted.push(m);
    sink.counts.set(m.messageId, (sink.counts.get(m.messageId) ?? 0) + 1);
  }

  const server = new SMTPServer({
    authOptional: true,
    ...(opts.starttls === false ? { disabledCommands: ["STARTTLS"] } : {}),
    logger: false,
    size: 20 * 1024 * 1024,
    onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        const m: Received = {
          messageId: header(raw, "Message-ID"),
          emailId: header(raw, "X-CRM-Email-Id"),
          to: session.envelope.rcptTo.map((r) => r.address),
          subject: header(raw, "Subject"),
          raw,
          secure: session.secure,
          session: session.id,
          at: 0,
        };
        const verdict = sink.policy(m);
        if (verdict === "accept") {
          record(m);
          cb();
        } else if (verdict === "hold") {
          sink.held++;
          heldCallbacks.push({ cb, m, session });
        } else {
          sink.refused++;
          cb(Object.assign(new Error(verdict === "temporary" ? "Try again later" : "Mailbox does not exist"), { responseCode: verdict === "temporary" ? 451 : 550 }));
        }
        notify();
      });
    },
  });
  server.on("error", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.server.address() as { port: number }).port;
  sink.port = port;
  sink.url = `smtp://127.0.0.1:${port}?tls.rejectUnauthorized=false`;
  return sink;
}
