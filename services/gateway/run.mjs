/**
 * Runs the gateway (nginx in the foreground) for scripts/cluster.mjs and the tests.
 *
 *   const problem = nginxProblem();             // undefined, or ONE line naming the apt packages
 *   const gw = await startNginx({ dir, vars }); // renders DIR/nginx.conf, starts, waits for the port
 *   await gw.stop();
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { renderGateway, templateDefaults } from "./render.mjs";

export const nginxPackages = "nginx libnginx-mod-http-js";

/** Path of the nginx binary, or undefined. */
export function nginxBinary() {
  if (process.env.NGINX_BIN) return existsSync(process.env.NGINX_BIN) ? process.env.NGINX_BIN : undefined;
  for (const p of ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]) {
    if (existsSync(p)) return p;
  }
  const which = spawnSync("sh", ["-c", "command -v nginx"], { encoding: "utf8" });
  return which.status === 0 && which.stdout.trim() ? which.stdout.trim() : undefined;
}

export function njsModulePath() {
  return process.env.CRM_GW_NJS_MODULE ?? templateDefaults.CRM_GW_NJS_MODULE;
}

/** undefined when nginx and its njs module are installed, else one line saying what to install. */
export function nginxProblem() {
  const missing = [];
  if (!nginxBinary()) missing.push(["nginx", "the nginx binary"]);
  if (!existsSync(njsModulePath())) missing.push(["libnginx-mod-http-js", `the nginx njs module (${njsModulePath()})`]);
  if (missing.length === 0) return undefined;
  return `${missing.map(([, what]) => what).join(" and ")} ${missing.length === 1 ? "is" : "are"} missing; install with: apt-get install -y ${missing.map(([pkg]) => pkg).join(" ")}`;
}

/** Resolves when host:port accepts a TCP connection; rejects when `alive()` turns false or time is up. */
export function waitForPort(port, { host = "127.0.0.1", timeoutMs = 15_000, alive = () => true } = {}) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (!alive()) return reject(new Error(`process exited before ${host}:${port} accepted connections`));
      const sock = net.connect({ host, port });
      sock.once("connect", () => {
        sock.destroy();
        resolve();
      });
      sock.once("error", () => {
        sock.destroy();
        if (Date.now() > deadline) return reject(new Error(`${host}:${port} did not accept connections within ${timeoutMs} ms`));
        setTimeout(attempt, 25);
      });
    };
    attempt();
  });
}

function portOf(listen) {
  const m = /(\d+)$/.exec(String(listen));
  return m ? Number(m[1]) : 443;
}

/**
 * Renders the configuration into `dir` and starts nginx in the foreground (daemon off). Resolves
 * once the HTTPS and HTTP ports accept connections. `onLine` gets nginx's stderr lines (errors,
 * njs exceptions). stop() ends it (SIGQUIT = graceful, then SIGKILL after `graceMs`).
 */
export async function startNginx({ dir, vars, onLine, timeoutMs = 15_000, patch }) {
  const problem = nginxProblem();
  if (problem) throw new Error(problem);
  const conf = renderGateway({ dir, vars });
  // benchmarks only: e.g. turn the JWT cache off to measure an uncached check
  if (patch) writeFileSync(conf, patch(readFileSync(conf, "utf8")));
  const bin = nginxBinary();
  const globals = ["daemon off;", "master_process on;"];
  // Workers must reach the runtime folder (often a 0700 temp dir); as root, keep them root in dev.
  if (process.getuid?.() === 0) globals.push("user root root;");
  const test = spawnSync(bin, ["-t", "-q", "-p", `${dir}/`, "-c", conf, "-e", "stderr", "-g", globals.join(" ")], { encoding: "utf8" });
  if (test.status !== 0) {
    const lines = test.stderr.trim().split("\n").filter(Boolean);
    throw new Error(`gateway: nginx rejected ${conf}: ${lines.find((l) => /\[emerg\]/.test(l)) ?? lines.pop()}`);
  }
  const child = spawn(bin, ["-p", `${dir}/`, "-c", conf, "-e", "stderr", "-g", globals.join(" ")], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const lines = [];
  let exited = false;
  let exitCode = null;
  const exitPromise = new Promise((resolve) =>
    child.once("exit", (code, signal) => {
      exited = true;
      exitCode = code ?? signal;
      resolve(exitCode);
    }),
  );
  let buf = "";
  const onData = (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      if (lines.length > 200) lines.shift();
      onLine?.(line);
    }
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);

  // if this process dies without stop(), do not leave nginx behind (it runs in its own group)
  const killOnExit = () => {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      /* gone */
    }
  };
  process.once("exit", killOnExit);
  void exitPromise.then(() => process.off("exit", killOnExit));
  const https = portOf(vars.CRM_GW_HTTPS_LISTEN ?? templateDefaults.CRM_GW_HTTPS_LISTEN);
  const http = portOf(vars.CRM_GW_HTTP_LISTEN ?? templateDefaults.CRM_GW_HTTP_LISTEN);
  const stop = async (graceMs = 5_000) => {
    if (exited) return exitCode;
    try {
      process.kill(-child.pid, "SIGQUIT");
    } catch {
      /* already gone */
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }, graceMs);
    await exitPromise;
    clearTimeout(timer);
    return exitCode;
  };
  try {
    await waitForPort(https, { timeoutMs, alive: () => !exited });
    await waitForPort(http, { timeoutMs, alive: () => !exited });
  } catch (err) {
    await stop(1000);
    throw new Error(`gateway: nginx did not start (${err.message}): ${lines.slice(-3).join(" | ")}`);
  }
  return {
    pid: child.pid,
    conf,
    dir,
    httpsPort: https,
    httpPort: http,
    lines,
    exited: exitPromise,
    get running() {
      return !exited;
    },
    /** Re-renders and reloads (SIGHUP) without dropping connections. */
    reload(newVars = vars) {
      renderGateway({ dir, vars: newVars });
      process.kill(child.pid, "SIGHUP");
    },
    stop,
  };
}
