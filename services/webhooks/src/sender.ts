/**
 * Sends one signed delivery: POST with the Standard Webhooks headers (webhook-id,
 * webhook-timestamp, webhook-signature with one "v1,<sig>" per secret: both during a rotation's
 * overlap). The address guard runs on literal addresses before connecting and inside the
 * connection's DNS lookup; redirects are not followed (a 3xx is a failure); the whole exchange
 * has a deadline; at most `maxBytes` of the answer are read, then the socket is dropped.
 */
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { createHmac, createSecretKey, type KeyObject } from "node:crypto";
import { scrubText } from "@crm/kit";
import type { Guard } from "./guard.js";

export interface SendRequest {
  url: string;
  eventId: string;
  body: string;
  secrets: readonly string[];
  /** The webhook-timestamp (the attempt's time by the service's clock). */
  timestamp: Date;
}

export interface SendResult {
  /** 0 when there was no HTTP answer. */
  status: number;
  latencyMs: number;
  error: string;
  /** The first bytes of the answer, as UTF-8. */
  responsePrefix: string;
}

export type Sender = (r: SendRequest) => Promise<SendResult>;

export interface SenderOptions {
  guard: Guard;
  timeoutMs: number;
  maxBytes: number;
  userAgent?: string;
}

/** A secret's key bytes (base64 after `whsec_`), decoded once: a process signs with few secrets, many times. */
const keys = new Map<string, KeyObject>();
function keyOf(secret: string): KeyObject {
  let k = keys.get(secret);
  if (!k) {
    const bytes = Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64");
    if (bytes.length === 0) throw new Error("webhooks: an endpoint's signing secret decodes to no bytes (expected whsec_ and base64): rotate the endpoint's secret");
    if (keys.size >= 10_000) keys.clear(); // rotated and deleted endpoints' secrets do not pile up
    keys.set(secret, (k = createSecretKey(bytes)));
  }
  return k;
}

/**
 * The webhook-signature header: a signature per secret, space-separated; each
 * `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` as Standard Webhooks defines it (the
 * `standardwebhooks` package's Webhook.sign, which hashes in JavaScript: ~7× the CPU of node:crypto).
 */
export function signatureHeader(secrets: readonly string[], eventId: string, at: Date, body: string): string {
  const signed = `${eventId}.${Math.floor(at.getTime() / 1000)}.`;
  return secrets.map((s) => `v1,${createHmac("sha256", keyOf(s)).update(signed).update(body).digest("base64")}`).join(" ");
}

export function createSender(o: SenderOptions): Sender {
  const agents = {
    "http:": new http.Agent({ keepAlive: true, maxSockets: 64, timeout: o.timeoutMs }),
    "https:": new https.Agent({ keepAlive: true, maxSockets: 64, timeout: o.timeoutMs }),
  };
  return async (r) => {
    const started = performance.now();
    const took = () => Math.round(performance.now() - started);
    let url: URL;
    try {
      url = new URL(r.url);
    } catch {
      return { status: 0, latencyMs: 0, error: "the URL is not valid", responsePrefix: "" };
    }
    const host = url.hostname.replace(/^\[|\]$/g, "");
    if (net.isIP(host)) {
      const refused = o.guard.refusal(host);
      if (refused) return { status: 0, latencyMs: 0, error: `refused: ${refused}`, responsePrefix: "" };
    }
    const body = Buffer.from(r.body);
    const headers = {
      "content-type": "application/json",
      "content-length": String(body.length),
      "user-agent": o.userAgent ?? "crm-webhooks/1",
      "webhook-id": r.eventId,
      "webhook-timestamp": String(Math.floor(r.timestamp.getTime() / 1000)),
      "webhook-signature": signatureHeader(r.secrets, r.eventId, r.timestamp, r.body),
    };
    const mod = url.protocol === "https:" ? https : http;
    const agent = agents[url.protocol as "http:" | "https:"];
    return new Promise<SendResult>((resolve) => {
      let done = false;
      const finish = (res: Omit<SendResult, "latencyMs">) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve({ ...res, latencyMs: took() });
      };
      const req = mod.request(url, { method: "POST", headers, agent, lookup: o.guard.lookup }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const end = () => {
          // Kept as text in the delivery log: a binary answer's control characters become U+FFFD.
          const prefix = scrubText(Buffer.concat(chunks).subarray(0, o.maxBytes).toString("utf8").replace(/\uFFFD+$/, ""));
          finish({ status: res.statusCode ?? 0, error: "", responsePrefix: prefix });
        };
        res.on("data", (c: Buffer) => {
          if (size >= o.maxBytes) return;
          chunks.push(c);
          size += c.length;
          if (size >= o.maxBytes) {
            end();
            res.destroy(); // not read further; the socket is not reused
          }
        });
        res.on("end", end);
        res.on("error", () => end());
        res.on("close", end);
      });
      const timer = setTimeout(() => {
        finish({ status: 0, error: `no answer within ${o.timeoutMs} ms`, responsePrefix: "" });
        req.destroy();
      }, o.timeoutMs);
      req.on("error", (err: Error & { code?: string }) => {
        const refused = err.name === "RefusedAddressError";
        finish({ status: 0, error: scrubText(refused ? `refused: ${err.message}` : `${err.code ?? err.name}: ${err.message}`.slice(0, 300)), responsePrefix: "" });
      });
      req.end(body);
    });
  };
}
