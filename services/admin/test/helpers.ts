/** Shared by the admin/invite/reset tests: owners, MIME decoding, tokens from e-mails. */
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import type { TestApp } from "@crm/testkit";

let seq = 0;
/** A unique tag per call, so reruns against a shared database never collide. */
export const uniq = () => `${Date.now().toString(36)}${(seq++).toString(36)}${Math.random().toString(36).slice(2, 6)}`;

export const PASSWORD = "correct horse battery staple";

export async function registerOwner(app: TestApp, tag = uniq(), locale = "en") {
  const auth = app.client(AuthService);
  const reg = await auth.registerCompany({ companyName: `Company ${tag}`, address: "", email: `owner-${tag}@example.com`, phone: "", password: PASSWORD, ownerName: `Owner ${tag}`, locale });
  return { ...reg, email: `owner-${tag}@example.com`, tag };
}

export async function expectCode(p: Promise<unknown>, code: Code, message?: RegExp) {
  await assert.rejects(p, (err: unknown) => {
    const e = ConnectError.from(err);
    assert.equal(Code[e.code], Code[code], `${Code[e.code]}: ${e.rawMessage}`);
    if (message) assert.match(e.rawMessage, message);
    return true;
  });
}

function decodePart(headers: string, body: string): string {
  const cte = /content-transfer-encoding:\s*([\w-]+)/i.exec(headers)?.[1]?.toLowerCase();
  if (cte === "base64") return Buffer.from(body.replace(/\s+/g, ""), "base64").toString("utf8");
  if (cte === "quoted-printable") {
    const bytes = body.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
    return Buffer.from(bytes, "latin1").toString("utf8");
  }
  return body;
}

/** The decoded text/plain and text/html parts of a raw message. */
export function mailParts(raw: string): { text: string; html: string } {
  const out = { text: "", html: "" };
  const boundary = /boundary="?([^";\r\n]+)"?/i.exec(raw)?.[1];
  const parts = boundary ? raw.split(`--${boundary}`).slice(1, -1) : [raw];
  for (const part of parts) {
    const cut = part.search(/\r?\n\r?\n/);
    const headers = part.slice(0, cut);
    const body = part.slice(cut).replace(/^\r?\n\r?\n/, "");
    const type = /content-type:\s*([\w/]+)/i.exec(headers)?.[1]?.toLowerCase();
    if (type === "text/plain") out.text = decodePart(headers, body);
    if (type === "text/html") out.html = decodePart(headers, body);
  }
  return out;
}

/** The one-time token of the link in an e-mail. */
export function tokenIn(raw: string): string {
  const m = /#token=([A-Za-z0-9_-]{43})/.exec(mailParts(raw).text);
  assert.ok(m, "the e-mail holds a link with a token");
  return m[1]!;
}
