/** njs/rest.js safeNext, run by Node: the open-redirect table (next-cases.ts) without nginx. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, it } from "node:test";
import { gatewayDir } from "../render.mjs";
import { assertSameSite, browserLeaves, goodNext, hostileNext } from "./next-cases.ts";

const rest = (await import(pathToFileURL(join(gatewayDir, "njs", "rest.js")).href)).default as { safeNext(value: unknown): string };

describe("njs safeNext: GET /auth/refresh sends the browser back only to a path on this site", () => {
  it("every hostile value gives '/'", () => {
    for (const next of hostileNext) {
      const out = rest.safeNext(next);
      assertSameSite(out, JSON.stringify(next));
      if (browserLeaves(next.replace(/[\ud800-\udfff]/g, ""))) assert.equal(out, "/", `${JSON.stringify(next)} would leave the site`);
    }
  });

  it("the table's hostile values do leave the site when sent as they are (the test can fail)", () => {
    const leaving = hostileNext.filter((n) => browserLeaves(n));
    assert.ok(leaving.length >= 25, `only ${leaving.length} of the hostile values leave the site`);
    assert.ok(browserLeaves("/\t/evil.example") && browserLeaves("/\\evil.example"), "the browser's reading");
  });

  it("same-site paths come back, percent-encoded", () => {
    for (const [next, location] of goodNext) {
      assert.equal(rest.safeNext(next), location, JSON.stringify(next));
      assertSameSite(location, next);
    }
  });

  it("anything but one string is '/'", () => {
    for (const v of [undefined, null, 1, ["/chats", "//evil.example"], {}]) assert.equal(rest.safeNext(v), "/");
  });
});
