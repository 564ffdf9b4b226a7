/**
 * All-in-one mode: every service in ONE process on ONE cleartext port (HTTP/1.1 + h2c), peers
 * called in memory through the same generated clients. Each service is made by its own build()
 * (services/<name>/src/build.ts), the same one its own process (main.ts) calls: this file only
 * chooses the providers. Embedded where nothing is configured: PGlite in DATA_DIR/pg, in-memory
 * revocations, counters and event bus, a key pair generated into DATA_DIR/keys, e-mails as .eml
 * files; DATABASE_URL, REDIS_URL, AMQP_URL, SMTP_URL (and JWT_*_FILE) switch each to the real one.
 * The key files are read again when they change, as in a cluster (CREDENTIAL_RELOAD_INTERVAL_MS):
 * auth's signing key and JWKS by its build, the JWKS the token verifier checks with by the kit's
 * watchJwks, as runService gives every service's; a key rotation (docs/operations.md) needs no restart.
 */
import { resolve } from "node:path";
import { createClient, type Transport } from "@connectrpc/connect";
import { z } from "zod";
import {
  commonEnv, createLogger, createTokenVerifier, env, inProcessPeer, loadConfig, memoryCounter, memoryRevocations,
  newInternalIdentity, readJwks, redisClient, watchJwks, redisCounter, redisRevocations, startServer, type Basics, type ServiceModule,
  createErrorReporter, logsServiceSender, setErrorSink, createEventBus, dependsOn, listenError, publicUrl, ConfigError,
} from "@crm/kit";
import { LogsService } from "@crm/gen/crm/logs/v1/logs_pb";
import { ApiKeyService } from "@crm/gen/crm/auth/v1/api_keys_pb";
import { apiKeyExchange } from "@crm/kit/api-key-exchange";
import { adminEnv } from "@crm/admin/config";
import { authEnv } from "@crm/auth/config";
import { cacheEnv } from "@crm/cache/config";
import { chatsEnv } from "@crm/chats/config";
import { dbEnv } from "@crm/dbservice/config";
import { startEmbeddedPostgres } from "@crm/dbservice/embedded";
import { emailEnv } from "@crm/email/config";
import { logsEnv } from "@crm/logs/config";
import { timersEnv } from "@crm/timers/config";
import { recordsEnv } from "@crm/records/config";
import { webhooksEnv } from "@crm/webhooks/config";
import { createWebModule, webDir } from "./web.js";

const dataDirTodo = "set DATA_DIR to a folder this user can create and write (it holds the embedded database, keys and e-mails)";

const allEnv = z.object({
  ...commonEnv,
  HOST: env.str("127.0.0.1"),
  PORT: env.port(8080),
  DATA_DIR: env.str("./data"),
  /** The built web console; default web/dist of the checkout (services/all/src/web.ts). */
  WEB_DIR: env.optionalStr(),
});

export interface AllInOne {
  port: number;
  close(): Promise<void>;
}

