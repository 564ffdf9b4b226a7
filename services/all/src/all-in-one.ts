/**
 * All-in-one mode: every service module in ONE process on ONE cleartext port (HTTP/1.1 + h2c),
 * peers called in memory. Embedded defaults where nothing is configured: PGlite in DATA_DIR/pg,
 * in-memory revocations and counters, a key pair generated into DATA_DIR/keys.
 * DATABASE_URL, REDIS_URL switch to the real servers.
 */
import { resolve } from "node:path";
import { createClient } from "@connectrpc/connect";
import pg from "pg";
import { z } from "zod";
import {
  commonEnv, createLogger, createTokenVerifier, env, inProcessPeer, loadConfig, memoryCounter, memoryRevocations,
  newInternalIdentity, readJwks, redisClient, redisCounter, redisRevocations, startServer, type ServiceModule,
  createErrorReporter, logsServiceSender, setErrorSink, createEventBus, databaseTodo, dependsOn, listenError, publicUrl, ConfigError,
} from "@crm/kit";
import { LogsService } from "@crm/gen/crm/logs/v1/logs_pb";
import { cacheEnv } from "@crm/cache/config";
import { createCacheModule } from "@crm/cache/module";
import { logsEnv } from "@crm/logs/config";
import { createLogsModule } from "@crm/logs/module";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { authEnv } from "@crm/auth/config";
import { createAuthModule } from "@crm/auth/module";
import { ensureKeyFiles, loadSigningKey } from "@crm/auth/tokens";
import { dbEnv } from "@crm/dbservice/config";
import { createDb, createPool } from "@crm/dbservice/db";
import { startEmbeddedPostgres } from "@crm/dbservice/embedded";
import { migrate } from "@crm/dbservice/migrate";
import { createDbModule } from "@crm/dbservice/module";
import { startRelay } from "@crm/dbservice/relay";
import { startRevocationKeeper } from "@crm/dbservice/revocation-keeper";
import { DbChatService } from "@crm/gen/crm/db/v1/db_chat_pb";
import { chatsEnv } from "@crm/chats/config";
import { createChatsModule } from "@crm/chats/module";
import { DbAdminService } from "@crm/gen/crm/db/v1/db_admin_pb";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { adminEnv } from "@crm/admin/config";
import { createAdminModule } from "@crm/admin/module";
import { emailEnv } from "@crm/email/config";
import { createEmailModule } from "@crm/email/module";
import { DbTimerService } from "@crm/gen/crm/db/v1/db_timer_pb";
import { timersEnv } from "@crm/timers/config";
import { createTimersModule } from "@crm/timers/module";
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

  if (Boolean(authCfg.JWT_PRIVATE_KEY_FILE) !== Boolean(cfg.JWT_PUBLIC_KEYS_FILE)) {
    const [set, unset] = authCfg.JWT_PRIVATE_KEY_FILE ? ["JWT_PRIVATE_KEY_FILE", "JWT_PUBLIC_KEYS_FILE"] : ["JWT_PUBLIC_KEYS_FILE", "JWT_PRIVATE_KEY_FILE"];
    throw new ConfigError(`config: ${set} is set but ${unset} is not: set both (your own key pair) or neither (a pair generated into DATA_DIR/keys)`);
  }
  const keyFiles = authCfg.JWT_PRIVATE_KEY_FILE && cfg.JWT_PUBLIC_KEYS_FILE
    ? { privateFile: authCfg.JWT_PRIVATE_KEY_FILE, jwksFile: cfg.JWT_PUBLIC_KEYS_FILE }
    : await dependsOn("DATA_DIR", cfg.DATA_DIR, dataDirTodo, () => ensureKeyFiles(resolve(dataDir, "keys")));
  const jwks = readJwks(keyFiles.jwksFile);
  const key = await loadSigningKey(keyFiles.privateFile, authCfg.JWT_KEY_ID, jwks);

  const redis = cfg.REDIS_URL ? redisClient(cfg.REDIS_URL, log) : undefined;
  if (redis) closers.push(() => redis.quit());
  const revocations = redis ? redisRevocations(redis, { log }) : memoryRevocations();
  const counter = redis ? redisCounter(redis) : memoryCounter();
  const verifier = createTokenVerifier({ jwks, issuer: cfg.JWT_ISSUER, audience: cfg.JWT_AUDIENCE, revocations });

  let databaseUrl = dbCfg.DATABASE_URL;
  let poolMax = dbCfg.DB_POOL_MAX;
  if (!databaseUrl) {
    const embedded = await dependsOn("DATA_DIR", cfg.DATA_DIR, dataDirTodo, () => startEmbeddedPostgres(resolve(dataDir, "pg")));
    closers.push(() => embedded.close());
    databaseUrl = embedded.url;
    poolMax = 1;
    log.info({ dir: resolve(dataDir, "pg") }, "using embedded PostgreSQL (PGlite); set DATABASE_URL to use a server");
  }
  // A PostgreSQL server gets dbservice's deadlines (DB_CONNECT_TIMEOUT_MS, DB_QUERY_TIMEOUT_MS); the embedded one is in-process.
  const pool = dbCfg.DATABASE_URL
    ? createPool({ url: databaseUrl, max: poolMax, connectTimeoutMs: dbCfg.DB_CONNECT_TIMEOUT_MS, queryTimeoutMs: dbCfg.DB_QUERY_TIMEOUT_MS })
    : new pg.Pool({ connectionString: databaseUrl, max: poolMax, connectionTimeoutMillis: 10_000 });
  pool.on("error", (err) => log.warn({ err: err.message }, "idle database connection failed"));
  if (dbCfg.DATABASE_URL) await dependsOn("DATABASE_URL", dbCfg.DATABASE_URL, (err) => databaseTodo(err, dbCfg.DATABASE_URL!), () => migrate(pool, log));
  else await migrate(pool, log);
  // One event bus for the process: RabbitMQ with AMQP_URL, else in memory. The outbox relay
  // publishes into it, woken by the dbservice stores after each commit that wrote to the outbox.
  const bus = createEventBus({ url: cfg.AMQP_URL, log, name: "crm" });
  closers.push(() => bus.close());
  if (cfg.AMQP_URL && !(await bus.waitConnected(5_000))) log.warn("RabbitMQ is not reachable yet: events wait in the outbox until it is");
  const relay = await startRelay({ pool, bus, log });
  const db = createDb(pool);
  const dbModule = createDbModule({ db, emailQueue: dbCfg.EMAIL_QUEUE, relay });
  if (redis) {
    // The revocation list in Redis mirrors PostgreSQL: rebuilt from it when Redis lost its data.
    const keeper = startRevocationKeeper({ db, redis, log, accessTokenTtlSeconds: authCfg.ACCESS_TOKEN_TTL_SECONDS });
    closers.push(() => keeper.close());
    await keeper.sync().catch(() => {}); // a Redis that starts empty is complete before the first call (or checks fail closed until it is)
  }

  const internal = newInternalIdentity();
  const peerDeps = { log, verifier, internal };
  const logsModule = createLogsModule({ cfg: loadConfig(logsEnv, environment), log, logLevel: cfg.LOG_LEVEL });
  // Every module's errors (log.error, unhandled `internal`) go to the logs service in the background.
  const reporter = createErrorReporter({ send: logsServiceSender(createClient(LogsService, inProcessPeer("crm", logsModule, peerDeps))), log });
  setErrorSink(reporter.report);
  // Links in e-mails start with PUBLIC_URL, else with this process's own address (known once listening).
  const configuredUrl = publicUrl(environment);
  let ownUrl = "";
  const linkBase = () => configuredUrl ?? ownUrl;
  const modules: ServiceModule[] = [
    logsModule,
    createCacheModule({ cfg: loadConfig(cacheEnv, environment), redis, log }),
    createAuthModule({
      cfg: { ...authCfg, JWT_ISSUER: cfg.JWT_ISSUER, JWT_AUDIENCE: cfg.JWT_AUDIENCE },
      db: createClient(DbAuthService, inProcessPeer("auth", dbModule, peerDeps)),
      dbAdmin: createClient(DbAdminService, inProcessPeer("auth", dbModule, peerDeps)),
      dbEmail: createClient(DbEmailService, inProcessPeer("auth", dbModule, peerDeps)),
      key,
      jwks,
      revocations,
      counter,
      log,
      publicUrl: linkBase,
    }),
    createAdminModule({ cfg: loadConfig(adminEnv, environment), db: createClient(DbAdminService, inProcessPeer("admin", dbModule, peerDeps)), revocations, log, publicUrl: linkBase }),
    createTimersModule({ cfg: loadConfig(timersEnv, environment), db: createClient(DbTimerService, inProcessPeer("timers", dbModule, peerDeps)), redis, log }),
    await createChatsModule({ cfg: loadConfig(chatsEnv, environment), db: createClient(DbChatService, inProcessPeer("chats", dbModule, peerDeps)), bus, log }),
    // E-mail workers consume email_tasks from the same bus the relay publishes to (SMTP_URL, else .eml files in DATA_DIR/outbox).
    await createEmailModule({
      cfg: { ...loadConfig(emailEnv, environment), DATA_DIR: dataDir },
      db: createClient(DbEmailService, inProcessPeer("email", dbModule, peerDeps)),
      bus,
      counter,
      verifier,
      log,
    }),
    // dbservice is mounted for readiness and shutdown only: its RPCs are never served publicly.
    { name: "dbservice", services: [], routes: () => {}, ready: dbModule.ready, close: dbModule.close },
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

