/**
 * `.ci/run` runs on machines where other people's servers run too: it must never stop a process
 * it did not start (no kill by name, no service/systemctl stop), and it must stay valid bash.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const script = new URL("../../.ci/run", import.meta.url).pathname;
const code = readFileSync(script, "utf8")
  .split("\n")
  .filter((line) => !/^\s*#/.test(line))
  .join("\n");

test(".ci/run stops nothing by name", () => {
  for (const [what, re] of [
    ["pkill / killall", /\b(pkill|killall)\b/],
    ["service … stop", /\bservice\s+\S+\s+(stop|restart)\b/],
    ["systemctl stop", /\bsystemctl\s+(stop|restart|kill)\b/],
    ["pg_ctl… stop", /\bpg_ctl(cluster)?\b[^\n]*\bstop\b/],
    ["redis-cli shutdown", /\bredis-cli\b[^\n]*\bshutdown\b/i],
    ["rabbitmqctl stop", /\brabbitmqctl\s+(stop|shutdown|stop_app)\b/],
    ["kill of a process it did not start", /\bkill\s+(-\S+\s+)*(?!\$)\S/],
  ] as const) {
    assert.doesNotMatch(code, re, `.ci/run uses ${what}`);
  }
});

test(".ci/run keeps its apt-get install from starting system servers, without replacing the machine's own policy", () => {
  assert.match(code, /if \[ ! -e "\$policy" \]; then/);
  assert.match(code, /exit 101/);
  assert.match(code, /if \[ -n "\$own_policy" \]; then rm -f "\$policy"/);
});

test(".ci/run is valid bash and still starts the backing servers when they are down", () => {
  assert.equal(spawnSync("bash", ["-n", script]).status, 0);
  assert.match(code, /pg_ctlcluster [^\n]* start/);
  assert.match(code, /redis-server --daemonize yes/);
  assert.match(code, /rabbitmq-server -detached/);
});