export async function startAllInOne(environment: NodeJS.ProcessEnv = process.env): Promise<AllInOne> {
  const started = performance.now();
  const cfg = loadConfig(allEnv, environment);
  const authCfg = loadConfig(authEnv, environment);
  const dbCfg = loadConfig(dbEnv, environment);
  const log = createLogger("crm", cfg.LOG_LEVEL);
  const dataDir = resolve(cfg.DATA_DIR);
  const closers: (() => Promise<unknown>)[] = [];

  // The key pair: your own (both files) or one generated once into DATA_DIR/keys.
  if (Boolean(authCfg.JWT_PRIVATE_KEY_FILE) !== Boolean(cfg.JWT_PUBLIC_KEYS_FILE)) {
    const [set, unset] = authCfg.JWT_PRIVATE_KEY_FILE ? ["JWT_PRIVATE_KEY_FILE", "JWT_PUBLIC_KEYS_FILE"] : ["JWT_PUBLIC_KEYS_FILE", "JWT_PRIVATE_KEY_FILE"];
    throw new ConfigError(`config: ${set} is set but ${unset} is not: set both (your own key pair) or neither (a pair generated into DATA_DIR/keys)`);
  }
  // PGlite (no DATABASE_URL) starts now, in its own thread, and is awaited where the database is
  // needed: opening or unpacking it overlaps loading the services' code (below, after it on
  // purpose), generating the key pair and building the services that need no database.
  const pgDir = dbCfg.DATABASE_URL ? undefined : resolve(dataDir, "pg");
  const embeddedStart = pgDir ? dependsOn("DATA_DIR", cfg.DATA_DIR, dataDirTodo, () => startEmbeddedPostgres(pgDir)) : undefined;
  embeddedStart?.catch(() => {}); // its failure is reported where it is awaited (or an earlier one is)
  const [
    { build: buildDb }, { build: buildAuth, ensureKeyFiles }, { build: buildLogs }, { build: buildCache }, { build: buildAdmin },
    { build: buildTimers }, { build: buildRecords }, { build: buildWebhooks }, { build: buildChats }, { build: buildEmail },
  ] = await Promise.all([
    import("@crm/dbservice/build"), import("@crm/auth/build"), import("@crm/logs/build"), import("@crm/cache/build"), import("@crm/admin/build"),
    import("@crm/timers/build"), import("@crm/records/build"), import("@crm/webhooks/build"), import("@crm/chats/build"), import("@crm/email/build"),
  ]);
  const keys = authCfg.JWT_PRIVATE_KEY_FILE && cfg.JWT_PUBLIC_KEYS_FILE
    ? { privateFile: authCfg.JWT_PRIVATE_KEY_FILE, jwksFile: cfg.JWT_PUBLIC_KEYS_FILE }
    : await dependsOn("DATA_DIR", cfg.DATA_DIR, dataDirTodo, () => ensureKeyFiles(resolve(dataDir, "keys")));

  // Redis (REDIS_URL) or this process's memory: revocations, counters, the cache, the running-timer cache.
  const redis = cfg.REDIS_URL ? redisClient(cfg.REDIS_URL, log) : undefined;
  if (redis) closers.push(() => redis.quit());
  const revocations = redis ? redisRevocations(redis, { log }) : memoryRevocations();
  const counter = redis ? redisCounter(redis) : memoryCounter();
  // A rotated JWKS is taken without a restart (kit reload.ts), as in every service of a cluster.
  const reload = { intervalMs: cfg.CREDENTIAL_RELOAD_INTERVAL_MS, log };
  const jwks = watchJwks(keys.jwksFile, readJwks, reload);
  closers.push(async () => jwks.close());
  // API keys are exchanged with auth (in memory here) once, then verified like its access token.
  const verifier = createTokenVerifier({
    jwks: jwks.current,
    issuer: cfg.JWT_ISSUER,
    audience: cfg.JWT_AUDIENCE,
    revocations,
    apiKeys: apiKeyExchange(() => peerOf("crm")("auth", ApiKeyService)),
  });

  // Peers are the built modules, called in memory through the same interceptors a server runs;
  // a peer is looked up when first called, so the builds below may come in any order.
  const built = new Map<string, ServiceModule>();
  const add = <M extends ServiceModule>(m: M): M => (built.set(m.name, m), m);
  const peerDeps = { log, verifier, internal: newInternalIdentity() };
  const inProcess = (self: string, service: string): Transport => {
    let t: Transport | undefined;
    const peer = () => {
      const module = built.get(service);
      if (!module) throw new Error(`all-in-one: ${self} called ${service}, which is not built`);
      return (t ??= inProcessPeer(self, module, peerDeps));
    };
    return {
      unary: (method, signal, timeoutMs, header, input, values) => peer().unary(method, signal, timeoutMs, header, input, values),
      stream: (method, signal, timeoutMs, header, input, values) => peer().stream(method, signal, timeoutMs, header, input, values),
    };
  };
  const peerOf = (self: string): Basics["peer"] => (service, desc) => createClient(desc, inProcess(self, service));
  /** What a service's build gets in this process (each takes what it needs); main.ts passes the same from runService. */
  const basics = (self: string) => ({ log, peer: peerOf(self), revocations, verifier, redis, counter });

  const logs = add(await buildLogs({ cfg: loadConfig(logsEnv, environment), log, logLevel: cfg.LOG_LEVEL }));
  // Every module's errors (log.error, unhandled `internal`) go to the logs service in the background.
  const reporter = createErrorReporter({ send: logsServiceSender(peerOf("crm")("logs", LogsService)), log });
  setErrorSink(reporter.report);
  // Links in e-mails start with PUBLIC_URL, else with this process's own address (known once listening).
  const configuredUrl = publicUrl(environment);
  let ownUrl = "";
  const linkBase = () => configuredUrl ?? ownUrl;
  // Before the database: a key file that is not a key fails the start at once. auth compares its
  // key files as often as the verifier its JWKS, and signs with a new key once the JWKS publishes it.
  const auth = add(await buildAuth({
    ...basics("auth"),
    cfg: { ...authCfg, JWT_ISSUER: cfg.JWT_ISSUER, JWT_AUDIENCE: cfg.JWT_AUDIENCE, CREDENTIAL_RELOAD_INTERVAL_MS: reload.intervalMs },
    keys,
    publicUrl: linkBase,
    onClose: (fn) => void closers.push(fn),
  }));

  // The database: a PostgreSQL server (DATABASE_URL), else PGlite in DATA_DIR/pg.
  let database: { url: string; embedded?: boolean };
  if (!embeddedStart) database = { url: dbCfg.DATABASE_URL! };
  else {
    const embedded = await embeddedStart;
    closers.push(() => embedded.close());
    database = { url: embedded.url, embedded: true };
    log.info({ dir: pgDir }, "using embedded PostgreSQL (PGlite); set DATABASE_URL to use a server");
  }
  // One event bus for the process: RabbitMQ with AMQP_URL, else in memory. dbservice's outbox
  // relay publishes into it; chats and the e-mail workers consume from it.
  const bus = createEventBus({ url: cfg.AMQP_URL, log, name: "crm" });
  closers.push(() => bus.close());
  if (cfg.AMQP_URL && !(await bus.waitConnected(5_000))) log.warn("RabbitMQ is not reachable yet: events wait in the outbox until it is");
  const dbservice = add(await buildDb({ cfg: dbCfg, database, bus, redis, log }));

  const modules: ServiceModule[] = [
    logs,
    add(await buildCache({ ...basics("cache"), cfg: loadConfig(cacheEnv, environment) })),
    auth,
    // The audit queue's events go to the logs service.
    add(await buildAdmin({ ...basics("admin"), cfg: loadConfig(adminEnv, environment), publicUrl: linkBase, bus })),
    add(await buildTimers({ ...basics("timers"), cfg: loadConfig(timersEnv, environment) })),
    add(await buildRecords({ ...basics("records"), cfg: loadConfig(recordsEnv, environment), bus })),
    // Record changes (records.events) to the company's webhook endpoints.
    add(await buildWebhooks({ ...basics("webhooks"), cfg: loadConfig(webhooksEnv, environment), bus })),
    add(await buildChats({ ...basics("chats"), cfg: loadConfig(chatsEnv, environment), bus })),
    // SMTP_URL, else .eml files in DATA_DIR/outbox.
    add(await buildEmail({ ...basics("email"), cfg: { ...loadConfig(emailEnv, environment), DATA_DIR: dataDir }, bus })),
    // dbservice is mounted for readiness and shutdown only: its RPCs are never served publicly.
    { name: "dbservice", services: [], routes: () => {}, ready: dbservice.ready, close: dbservice.close },
    // Last: the console's files and SPA fallback come after every other module's HTTP routes.
    createWebModule({ dir: webDir(cfg.WEB_DIR), log }),
  ];

  const server = await startServer({
    modules,
    port: cfg.PORT,
    host: cfg.HOST,
    log,
    verifier,
    revocations,
    readMaxBytes: cfg.READ_MAX_BYTES,
    shutdownTimeoutMs: cfg.SHUTDOWN_TIMEOUT_MS,
    hiddenPrefixes: ["/crm.db.v1."],
  }).catch((err: unknown) => {
    throw listenError(err, cfg);
  });
  const host = cfg.HOST === "0.0.0.0" ? "127.0.0.1" : cfg.HOST === "::" ? "::1" : cfg.HOST;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${server.port}`;
  ownUrl = url;
  log.info({ url, ms: Math.round(performance.now() - started), data: dataDir }, `ready: CRM all-in-one at ${url}`);
  return {
    port: server.port,
    async close() {
      await reporter.close();
      await server.close();
      setErrorSink(undefined);
      for (const c of closers.reverse()) await c();
    },
  };
}

