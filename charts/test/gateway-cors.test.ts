/**
 * gateway.corsOrigins (issue 20 item 5): the chart hands the list to the gateway as
 * CRM_GW_CORS_ORIGINS, the image's envsubst puts it into nginx.conf ($crm_cors_origins), and the
 * shipped njs/cors.js splits it on spaces and commas and allows exactly those origins
 * (services/gateway/test/cors.test.ts runs the same code in nginx). values.schema.json refuses
 * entries that could never equal a browser's Origin header or would break out of the nginx string.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Ajv } from "ajv";
import { needNone } from "@crm/testkit";
import { chartDir, gatewayEnvsubst, gatewayParts, goProblem, render } from "./lib.ts";

const skip = needNone(goProblem());
const JWT = { jwt: { existingSecret: "crm-jwt" } };
const ORIGINS = ["https://app.example.com", "http://localhost:5173", "https://console.example.org:8443"];

interface Cors {
  origin(r: unknown): string;
  preflight(r: unknown): string;
  vary(r: unknown): string;
}

/** The gateway as the chart renders it: the CORS env value, nginx's value after envsubst, and the shipped cors.js. */
async function gateway(values: Record<string, unknown>) {
  const { nginx, configMap: cm, template } = gatewayParts(render([], { values: { ...JWT, ...values } }));
  const env = new Map<string, string>(nginx.env.filter((e: any) => e.value !== undefined).map((e: any) => [e.name, String(e.value)]));
  assert.ok(env.has("CRM_GW_CORS_ORIGINS"), "CRM_GW_CORS_ORIGINS is always set (an unset one stays ${…} in nginx.conf)");
  const conf = gatewayEnvsubst(template, nginx);
  const sets = [...conf.matchAll(/^\s*set \$crm_cors_origins "([^"\n]*)";$/gm)].map((m) => m[1]!);
  assert.equal(sets.length, 1, "nginx.conf sets $crm_cors_origins once, as one quoted string");
  const js = cm.data!["njs.cors.js"];
  assert.ok(js, "the ConfigMap ships njs/cors.js");
  const cors = (await import(`data:text/javascript;base64,${Buffer.from(js).toString("base64")}`)).default as Cors;
  return { env: env.get("CRM_GW_CORS_ORIGINS")!, nginxValue: sets[0]!, cors };
}

/** An njs request as cors.js sees it. */
const req = (nginxValue: string, origin: string | undefined, method = "POST", preflight = false) => ({
  method,
  variables: { crm_cors_origins: nginxValue },
  headersIn: { ...(origin === undefined ? {} : { Origin: origin }), ...(preflight ? { "Access-Control-Request-Method": "POST" } : {}) },
});

describe("gateway.corsOrigins → CRM_GW_CORS_ORIGINS", { skip }, () => {
  it("none by default: an empty value, and cors.js allows no origin and sends no Vary", async () => {
    const { env, nginxValue, cors } = await gateway({});
    assert.equal(env, "");
    assert.equal(nginxValue, "");
    for (const o of [...ORIGINS, "null", undefined]) assert.equal(cors.origin(req(nginxValue, o)), "", String(o));
    assert.equal(cors.preflight(req(nginxValue, ORIGINS[0], "OPTIONS", true)), "");
    assert.equal(cors.vary(req(nginxValue, ORIGINS[0])), "");
  });

  it("the configured origins reach cors.js as exactly that list: each is allowed, nothing else is", async () => {
    const { env, nginxValue, cors } = await gateway({ gateway: { corsOrigins: ORIGINS } });
    assert.equal(env, ORIGINS.join(" "));
    assert.equal(nginxValue, env, "envsubst puts the value into nginx.conf unchanged");
    assert.deepEqual(nginxValue.split(/[\s,]+/).filter(Boolean), ORIGINS, "the split of njs/cors.js gives back the list");
    for (const o of ORIGINS) {
      assert.equal(cors.origin(req(nginxValue, o)), o, o);
      assert.equal(cors.preflight(req(nginxValue, o, "OPTIONS", true)), "1", `${o} preflight`);
    }
    assert.equal(cors.vary(req(nginxValue, ORIGINS[0])), "Origin");
    for (const o of ["https://evil.example.com", "https://app.example.com.evil.example", "http://app.example.com", "https://app.example.com:443", "http://localhost:5174", ORIGINS.join(" "), "null"]) {
      assert.equal(cors.origin(req(nginxValue, o)), "", `${o} is not listed`);
    }
    assert.equal(cors.preflight(req(nginxValue, ORIGINS[0], "POST", true)), "", "only OPTIONS is a preflight");
    assert.equal(cors.preflight(req(nginxValue, ORIGINS[0], "OPTIONS", false)), "", "OPTIONS without Access-Control-Request-Method is no preflight");
  });

  it("values.schema.json takes scheme://host[:port] origins and refuses anything else", () => {
    const validate = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(JSON.parse(readFileSync(join(chartDir, "values.schema.json"), "utf8")));
    const ok = (corsOrigins: unknown) => validate({ gateway: { corsOrigins } });
    assert.ok(ok([]), JSON.stringify(validate.errors));
    assert.ok(ok(ORIGINS), JSON.stringify(validate.errors));
    for (const bad of [
      "https://app.example.com", // one string, not a list
      ["*"], // CORS with credentials never allows *
      ["app.example.com"], // no scheme: never equals an Origin header
      ["https://app.example.com/"], // an Origin has no path, not even /
      ["https://app.example.com/app"],
      ["ftp://app.example.com"],
      ["https://app.example.com https://b.example.com"], // two origins in one entry
      ['https://app.example.com"; return 200 "x'], // would end nginx's quoted string
      ["https://app.example.com;"],
      ["https://$host"], // nginx would read a variable
      ["https://app.example.com:port"],
      [""],
      [42],
    ]) {
      assert.equal(ok(bad), false, JSON.stringify(bad));
    }
  });
});
