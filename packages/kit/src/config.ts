/**
 * Configuration from the environment, validated once at start.
 * A bad or missing value stops the process with ONE line naming the variable and what it expects.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";

export class ConfigError extends Error {
  override name = "ConfigError";
}

export function loadConfig<S extends z.ZodObject>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const name = String(issue.path[0] ?? "?");
  const got = env[name] === undefined ? "it is not set" : `got ${JSON.stringify(redact(env[name]!, name))}`;
  throw new ConfigError(`config: ${name} ${issue.message} (${got})`);
}

/**
 * A setting's value as it may be printed: the password of a URL (user:password@host) becomes
 * "****", and so does the whole value of a variable whose name says it is a secret.
 */
export function redact(value: string, variable = ""): string {
  if (/PASSWORD|SECRET|TOKEN|PASSPHRASE/i.test(variable)) return "****";
  const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(.*)$/is.exec(value);
  if (!m) return value;
  const [, scheme, authority, rest] = m as unknown as [string, string, string, string];
  const at = authority.lastIndexOf("@");
  const colon = authority.indexOf(":");
  if (at < 0 || colon < 0 || colon > at) return value;
  return `${scheme}${authority.slice(0, colon)}:****${authority.slice(at)}${rest}`;
}

/** Blank values count as unset, so `FOO=` in a .env file means "use the default". */
const blankToUndefined = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);

export const env = {
  port: (def: number) =>
    z.preprocess(blankToUndefined, z.coerce.number({ error: "must be a TCP port (0-65535; 0 picks a free one)" }).int().min(0, "must be a TCP port (0-65535; 0 picks a free one)").max(65535, "must be a TCP port (0-65535; 0 picks a free one)").default(def)),
  int: (def: number, min: number, max: number) =>
    z.preprocess(blankToUndefined, z.coerce.number({ error: `must be an integer ${min}..${max}` }).int(`must be an integer ${min}..${max}`).min(min, `must be an integer ${min}..${max}`).max(max, `must be an integer ${min}..${max}`).default(def)),
  str: (def: string) => z.preprocess(blankToUndefined, z.string().default(def)),
  optionalStr: () => z.preprocess(blankToUndefined, z.string().optional()),
  url: (protocols: string[]) =>
    z.preprocess(
      blankToUndefined,
      z
        .string()
        .refine((v) => {
          try {
            return protocols.includes(new URL(v).protocol.replace(/:$/, ""));
          } catch {
            return false;
          }
        }, `must be a URL starting with ${protocols.map((p) => `${p}://`).join(" or ")}`)
        .optional(),
    ),
  oneOf: <T extends string>(values: readonly [T, ...T[]], def: T) =>
    z.preprocess(blankToUndefined, z.enum(values, { error: `must be one of ${values.join(", ")}` }).default(def)),
  bool: (def: boolean) =>
    z.preprocess(
      blankToUndefined,
      z.enum(["true", "false", "1", "0", "yes", "no"], { error: "must be true or false" }).default(def ? "true" : "false").transform((v) => ["true", "1", "yes"].includes(v)),
    ),
  file: () =>
    z.preprocess(
      blankToUndefined,
      z
        .string()
        .refine((p) => {
          try {
            readFileSync(p);
            return true;
          } catch {
            return false;
          }
        }, "must name a readable file")
        .optional(),
    ),
};

/** Settings every service reads. */
export const commonEnv = {
  HOST: env.str("0.0.0.0"),
  // Like PORT, 0 picks a free port (the ready line names it: opsPort).
  OPS_PORT: z.preprocess(blankToUndefined, z.coerce.number({ error: "must be a TCP port (0-65535; 0 picks a free one)" }).int().min(0, "must be a TCP port (0-65535; 0 picks a free one)").max(65535, "must be a TCP port (0-65535; 0 picks a free one)").optional()),
  LOG_LEVEL: env.oneOf(["trace", "debug", "info", "warn", "error", "fatal", "silent"], "info"),
  TLS_CERT_FILE: env.file(),
  TLS_KEY_FILE: env.file(),
  TLS_CA_FILE: env.file(),
  TLS_CLIENT_AUTH: env.oneOf(["require", "optional", "off"], "require"),
  // certificate names (CN) taken as calling services' identities; unset: the architecture's callers (service-identities.ts)
  TLS_PEER_SERVICES: z.preprocess(
    blankToUndefined,
    z.string().regex(/^\s*[a-z0-9][a-z0-9.-]{0,62}\s*(,\s*[a-z0-9][a-z0-9.-]{0,62}\s*)*$/, "must be a comma-separated list of certificate names (the CN of each calling service's certificate), e.g. gateway,auth").optional(),
  ),
  JWT_ISSUER: env.str("crm-auth"),
  JWT_AUDIENCE: env.str("crm-api"),
  JWT_PUBLIC_KEYS_FILE: env.file(),
  // how often the TLS files and the JWKS are read again, so renewed ones are taken without a restart (reload.ts); 0 = never
  CREDENTIAL_RELOAD_INTERVAL_MS: env.int(10_000, 0, 3_600_000),
  REDIS_URL: env.url(["redis", "rediss"]),
  AMQP_URL: env.url(["amqp", "amqps"]),
  SHUTDOWN_TIMEOUT_MS: env.int(25_000, 0, 600_000),
  READ_MAX_BYTES: env.int(4 * 1024 * 1024, 1024, 64 * 1024 * 1024),
  // on: unary calls and HTTP/2 server streams take the kit's fast path (@crm/fastpath), and peers
  // call each other with its gRPC client; off: every call is served and sent by plain connect-node
  RPC_FAST_PATH: env.oneOf(["on", "off"], "on"),
};

/**
 * RPC_FAST_PATH of `environment` as a switch: true unless it says "off". A value that is neither
 * "on" nor "off" is a ConfigError naming the variable, as for every other setting.
 */
export function fastPathEnabled(environment: NodeJS.ProcessEnv = process.env): boolean {
  return loadConfig(z.object({ RPC_FAST_PATH: commonEnv.RPC_FAST_PATH }), environment).RPC_FAST_PATH === "on";
}
