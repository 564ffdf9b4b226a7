/**
 * The image, built and run (issue 20, item 6): the Dockerfile builds on a base made here with
 * debootstrap (scripts/image-base.sh; public image registries do not answer on this machine), and
 * the image runs the way the chart runs it: read-only root filesystem, uid 1000, every capability
 * dropped, no privilege escalation, /data the only writable place. Then health, RegisterCompany
 * and gRPC health are called in it, and the runtime layer is checked for build-only tools.
 *
 * Needs Docker's engine (Debian: docker.io, with dockerd running) and debootstrap, as root.
 * Docker's own BuildKit is used through Debian's client (/usr/bin/docker): a newer client without
 * the buildx plugin refuses BuildKit builds.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus } from "@crm/gen/grpc/health/v1/health_pb";
import { needNone } from "@crm/testkit";
import { repo } from "./lib.ts";

const docker = existsSync("/usr/bin/docker") ? "/usr/bin/docker" : "docker";
const run = (cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}) =>
  execFileSync(cmd, args, { cwd: repo, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20, ...opts }).trim();

function engineProblem(): string | undefined {
  if (spawnSync(docker, ["info", "--format", "{{.ServerVersion}}"], { stdio: "ignore" }).status !== 0) {
    return "Docker's engine is not running; install and start it with: apt-get install -y docker.io && dockerd &";
  }
  if (spawnSync("debootstrap", ["--version"], { stdio: "ignore" }).status !== 0) {
    return "debootstrap is not installed; install it with: apt-get install -y debootstrap";
  }
  if (process.getuid?.() !== 0) return "building the base image with debootstrap needs root";
  return undefined;
}

const skip = needNone(engineProblem());
const tag = `crm-image-test:${process.pid}`;
const container = `crm-image-test-${process.pid}`;

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((ok) => srv.listen(0, "127.0.0.1", ok));
  const { port } = srv.address() as { port: number };
  await new Promise((ok) => srv.close(ok));
  return port;
}

describe("the image, built on a local base and run locked down", { skip }, () => {
  let base = "";
  let url = "";

  before(async () => {
    base = run("scripts/image-base.sh", []);
    const ca = process.env.NODE_EXTRA_CA_CERTS;
    const secret = ca && existsSync(ca) ? ["--secret", `id=ca,src=${ca}`] : [];
    run(docker, ["build", "--quiet", ...secret, "--build-arg", `NODE_IMAGE=${base}`, "--build-arg", "REVISION=test", "--build-arg", "SOURCE_URL=https://git.example.com/crm", "-t", tag, "."], {
      env: { ...process.env, DOCKER_BUILDKIT: "1" },
    });
    const port = await freePort();
    run(docker, [
      "run", "--detach", "--name", container,
      "--read-only", "--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
      "--tmpfs", "/data:uid=1000,gid=1000,mode=0700",
      "--publish", `127.0.0.1:${port}:8080`, tag,
    ]);
    url = `http://127.0.0.1:${port}`;
    // The ready line is the sync point: the all-in-one prints it once it serves.
    await new Promise<void>((ok, fail) => {
      const logs = spawn(docker, ["logs", "--follow", container], { stdio: ["ignore", "pipe", "pipe"] });
      let seen = "";
      const read = (chunk: Buffer) => {
        seen += chunk.toString();
        if (/"msg":"ready: CRM all-in-one/.test(seen)) { logs.kill(); ok(); }
      };
      logs.stdout.on("data", read);
      logs.stderr.on("data", read);
      logs.on("exit", () => fail(new Error(`the container stopped before it was ready:\n${seen}`)));
    });
  });

  after(() => {
    spawnSync(docker, ["rm", "--force", container], { stdio: "ignore" });
    spawnSync(docker, ["rmi", "--force", tag], { stdio: "ignore" });
  });

  it("answers health over HTTP", async () => {
    const res = await fetch(`${url}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: "ok" });
  });

  it("registers a company (its embedded database under the read-only root's /data)", async () => {
    const res = await fetch(`${url}/crm.auth.v1.AuthService/RegisterCompany`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ companyName: "Image Test", email: "owner@image.example", password: "correct horse battery staple", ownerName: "Owner" }),
    });
    const body = (await res.json()) as { companyId?: string; accessToken?: string };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.match(body.companyId ?? "", /^[0-9a-f-]{36}$/);
    assert.ok(body.accessToken);
  });

  it("answers gRPC health over h2c", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: url }));
    assert.equal((await health.check({})).status, HealthCheckResponse_ServingStatus.SERVING);
  });

  it("serves the web console", async () => {
    const res = await fetch(`${url}/`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /<div id="root">/);
  });

  it("gives the gateway its console: the chart's init container copy, run in the image as nginx's uid", () => {
    const template = readFileSync(join(repo, "charts/crm/templates/gateway.yaml"), "utf8");
    const command = JSON.parse(/name: console\n\s+image: .*\n(?:.*\n)*?\s+command: (\[.*\])/.exec(template)?.[1] ?? "null") as string[] | null;
    assert.ok(command, "the gateway template has the console init container's command");
    const web = mkdtempSync(join(tmpdir(), "crm-console-copy-"));
    try {
      chmodSync(web, 0o777); // an emptyDir is writable by the pod's fsGroup; here, by anyone
      run(docker, ["run", "--rm", "--user", "101:101", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "-v", `${web}:/run/crm-gw/web`, "--entrypoint", command[0]!, tag, ...command.slice(1)]);
      assert.match(readFileSync(join(web, "index.html"), "utf8"), /<div id="root">/);
      assert.ok(readdirSync(join(web, "assets")).some((f) => f.endsWith(".js")), "the hashed assets are copied too");
    } finally {
      rmSync(web, { recursive: true, force: true });
    }
  });

  it("runs as uid 1000 with OCI labels, and its runtime holds no build-only tools", () => {
    const config = JSON.parse(run(docker, ["image", "inspect", "--format", "{{json .Config}}", tag])) as { User: string; Labels: Record<string, string> };
    assert.equal(config.User, "1000:1000");
    assert.equal(config.Labels["org.opencontainers.image.revision"], "test");
    assert.equal(config.Labels["org.opencontainers.image.base.name"], base);
    assert.equal(config.Labels["org.opencontainers.image.source"], "https://git.example.com/crm");
    const present = run(docker, ["run", "--rm", "--entrypoint", "sh", tag, "-c",
      "cd /app/node_modules && for p in tsx esbuild typescript @bufbuild/buf playwright-core @swc/core dependency-cruiser; do [ -e \"$p\" ] && echo \"$p\"; done; true"]);
    assert.equal(present, "", `build-only packages in the runtime image: ${present}`);
  });
});
