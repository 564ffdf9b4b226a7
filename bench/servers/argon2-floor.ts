/**
 * FLOOR of register/login: raw argon2id at the auth service's parameters (services/auth
 * passwords.ts argonOptions), `concurrency` operations in flight, `total` in all, in its own
 * process (same libuv pool size as the server). Prints one JSON line with the result.
 *   node --import tsx bench/servers/argon2-floor.ts hash|verify CONCURRENCY TOTAL
 */
import { hash, verify } from "@node-rs/argon2";
import { argonOptions } from "@crm/auth/passwords";
import { closedLoop } from "../lib/driver.js";

const [mode = "verify", concurrency = "8", total = "100"] = process.argv.slice(2);
const password = "correct horse battery staple 42";
const phc = await hash(password, argonOptions);
const cpu0 = process.cpuUsage();
const r = await closedLoop({
  concurrency: Number(concurrency),
  total: Number(total),
  timeoutMs: 300_000,
  call: async () => {
    if (mode === "hash") await hash(password, argonOptions);
    else if (!(await verify(phc, password))) throw new Error("argon2 verify returned false");
  },
});
const cpu = process.cpuUsage(cpu0);
console.log(JSON.stringify({ bench_result: true, ...r, cpuMs: (cpu.user + cpu.system) / 1000, rssBytes: process.memoryUsage().rss, threadpool: process.env.UV_THREADPOOL_SIZE ?? "4 (default)" }));
