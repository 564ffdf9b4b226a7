import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { mapStack } from "./stack-maps.js";

test("a logged stack's bundle frames become source positions; unmapped frames stay", async () => {
  const dir = mkdtempSync(join(tmpdir(), "stack-maps-"));
  const nodeMaps = process.sourceMapsEnabled; // tsx switches Node's own mapping on: off, as in the image
  process.setSourceMapsEnabled(false);
  try {
    writeFileSync(join(dir, "thrower.ts"), ["// line 1", "export function thrower(): Error {", "  const n: number = 1;", "  return new Error(`boom ${n}`);", "}", ""].join("\n"));
    await build({ entryPoints: [join(dir, "thrower.ts")], outfile: join(dir, "out/bundle.mjs"), format: "esm", bundle: true, minifyWhitespace: true, sourcemap: true, sourcesContent: false, logLevel: "silent" });
    const { thrower } = (await import(pathToFileURL(join(dir, "out/bundle.mjs")).href)) as { thrower: () => Error };
    const stack = thrower().stack!;
    assert.match(stack, /out\/bundle\.mjs:1:\d+/, "the raw stack points into the minified bundle");
    const mapped = mapStack(stack);
    assert.ok(mapped.includes(`${pathToFileURL(join(dir, "thrower.ts")).href}:4:10`), mapped);
    assert.equal(mapped.split("\n").length, stack.split("\n").length);
    assert.ok(mapped.includes("node:internal") || !stack.includes("node:internal"), "Node's own frames are untouched");
    const noMap = `Error: x\n    at f (${pathToFileURL(join(dir, "nomap.mjs")).href}:3:7)`;
    assert.equal(mapStack(noMap), noMap, "a file without a map beside it stays as it is");
    process.setSourceMapsEnabled(true);
    assert.equal(mapStack(stack), stack, "when Node maps stacks itself, they are left alone");
  } finally {
    process.setSourceMapsEnabled(nodeMaps);
    rmSync(dir, { recursive: true, force: true });
  }
});
