/**
 * Test support shared by every workspace.
 *
 * `need(component, available, install)` returns the `skip` option for node:test: false when the
 * component is there; otherwise it prints ONE loud line naming what to install and returns the
 * reason (so `npm test` still passes for a newcomer), or throws in strict mode (CI=true or
 * CRM_STRICT=1), where a skip would hide untested behaviour.
 */
export const strict = process.env.CI === "true" || process.env.CRM_STRICT === "1";

const announced = new Set<string>();

export function need(component: string, available: boolean, install: string): string | false {
  if (available) return false;
  const reason = `SKIPPED: ${component} is not available here; install it with: ${install}`;
  if (strict) throw new Error(`${reason} (strict mode: CI=true or CRM_STRICT=1 forbids skips)`);
  if (!announced.has(component)) {
    announced.add(component);
    process.stderr.write(`\n*** ${reason} ***\n\n`);
  }
  return reason;
}

/**
 * Like need(), for checks that already say exactly what is missing: `problems` are lines such as
 * "python3-grpc-tools is not installed …; install it with: apt-get install -y python3-grpc-tools"
 * (undefined entries are ignored). False when there are none; else ONE loud line with all of them.
 */
export function needNone(...problems: (string | undefined)[]): string | false {
  const found = problems.filter((p): p is string => Boolean(p));
  if (found.length === 0) return false;
  const reason = `SKIPPED: ${found.join("; ")}`;
  if (strict) throw new Error(`${reason} (strict mode: CI=true or CRM_STRICT=1 forbids skips)`);
  if (!announced.has(reason)) {
    announced.add(reason);
    process.stderr.write(`\n*** ${reason} ***\n\n`);
  }
  return reason;
}

export * from "./services.js";
export * from "./app.js";
export * from "./in-memory.js";
export * from "./own-servers.js";
export * from "./tcp-proxy.js";
export * from "./rotation-load.js";
export * from "./until.js";
