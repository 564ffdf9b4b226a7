/**
 * Skip lines name exactly what is missing: a machine with python3-grpcio but without
 * python3-grpc-tools is told to install python3-grpc-tools, not python3-grpcio; nginx without its
 * njs module is told to install libnginx-mod-http-js. The modules are shadowed with stubs on
 * PYTHONPATH, so the result does not depend on what this machine has installed.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { needNone } from "@crm/testkit";
import { nginxProblem } from "../run.mjs";
import { python, pythonGrpcProblem } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "crm-skip-lines-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const hasPython = spawnSync(python, ["-c", "pass"], { stdio: "ignore" }).status === 0;
const skip = needNone(hasPython ? undefined : `${python} is missing; install with: apt-get install -y python3`);

function stubs(files: Record<string, string>): NodeJS.ProcessEnv {
  const root = mkdtempSync(join(dir, "py-"));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return { ...process.env, PYTHONPATH: root };
}
const importable = {
  "grpc/__init__.py": "",
  "grpc_tools/__init__.py": "",
  "grpc_tools/protoc.py": "",
  "google/__init__.py": "",
  "google/protobuf/__init__.py": "",
};

test("every module importable: no problem", { skip }, () => {
  assert.equal(pythonGrpcProblem({ env: stubs(importable) }), undefined);
});

test("grpcio present, grpc-tools missing: the line names python3-grpc-tools only", { skip }, () => {
  const problem = pythonGrpcProblem({ env: stubs({ ...importable, "grpc_tools/__init__.py": "raise ImportError('not installed')" }) });
  assert.equal(problem, `python3-grpc-tools is not installed (${python} cannot import grpc_tools.protoc); install with: apt-get install -y python3-grpc-tools`);
});

test("grpcio missing, grpc-tools present: the line names python3-grpcio only", { skip }, () => {
  const problem = pythonGrpcProblem({ env: stubs({ ...importable, "grpc/__init__.py": "raise ImportError('not installed')" }) });
  assert.equal(problem, `python3-grpcio is not installed (${python} cannot import grpc); install with: apt-get install -y python3-grpcio`);
});

test("nginx present without its njs module: the line names libnginx-mod-http-js only", () => {
  const saved = { bin: process.env.NGINX_BIN, njs: process.env.CRM_GW_NJS_MODULE };
  try {
    process.env.NGINX_BIN = process.execPath; // any existing file stands in for the binary
    process.env.CRM_GW_NJS_MODULE = join(dir, "no-such-module.so");
    assert.equal(nginxProblem(), `the nginx njs module (${join(dir, "no-such-module.so")}) is missing; install with: apt-get install -y libnginx-mod-http-js`);
    process.env.NGINX_BIN = join(dir, "no-such-nginx");
    assert.match(nginxProblem()!, /^the nginx binary and the nginx njs module .* are missing; install with: apt-get install -y nginx libnginx-mod-http-js$/);
  } finally {
    for (const [k, v] of [["NGINX_BIN", saved.bin], ["CRM_GW_NJS_MODULE", saved.njs]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});
