/**
 * The `next` values of GET /auth/refresh?next=… that must not lead off the site (issue 14, item 8),
 * and the ones that must work, checked against what a browser makes of the answer: Node's WHATWG
 * URL parser, the one browsers implement. Used by the njs unit test (safe-next.test.ts) and by the
 * gateway test through nginx, so every layer that handles `next` is held to the same table.
 */
import assert from "node:assert/strict";

/** A made-up public origin; the redirect is relative, so any origin reads it the same way. */
export const origin = "https://crm.example";

/** Values of `next` as the gateway receives them (percent-decoded once), meant to leave the site. */
export const hostileNext: string[] = [
  "//evil.example",
  "///evil.example",
  "////evil.example/x",
  "/\\evil.example",
  "\\\\evil.example",
  "\\/evil.example",
  "/\\/evil.example",
  "/\t/evil.example",
  "\t//evil.example",
  "/\n/evil.example",
  "/\r\n/evil.example",
  "/\t\\evil.example",
  "/\\\t\\evil.example",
  " //evil.example",
  "\u0000//evil.example",
  "\u001f/\\evil.example",
  "\u0020\t//evil.example\u0000",
  "https://evil.example",
  "HTTPS://evil.example/chats",
  "https:/evil.example",
  "https:evil.example",
  "http:\\\\evil.example",
  "ftp://evil.example",
  "javascript:alert(1)",
  "JaVaScRiPt:alert(1)",
  "\tjavascript:alert(1)",
  "java\tscript:alert(1)",
  "data:text/html,<script>alert(1)</script>",
  "evil.example",
  "@evil.example",
  ".//evil.example",
  "",
  "\ud800//evil.example",
];

/** Raw query strings (encoded the way an attacker might) for the same class. */
export const hostileQueries: string[] = [
  "next=/%09/evil.example",
  "next=%2F%2Fevil.example",
  "next=/%2F%2Fevil.example",
  "next=%2F%5Cevil.example",
  "next=/%5Cevil.example",
  "next=%5C%5Cevil.example",
  "next=%0D%0A//evil.example",
  "next=/%0A/evil.example",
  "next=%20%20//evil.example",
  "next=%00//evil.example",
  "next=https%3A%2F%2Fevil.example",
  "next=javascript%3Aalert(1)",
  "next=/chats&next=//evil.example",
];

/** Same-site values and the Location each must give. */
export const goodNext: [string, string][] = [
  ["/", "/"],
  ["/chats/c1/messages?limit=5", "/chats/c1/messages?limit=5"],
  ["/admin/users#top", "/admin/users#top"],
  ["/chats/caf\u00e9", "/chats/caf%C3%A9"],
  ["/chats/a b", "/chats/a%20b"],
  ["/chats/%2F%2Fevil.example", "/chats/%2F%2Fevil.example"],
  ["/%2F%2Fevil.example", "/%2F%2Fevil.example"], // an encoded slash is part of a path segment
  ["/chats/\tc1", "/chats/c1"], // the tab a browser drops
  ["  /chats/c1  ", "/chats/c1"],
  ["/chats\\c1", "/chats/c1"],
  ["/chats/<x>\"", "/chats/%3Cx%3E%22"],
];

/** What a browser at `origin` does with a Location: it must stay on the site. */
export function assertSameSite(location: string | undefined, what: string): URL {
  assert.equal(typeof location, "string", `${what}: a Location`);
  assert.match(location!, /^\/(?:[^/\\][\x21-\x7e]*)?$/, `${what}: a path of printable ASCII, got ${JSON.stringify(location)}`);
  const url = new URL(location!, `${origin}/auth/refresh`);
  assert.equal(url.origin, origin, `${what}: ${JSON.stringify(location)} leads to ${url.href}`);
  return url;
}

/** True when a browser would take `next` itself off the site (the reason it must be refused). */
export function browserLeaves(next: string): boolean {
  try {
    return new URL(next, `${origin}/auth/refresh`).origin !== origin;
  } catch {
    return true;
  }
}
