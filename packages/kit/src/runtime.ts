/**
 * Process wiring shared by every service's main.ts in a cluster: config, logger, TLS, token
 * verifier, revocation list, peers; start the server, print "ready", drain on SIGTERM/SIGINT.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import type { Redis } from "ioredis";
import type { JSONWebKeySet } from "jose";
import { z } from "zod";
import { createTokenVerifier, type TokenVerifier } from "./auth.js";
import { createSecureContext } from "node:tls";
import { ConfigError, commonEnv, env, loadConfig } from "./config.js";
import { describeFailure, listenError } from "./startup.js";
import { addressOf, deadlines, dependencyAt, type Deadlines } from "./dependencies.js";
import { createLogger, reportLevels, type Logger } from "./logger.js";
import { networkPeer, type PeerTls } from "./peers.js";
import { reloadingTransport, watchFiles, watchJwks, type Reloading, type WatchOptions } from "./reload.js";
import { memoryRevocations, redisRevocations, type Revocations } from "./revocations.js";
import { startServer, type RunningServer, type ServiceModule, type TlsOptions } from "./server.js";
import { serviceIdentities } from "./service-identities.js";
import { reflectionService, servicePorts, type ServiceName } from "./service-names.js";
import { LogsService } from "@crm/gen/crm/logs/v1/logs_pb";
import { ApiKeyService } from "@crm/gen/crm/auth/v1/api_keys_pb";
import { apiKeyExchange } from "./api-key-exchange.js";
import { createErrorReporter, logsServiceSender, setErrorSink } from "./error-reports.js";
import { startTelemetry, telemetry } from "./telemetry.js";

export { servicePorts, type ServiceName } from "./service-names.js";

export interface Basics {
  name: ServiceName;
  env: NodeJS.ProcessEnv;
  log: Logger;
  verifier: TokenVerifier;
  revocations: Revocations;
  redis?: Redis | undefined;
  /** A typed client of another service, over mTLS with this service's certificate. */
  peer<S extends DescService>(service: ServiceName, desc: S): Client<S>;
  /** Things to close after the server drained (in order). */
  onClose(fn: () => Promise<unknown>): void;
}

/**
 * Runs `fn` (a process's start-up): a failure is ONE line on stderr and exit code 1, never a stack.
 * A ConfigError already names the setting and what to do; anything else is described as it is
 * (LOG_LEVEL=debug adds the stack, for a bug report).
 */
export async function main(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
    else {
      process.stderr.write(`start failed: ${describeFailure(err)} (LOG_LEVEL=debug shows where)\n`);
      if (/^(debug|trace)$/.test(process.env.LOG_LEVEL ?? "")) process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
    }
    process.exit(1);
  }
}

export function readJwks(file: string): JSONWebKeySet {
  let jwks: JSONWebKeySet;
  try {
    jwks = JSON.parse(readFileSync(file, "utf8")) as JSONWebKeySet;
  } catch (err) {
    throw new ConfigError(`config: JWT_PUBLIC_KEYS_FILE=${file}: not a readable JSON file (${describeFailure(err)}); point it at the JWKS with the public keys ({"keys":[...]})`);
  }
  if (!Array.isArray(jwks?.keys) || jwks.keys.length === 0) throw new ConfigError(`config: JWT_PUBLIC_KEYS_FILE ${file} holds no keys (expected a JWKS: {"keys":[...]})`);
  return jwks;
}

/**
 * A Redis client that never queues or waits past its deadline: no offline queue (a command while
 * disconnected fails at once), REDIS_COMMAND_TIMEOUT_MS per command (a frozen server fails the
 * call instead of hanging it), one retry; it reconnects by itself.
 */
export function redisClient(url: string, log: Logger, d: Pick<Deadlines, "REDIS_COMMAND_TIMEOUT_MS" | "REDIS_CONNECT_TIMEOUT_MS"> = deadlines()): Redis {
  // Loaded by the first client: a process without REDIS_URL (the all-in-one's default) never loads it.
  const { Redis: IORedis } = createRequire(import.meta.url)("ioredis") as typeof import("ioredis");
  const redis = new IORedis(url, {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: d.REDIS_CONNECT_TIMEOUT_MS,
    commandTimeout: d.REDIS_COMMAND_TIMEOUT_MS,
    lazyConnect: false,
    enableAutoPipelining: true,
  });
  dependencyAt("Redis", addressOf(url));
  redis.on("error", (err) => log.warn({ err: err.message }, "redis error"));
  return redis;
}

/**
 * Starts one service as its own process (cluster/Kubernetes mode).
 * `build` receives the basics and returns the service's module.
 */
