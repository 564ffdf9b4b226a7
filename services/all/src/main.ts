/**
 * The one entry point: `node … main.ts [target]` — target `all` (default) runs every service in
 * one process; a service name (auth, dbservice, chats, timers, admin, email, logs, cache, records, webhooks) runs
 * that service alone, as in the cluster and on Kubernetes (like Loki's -target).
 */
import { resolve } from "node:path";
import { holdYoungGeneration } from "./heap.js";

const target = process.argv[2] ?? process.env.CRM_TARGET ?? "all";
const unset = (v: string | undefined) => v === undefined || v.trim() === "";
// The all-in-one on PGlite (no DATABASE_URL): the database's thread starts before anything else
// loads, so its boot overlaps importing the kit and the services' code. all-in-one.ts takes it
// for the same folder (DATA_DIR/pg, read as its config reads it) and reports its failures.
if (target === "all" && unset(process.env.DATABASE_URL)) {
  const { startEmbeddedPostgresEarly } = await import("@crm/dbservice/embedded");
  startEmbeddedPostgresEarly(resolve(unset(process.env.DATA_DIR) ? "./data" : process.env.DATA_DIR!, "pg"));
}

// Until the target is ready, start-up's lifelong objects go straight to the old generation (heap.ts);
// so the kit is imported after the hold.
const releaseYoungGeneration = holdYoungGeneration();
const { createLogger, main, onSignals, startTelemetry } = await import("@crm/kit");

const targets: Record<string, () => Promise<void>> = {
  auth: async () => (await import("@crm/auth/main")).start(),
  dbservice: async () => (await import("@crm/dbservice/main")).start(),
  chats: async () => (await import("@crm/chats/main")).start(),
  timers: async () => (await import("@crm/timers/main")).start(),
  admin: async () => (await import("@crm/admin/main")).start(),
  email: async () => (await import("@crm/email/main")).start(),
  logs: async () => (await import("@crm/logs/main")).start(),
  cache: async () => (await import("@crm/cache/main")).start(),
  records: async () => (await import("@crm/records/main")).start(),
  webhooks: async () => (await import("@crm/webhooks/main")).start(),
};

// Tracing first, before any server or client starts (a no-op without an exporter to run: no
// OTEL_EXPORTER_OTLP_ENDPOINT and no OTEL_TRACES_EXPORTER=console; packages/kit/src/telemetry.ts).
await startTelemetry(target === "all" ? "crm" : target);

if (target === "all") {
  await main(async () => {
    // Imported here, like each target's main: a single-service process loads only its own code.
    const { startAllInOne } = await import("./all-in-one.js");
    const app = await startAllInOne();
    onSignals(createLogger("crm"), app);
  });
} else if (targets[target]) {
  await targets[target]();
} else {
  process.stderr.write(`unknown target ${JSON.stringify(target)}: use all, ${Object.keys(targets).join(", ")}\n`);
  process.exit(2);
}
releaseYoungGeneration();
