/** Every scenario, in the order `npm run bench` runs them. */
import type { Scenario } from "../lib/report.js";
import { email } from "./email.js";
import { cluster } from "./cluster.js";
import { apikeys } from "./apikeys.js";
import { consoleScenario } from "./console.js";
import { fanout } from "./fanout.js";
import { gateway } from "./gateway.js";
import { idleMemory } from "./idle-memory.js";
import { importScenario } from "./import.js";
import { login } from "./login.js";
import { otelStartup } from "./otel-startup.js";
import { records } from "./records.js";
import { recordsWatch } from "./records-watch.js";
import { rpc } from "./rpc.js";
import { sendmessage } from "./sendmessage.js";
import { startup } from "./startup.js";
import { timers } from "./timers.js";
import { users } from "./users.js";
import { tracing } from "./tracing.js";
import { webhooks } from "./webhooks.js";

export const scenarios: Scenario[] = [rpc, gateway, login, startup, idleMemory, otelStartup, cluster, sendmessage, fanout, users, tracing, timers, email, apikeys, records, recordsWatch, webhooks, importScenario, consoleScenario];
