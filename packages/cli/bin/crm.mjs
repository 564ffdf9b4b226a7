#!/usr/bin/env node
// `crm`, the command-line tool (packages/cli/README.md). The workspace's packages export their
// TypeScript sources, so tsx compiles them on the fly (and caches the result).
import { register } from "tsx/esm/api";

register();
const { run } = await import("../src/main.ts");
process.exitCode = await run(process.argv.slice(2));
