/** Starts services as their own processes (`services/all/src/main.ts <target>`), as in the cluster. */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

const root = new URL("../../../", import.meta.url).pathname;

export interface ServiceProcess {
  url: string;
  child: ChildProcess;
  /** Everything it printed (for failure messages). */
  output: string[];
  stop(): Promise<void>;
}

/** Spawns `target` on a free port and resolves at its "ready" line (or rejects after `ms`). */
export function startService(target: string, env: Record<string, string>, ms = 60_000, nodeArgs: string[] = []): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [...nodeArgs, "--conditions=source", "--import", "tsx", "services/all/src/main.ts", target], {
    cwd: root,
    env: { PATH: process.env.PATH!, HOST: "127.0.0.1", PORT: "0", LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
      child.once("exit", () => (clearTimeout(t), resolve()));
      child.kill("SIGTERM");
    });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`${target} printed no ready line within ${ms} ms:\n${output.slice(-20).join("\n")}`));
    }, ms);
    createInterface({ input: child.stderr! }).on("line", (l) => output.push(l));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      output.push(line);
      // A service's `{"port":…,"msg":"ready"}`, or the all-in-one's `{"url":…,"msg":"ready: …"}`.
      const m = /"port":(\d+).*"msg":"ready"/.exec(line);
      const all = /"url":"(http:\/\/[^"]+)".*"msg":"ready/.exec(line);
      if (m || all) {
        clearTimeout(timer);
        resolve({ url: all ? all[1]! : `http://127.0.0.1:${m![1]}`, child, output, stop });
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${target} exited with ${code} before ready:\n${output.slice(-20).join("\n")}`));
    });
  });
}
