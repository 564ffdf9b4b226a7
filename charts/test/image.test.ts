/**
 * Dockerfile, .dockerignore, skaffold.yaml and kind-config.yaml checks (no Docker engine or
 * cluster here, so what hadolint and skaffold would catch is checked by reading the files).
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { readYaml, repo } from "./lib.ts";

interface Instr { cmd: string; args: string; line: number }

/** Dockerfile instructions with continuation lines joined and comments dropped. */
function parseDockerfile(text: string): Instr[] {
  const out: Instr[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    const start = i + 1;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      line = line.replace(/\\\s*$/, " ");
      i++;
      if (/^\s*#/.test(lines[i]!)) continue;
      line += lines[i]!;
    }
    const m = /^\s*(\w+)\s+([\s\S]*)$/.exec(line);
    if (m) out.push({ cmd: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
  }
  return out;
}

const dockerfile = readFileSync(join(repo, "Dockerfile"), "utf8");
const instrs = parseDockerfile(dockerfile);
const args = new Map(instrs.filter((x) => x.cmd === "ARG" && instrs.indexOf(x) < instrs.findIndex((y) => y.cmd === "FROM")).map((x) => x.args.split("=") as [string, string]));
const expand = (s: string) => s.replace(/\$\{?(\w+)\}?/g, (_, n) => args.get(n) ?? `\${${n}}`);
const stages: { from: string; name?: string; body: Instr[] }[] = [];
for (const x of instrs) {
  if (x.cmd === "FROM") {
    const [image, , name] = expand(x.args).split(/\s+/);
    stages.push({ from: image!, name, body: [] });
  } else stages.at(-1)?.body.push(x);
}
const final = stages.at(-1)!;

describe("Dockerfile", () => {
  it("is multi-stage and every base image is pinned Node LTS (no latest, no floating major)", () => {
    assert.ok(stages.length >= 2, "multi-stage");
    for (const s of stages) {
      if (stages.some((o) => o.name === s.from)) continue;
      const m = /^node:(\d+)\.(\d+)\.(\d+)-(bookworm|trixie)-slim(@sha256:[0-9a-f]{64})?$/.exec(s.from);
      assert.ok(m, `base image ${s.from} pinned to an exact version of a Debian slim variant`);
      assert.equal(Number(m![1]) % 2, 0, "an LTS (even) Node major");
      assert.ok(Number(m![1]) >= 22, "current LTS");
    }
  });

  it("the final stage runs as a non-root numeric user", () => {
    const users = final.body.filter((x) => x.cmd === "USER");
    assert.ok(users.length, "USER in the final stage");
    const user = users.at(-1)!.args;
    assert.match(user, /^\d+(:\d+)?$/, "numeric uid (Kubernetes' runAsNonRoot can verify it)");
    assert.notEqual(Number(user.split(":")[0]), 0);
    const last = final.body.findLastIndex((x) => x.cmd === "RUN" || x.cmd === "COPY");
    assert.ok(final.body.indexOf(users.at(-1)!) > last, "USER comes after the last RUN/COPY");
  });

  it("dependencies are their own layer: npm ci runs on the manifests before the code is copied", () => {
    const deps = stages.find((s) => s.body.some((x) => x.cmd === "RUN" && /npm ci\b/.test(x.args) && !/--omit=dev/.test(x.args)));
    assert.ok(deps, "a stage runs npm ci with every dependency");
    const copies = deps!.body.filter((x) => x.cmd === "COPY");
    assert.ok(copies.length > 0 && copies.every((c) => /--from=\S+/.test(c.args) && /manifests/.test(c.args)), `the deps stage copies only the manifests: ${copies.map((c) => c.args).join("; ")}`);
    const manifests = stages.find((s) => s.name === /--from=(\S+)/.exec(copies[0]!.args)![1]);
    assert.ok(manifests?.body.some((x) => x.cmd === "RUN" && /package-lock\.json/.test(x.args) && /-name package\.json/.test(x.args)), "the manifests stage keeps the root and workspace package.json files and the lockfile");
    const build = stages.find((s) => s.from === deps!.name);
    assert.ok(build, "the build stage starts from the deps stage");
    const copyAll = build!.body.findIndex((x) => x.cmd === "COPY" && /^\.\s+\.$/.test(x.args));
    const builds = build!.body.findIndex((x) => x.cmd === "RUN" && /npm run build/.test(x.args));
    assert.ok(copyAll >= 0 && builds > copyAll, "the build stage copies the code, then runs npm run build");
    assert.ok(!build!.body.some((x) => x.cmd === "RUN" && /npm (ci|install|i)\b/.test(x.args)), "the build stage installs nothing (the deps layer did)");
  });

  it("the final stage has production dependencies only", () => {
    for (const r of final.body.filter((x) => x.cmd === "RUN").map((x) => x.args)) assert.ok(!/npm (ci|install|i)\b/.test(r), "the final stage installs nothing itself");
    const froms = final.body.filter((x) => x.cmd === "COPY").map((x) => ({ args: x.args, from: /--from=(\S+)/.exec(x.args)?.[1] }));
    for (const c of froms) assert.ok(c.from, `everything in the final stage comes from a stage: ${c.args}`);
    const runtimeDeps = stages.find((s) => froms.some((c) => c.from === s.name && !/dist\/?\s/.test(c.args)));
    assert.ok(runtimeDeps, "a stage provides node_modules");
    const runs = runtimeDeps!.body.filter((x) => x.cmd === "RUN").map((x) => x.args);
    assert.ok(runs.some((r) => /npm ci\b[^&]*--omit=dev/.test(r)), "node_modules comes from npm ci --omit=dev");
    for (const r of runs) {
      assert.ok(!/npm (install|i)\b/.test(r), "no npm install (npm ci keeps the lockfile's versions)");
      for (const m of r.matchAll(/npm ci\b([^&;]*)/g)) assert.match(m[1]!, /--omit=dev/, "every npm ci of the runtime dependencies omits dev dependencies");
    }
    assert.ok(runtimeDeps!.body.every((x) => x.cmd !== "COPY" || /manifests/.test(x.args)), "the runtime dependencies are installed from the manifests alone");
    const build = stages.find((s) => s.body.some((x) => x.cmd === "RUN" && /npm run build/.test(x.args)))!;
    for (const c of froms.filter((c) => c.from === build.name)) {
      assert.ok(!/node_modules/.test(c.args), "node_modules is not copied from the build stage (it has dev dependencies)");
      assert.match(c.args, /dist\//, `only dist/ and web/dist/ come from the build stage: ${c.args}`);
    }
    const pkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8"));
    for (const tool of ["tsx", "esbuild", "typescript"]) assert.ok(!(tool in (pkg.dependencies ?? {})), `${tool} is a dev dependency (the image runs the bundle)`);
  });

  it("has OCI labels and takes its base as a build argument", () => {
    const labels = final.body.filter((x) => x.cmd === "LABEL").map((x) => x.args).join(" ");
    for (const l of ["title", "source", "version", "revision", "base.name"]) assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${l.replace(".", "\\.")}=`), `label org.opencontainers.image.${l}`);
    assert.ok(instrs.findIndex((x) => x.cmd === "ARG" && /^NODE_IMAGE=/.test(x.args)) < instrs.findIndex((x) => x.cmd === "FROM"), "ARG NODE_IMAGE before the first FROM");
    for (const s of stages.filter((s) => !stages.some((o) => o.name === s.from))) assert.equal(s.from, args.get("NODE_IMAGE"), "every base stage is FROM ${NODE_IMAGE}");
    assert.match(dockerfile, /@sha256:<digest>/, "the Dockerfile documents pinning the base by digest");
  });

  it("the start command runs the real entry point, in exec form, with a valid default target", () => {
    const entry = final.body.filter((x) => x.cmd === "ENTRYPOINT").at(-1);
    const cmd = final.body.filter((x) => x.cmd === "CMD").at(-1);
    assert.ok(entry, "ENTRYPOINT");
    const e = JSON.parse(entry!.args) as string[];
    assert.equal(e[0], "node", "exec form, node is PID 1 and receives SIGTERM");
    assert.ok(e.includes("dist/crm.mjs"));
    const c = JSON.parse(cmd!.args) as string[];
    const main = readFileSync(join(repo, "services/all/src/main.ts"), "utf8");
    assert.equal(c.length, 1);
    assert.ok(c[0] === "all" || main.includes(`${c[0]}:`), `default target ${c[0]} exists`);
    // the entry point is what the build produces
    const build = readFileSync(join(repo, "scripts/build.mjs"), "utf8");
    assert.match(build, /outfile:\s*"dist\/crm\.mjs"/);
    const pkg = JSON.parse(readFileSync(join(repo, "package.json"), "utf8"));
    assert.match(pkg.scripts.build, /scripts\/build\.mjs/);
    assert.ok(stages.slice(0, -1).some((s) => s.body.some((x) => x.cmd === "RUN" && /npm run build/.test(x.args))), "a build stage runs npm run build");
    const workdir = final.body.filter((x) => x.cmd === "WORKDIR").at(-1)!.args;
    assert.ok(final.body.some((x) => x.cmd === "COPY" && x.args.includes("dist/") && x.args.endsWith("./dist/")), `dist/ copied into ${workdir}`);
  });

  it("is read-only-root friendly: writes only under DATA_DIR, which exists and belongs to the user", () => {
    const env = final.body.filter((x) => x.cmd === "ENV").map((x) => x.args).join(" ");
    const dataDir = /DATA_DIR=(\S+)/.exec(env)?.[1];
    assert.ok(dataDir, "DATA_DIR set");
    assert.ok(final.body.some((x) => x.cmd === "RUN" && x.args.includes(`mkdir -p ${dataDir}`) && x.args.includes(`chown 1000:1000 ${dataDir}`)));
    assert.match(env, /HOST=0\.0\.0\.0/, "all-in-one listens beyond loopback in a container");
    assert.ok(!/\bPORT=/.test(env.replace(/OPS_PORT/g, "")), "no PORT in the image: each service defaults to its own port");
    assert.ok(!final.body.some((x) => x.cmd === "VOLUME"), "no anonymous VOLUME");
  });

  it(".dockerignore keeps the context small and free of local state", () => {
    const ignore = readFileSync(join(repo, ".dockerignore"), "utf8").split("\n").map((l) => l.trim());
    for (const p of ["**/node_modules", ".git", "dist", "/data"]) assert.ok(ignore.includes(p), `.dockerignore has ${p}`);
    for (const needed of ["package.json", "package-lock.json", "services", "packages", "proto", "scripts"]) assert.ok(!ignore.includes(needed), `${needed} is needed by the build`);
  });
});

describe("skaffold.yaml and kind-config.yaml", () => {
  const sk = readYaml("skaffold.yaml");
  const kind = readYaml("kind-config.yaml");

  it("builds ONE image and hands it to the chart", () => {
    assert.match(sk.apiVersion, /^skaffold\/v4beta\d+$/);
    assert.equal(sk.build.artifacts.length, 1);
    const image = sk.build.artifacts[0].image;
    assert.equal(sk.build.artifacts[0].docker.dockerfile, "Dockerfile");
    const crm = sk.deploy.helm.releases.find((r: any) => r.chartPath === "charts/crm");
    assert.ok(crm, "a helm release of charts/crm");
    assert.equal(crm.setValueTemplates["image.repository"], `{{.IMAGE_REPO_${image}}}`);
    assert.match(crm.setValueTemplates["image.tag"], new RegExp(`^\\{\\{\\.IMAGE_TAG_${image}\\}\\}`));
    assert.equal(crm.setValueTemplates["image.registry"], "");
    for (const f of crm.valuesFiles) assert.ok(existsSync(join(repo, f)), `${f} exists`);
    for (const hook of sk.deploy.helm.hooks?.before ?? []) assert.ok(existsSync(join(repo, hook.host.command[1])), "hook script exists");
  });

  it("profiles allInOne and dev patch paths that exist", () => {
    const names = sk.profiles.map((p: any) => p.name);
    assert.deepEqual(names.sort(), ["allInOne", "dev"]);
    const crmIndex = sk.deploy.helm.releases.findIndex((r: any) => r.chartPath === "charts/crm");
    for (const p of sk.profiles) {
      for (const patch of p.patches) {
        const m = /^\/deploy\/helm\/releases\/(\d+)\/(\w+)/.exec(patch.path);
        if (m) {
          assert.equal(Number(m[1]), crmIndex, `${p.name} patches the crm release`);
          assert.ok(m[2]! in sk.deploy.helm.releases[crmIndex], `${p.name}: ${patch.path} exists`);
          if (m[2] === "valuesFiles") for (const f of [patch.value].flat()) assert.ok(existsSync(join(repo, f)), `${f} exists`);
        }
      }
    }
    const dev = sk.profiles.find((p: any) => p.name === "dev");
    assert.deepEqual(dev.activation, [{ command: "dev" }]);
  });

  it("kind maps host ports 443 and 80 to the nodePorts of the gateway and of all-in-one", () => {
    assert.equal(kind.kind, "Cluster");
    assert.equal(kind.apiVersion, "kind.x-k8s.io/v1alpha4");
    const maps = kind.nodes.flatMap((n: any) => n.extraPortMappings ?? []);
    const host = (port: number) => maps.find((m: any) => m.hostPort === port)?.containerPort;
    const values = readYaml("charts/crm/ci/kind-values.yaml");
    assert.equal(values.gateway.service.type, "NodePort");
    assert.equal(host(443), values.gateway.service.nodePorts.https);
    assert.equal(host(80), values.gateway.service.nodePorts.http);
    const aio = readYaml("charts/crm/ci/kind-allinone-values.yaml");
    assert.equal(aio.allInOne.service.type, "NodePort");
    assert.equal(host(80), aio.allInOne.service.nodePort);
    for (const m of maps) assert.ok(m.containerPort >= 30000 && m.containerPort <= 32767, "nodePort range");
  });
});