export function runService(name: ServiceName, build: (b: Basics) => Promise<ServiceModule>): Promise<void> {
  return main(async () => {
    const cfg = loadConfig(z.object({ ...commonEnv, PORT: env.port(servicePorts[name]) }));
    await startTelemetry(name); // a no-op when the entry point started it already, or with no exporter to run (no OTLP endpoint, no console)
    // LOGS_REPORT_LEVEL: the lines sent to the logs service (and Loki) besides errors, once the sink runs (below).
    const { LOGS_REPORT_LEVEL } = loadConfig(z.object({ LOGS_REPORT_LEVEL: env.oneOf(reportLevels, "error") }));
    const log = createLogger(name, cfg.LOG_LEVEL, { reportLevel: LOGS_REPORT_LEVEL });
    // Renewed certificates and a rotated JWKS are taken without a restart (reload.ts).
    const reload = { intervalMs: cfg.CREDENTIAL_RELOAD_INTERVAL_MS, log };
    const tlsFiles = watchTls(cfg, name, reload);
    if (!cfg.JWT_PUBLIC_KEYS_FILE) throw new ConfigError("config: JWT_PUBLIC_KEYS_FILE must name the JWKS file with the public keys that verify access tokens (it is not set)");
    const redis = cfg.REDIS_URL ? redisClient(cfg.REDIS_URL, log) : undefined;
    if (!redis) log.warn("REDIS_URL is not set: revocations are kept in memory, so a logout reaches only this process");
    const revocations: Revocations = redis ? redisRevocations(redis, { log }) : memoryRevocations();
    const jwks = watchJwks(cfg.JWT_PUBLIC_KEYS_FILE, readJwks, reload);
    // API keys sent straight to this service are exchanged with auth (the gateway exchanges the ones it sees itself).
    let basics: Basics | undefined;
    const apiKeys = apiKeyExchange(() => basics!.peer("auth", ApiKeyService));
    const verifier = createTokenVerifier({ jwks: jwks.current, issuer: cfg.JWT_ISSUER, audience: cfg.JWT_AUDIENCE, revocations, apiKeys });
    const closers: (() => Promise<unknown>)[] = [async () => (tlsFiles?.close(), jwks.close())];
    const transports = new Map<string, Transport>();
    const peerTls = (): PeerTls | undefined => {
      const tls = tlsFiles?.current();
      return tls?.ca ? { cert: tls.cert, key: tls.key, ca: tls.ca } : undefined;
    };
    basics = {
      name,
      env: process.env,
      log,
      verifier,
      revocations,
      redis,
      peer(service, desc) {
        let t = transports.get(service);
        if (!t) {
          const variable = `${service.toUpperCase()}_URL`;
          const url = loadConfig(z.object({ [variable]: env.url(["http", "https"]) }))[variable] ?? `${peerTls() ? "https" : "http"}://${service}:${servicePorts[service]}`;
          // a renewed certificate: new calls go through a transport that dials with it
          t = reloadingTransport(() => networkPeer(name, url as string, peerTls(), { fastPath: cfg.RPC_FAST_PATH === "on", readMaxBytes: cfg.READ_MAX_BYTES }), tlsFiles);
          transports.set(service, t);
        }
        return createClient(desc, t);
      },
      onClose: (fn) => void closers.push(fn),
    };
    const module = await build(basics);
    const server = await startServer({
      modules: [module],
      port: cfg.PORT,
      host: cfg.HOST,
      opsPort: cfg.OPS_PORT,
      log,
      verifier,
      revocations,
      tls: tlsFiles?.current(),
      readMaxBytes: cfg.READ_MAX_BYTES,
      shutdownTimeoutMs: cfg.SHUTDOWN_TIMEOUT_MS,
      fastPath: cfg.RPC_FAST_PATH === "on",
      // auth describes the whole API for the gateway's reflection route; only auth loads every public proto
      reflect: name === reflectionService ? (await import("./public-api.js")).reflectedBy(name) : undefined,
    }).catch((err: unknown) => {
      throw listenError(err, cfg);
    });
    tlsFiles?.onChange((next) => server.setTls(next)); // new connections get the new certificate
    closers.push(async () => revocations.close?.()); // its subscriber connection, before the client it duplicates
    closers.push(async () => redis?.quit());
    // Errors (and the lines of LOGS_REPORT_LEVEL) go to the logs service in the background (the logs service ships its own).
    if (name !== "logs" && loadConfig(z.object({ LOGS_REPORT_ERRORS: env.bool(true) })).LOGS_REPORT_ERRORS) {
      const reporter = createErrorReporter({ send: logsServiceSender(basics.peer("logs", LogsService)), log });
      setErrorSink(reporter.report);
      closers.unshift(() => reporter.close());
    }
    onSignals(log, server, closers);
    log.info({ port: server.port, opsPort: server.opsPort, tls: Boolean(tlsFiles) }, "ready");
  });
}

