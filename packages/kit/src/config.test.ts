import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { ConfigError, env, loadConfig } from "./config.js";

const schema = z.object({ PORT: env.port(8080), MODE: env.oneOf(["a", "b"], "a"), WORKERS: env.int(5, 1, 64), DB: env.url(["postgres"]), ON: env.bool(false) });

test("defaults apply to unset and blank variables", () => {
  assert.deepEqual(loadConfig(schema, { PORT: "", WORKERS: " " }), { PORT: 8080, MODE: "a", WORKERS: 5, ON: false });
  assert.deepEqual(loadConfig(schema, { PORT: "0", MODE: "b", WORKERS: "64", DB: "postgres://x@h/db", ON: "yes" }), { PORT: 0, MODE: "b", WORKERS: 64, DB: "postgres://x@h/db", ON: true });
});

test("a bad value is ONE line naming the variable, what it expects and what it got", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PORT: "http" }, /^config: PORT must be a TCP port .*\(got "http"\)$/],
    [{ PORT: "70000" }, /^config: PORT must be a TCP port/],
    [{ MODE: "c" }, /^config: MODE must be one of a, b \(got "c"\)$/],
    [{ WORKERS: "0" }, /^config: WORKERS must be an integer 1\.\.64/],
    [{ DB: "mysql://h" }, /^config: DB must be a URL starting with postgres:\/\//],
    [{ ON: "maybe" }, /^config: ON must be true or false/],
  ];
  for (const [vars, message] of cases) {
    assert.throws(() => loadConfig(schema, vars), (err: unknown) => err instanceof ConfigError && message.test(err.message) && !err.message.includes("\n"));
  }
});