export function loadTls(
  cfg: { TLS_CERT_FILE?: string | undefined; TLS_KEY_FILE?: string | undefined; TLS_CA_FILE?: string | undefined; TLS_CLIENT_AUTH: "require" | "optional" | "off"; TLS_PEER_SERVICES?: string | undefined },
  service: ServiceName,
): TlsOptions | undefined {
  if (!cfg.TLS_CERT_FILE && !cfg.TLS_KEY_FILE) return undefined;
  if (!cfg.TLS_CERT_FILE || !cfg.TLS_KEY_FILE) throw new ConfigError("config: TLS_CERT_FILE and TLS_KEY_FILE must be set together (one of them is not set)");
  if (cfg.TLS_CLIENT_AUTH !== "off" && !cfg.TLS_CA_FILE) throw new ConfigError(`config: TLS_CA_FILE must name the CA that signs client certificates when TLS_CLIENT_AUTH=${cfg.TLS_CLIENT_AUTH} (it is not set)`);
  const tls = {
    cert: readFileSync(cfg.TLS_CERT_FILE),
    key: readFileSync(cfg.TLS_KEY_FILE),
    ca: cfg.TLS_CA_FILE ? readFileSync(cfg.TLS_CA_FILE) : undefined,
    clientAuth: cfg.TLS_CLIENT_AUTH,
    serviceIdentities: serviceIdentities(service, cfg.TLS_PEER_SERVICES),
  };
  // Parse each file now, so a bad one is named here and not met as an OpenSSL error in listen().
  const check = (variable: string, file: string, what: string, opts: Parameters<typeof createSecureContext>[0]) => {
    try {
      createSecureContext(opts);
    } catch (err) {
      throw new ConfigError(`config: ${variable}=${file}: not ${what} (${describeFailure(err)}); point it at a PEM file that holds one`);
    }
  };
  check("TLS_CERT_FILE", cfg.TLS_CERT_FILE, "a PEM certificate", { cert: tls.cert });
  check("TLS_KEY_FILE", cfg.TLS_KEY_FILE, "a PEM private key", { key: tls.key });
  if (cfg.TLS_CA_FILE && tls.ca) check("TLS_CA_FILE", cfg.TLS_CA_FILE, "a PEM CA certificate", { ca: tls.ca });
  try {
    createSecureContext({ cert: tls.cert, key: tls.key });
  } catch (err) {
    throw new ConfigError(`config: TLS_KEY_FILE=${cfg.TLS_KEY_FILE} is not the key of TLS_CERT_FILE=${cfg.TLS_CERT_FILE} (${describeFailure(err)}); use the pair issued together`);
  }
  return tls;
}

/** loadTls, and loaded again when the files change (reload.ts); undefined without TLS files. */
export function watchTls(cfg: Parameters<typeof loadTls>[0], service: ServiceName, opts: WatchOptions): Reloading<TlsOptions> | undefined {
  if (!cfg.TLS_CERT_FILE && !cfg.TLS_KEY_FILE) return undefined;
  const files = [cfg.TLS_CERT_FILE, cfg.TLS_KEY_FILE, cfg.TLS_CA_FILE].filter((f): f is string => Boolean(f));
  return watchFiles("the TLS certificate", files, () => loadTls(cfg, service)!, opts);
}

/**
 * SIGTERM/SIGINT: drain the server, then close what was opened; a second signal exits at once.
 * Started by npm (`npm start`), the same drain runs when npm is gone (see onParentExit).
 */
export function onSignals(log: Logger, server: Pick<RunningServer, "close">, closers: (() => Promise<unknown>)[] = []) {
  let stoppingSince: number | undefined;
  const stop = async (signal: string) => {
    // Ctrl-C under `npm start` arrives twice at once (from the terminal to the process group, and
    // forwarded by npm): only a second signal a moment later means "stop now".
    if (stoppingSince !== undefined) {
      if (performance.now() - stoppingSince > 1_000) process.exit(1);
      return;
    }
    stoppingSince = performance.now();
    log.info({ signal }, "draining");
    try {
      await server.close();
      for (const c of closers) await c().catch((err) => log.warn({ err: String(err) }, "close failed"));
      await telemetry().shutdown(); // exports the last spans
      log.info("stopped");
      process.exit(0);
    } catch (err) {
      log.error({ err }, "shutdown failed");
      process.exit(1);
    }
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  onParentExit(() => void stop("parent exited"));
}

/**
 * A server started by npm (npm_lifecycle_event is set) must not outlive it: npm forwards SIGTERM
 * to its child (the package scripts `exec` node, so that child is this process), but when npm is
 * killed outright the server would be left listening. Its parent's death shows as a new ppid
 * (the process is handed to init or a subreaper); `stop` runs once when that happens.
 */
export function onParentExit(stop: () => void, { env = process.env, intervalMs = 250 }: { env?: NodeJS.ProcessEnv; intervalMs?: number } = {}): void {
  if (!env.npm_lifecycle_event) return; // started directly (systemd, a container, nohup): nothing to follow
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    stop();
  }, intervalMs);
  timer.unref();
}
