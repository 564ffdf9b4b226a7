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
} from "@crm/kit";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { authEnv } from "@crm/auth/config";
import { createAuthModule } from "@crm/auth/module";
import { ensureKeyFiles, loadSigningKey } from "@crm/auth/tokens";
import { dbEnv } from "@crm/dbservice/config";
import { createDb } from "@crm/dbservice/db";
import { startEmbeddedPostgres } from "@crm/dbservice/embedded";
import { migrate } from "@crm/dbservice/migrate";
import { createDbModule } from "@crm/dbservice/module";
import { placeholderModule, placeholders } from "./placeholders.js";

const allEnv = z.object({
  ...commonEnv,
  HOST: env.str("127.0.0.1"),
  PORT: env.port(8080),
  DATA_DIR: env.str("./data"),
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

  const keyFiles = authCfg.JWT_PRIVATE_KEY_FILE && cfg.JWT_PUBLIC_KEYS_FILE
    ? { privateFile: authCfg.JWT_PRIVATE_KEY_FILE, jwksFile: cfg.JWT_PUBLIC_KEYS_FILE }
    : await ensureKeyFiles(resolve(dataDir, "keys"));
  const jwks = readJwks(keyFiles.jwksFile);
  const key = await loadSigningKey(keyFiles.privateFile, authCfg.JWT_KEY_ID, jwks);

  const redis = cfg.REDIS_URL ? redisClient(cfg.REDIS_URL, log) : undefined;
  if (redis) closers.push(() => redis.quit());
  const revocations = redis ? redisRevocations(redis) : memoryRevocations();
  const counter = redis ? redisCounter(redis) : memoryCounter();
  const verifier = createTokenVerifier({ jwks, issuer: cfg.JWT_ISSUER, audience: cfg.JWT_AUDIENCE, revocations });

  let databaseUrl = dbCfg.DATABASE_URL;
  let poolMax = dbCfg.DB_POOL_MAX;
  if (!databaseUrl) {
    const embedded = await startEmbeddedPostgres(resolve(dataDir, "pg"));
    closers.push(() => embedded.close());
    databaseUrl = embedded.url;
    poolMax = 1;
    log.info({ dir: resolve(dataDir, "pg") }, "using embedded PostgreSQL (PGlite); set DATABASE_URL to use a server");
  }
  const pool = new pg.Pool({ connectionString: databaseUrl, max: poolMax, connectionTimeoutMillis: 10_000 });
  pool.on("error", (err) => log.warn({ err: err.message }, "idle database connection failed"));
  await migrate(pool, log);
  const dbModule = createDbModule({ db: createDb(pool) });

  const internal = newInternalIdentity();
  const peerDeps = { log, verifier, internal };
  const modules: ServiceModule[] = [
    createAuthModule({
      cfg: { ...authCfg, JWT_ISSUER: cfg.JWT_ISSUER, JWT_AUDIENCE: cfg.JWT_AUDIENCE },
      db: createClient(DbAuthService, inProcessPeer("auth", dbModule, peerDeps)),
      key,
      jwks,
      revocations,
      counter,
      log,
    }),
    ...Object.entries(placeholders).map(([name, desc]) => placeholderModule(name, desc)),
    // dbservice is mounted for readiness and shutdown only: its RPCs are never served publicly.
    { name: "dbservice", services: [], routes: () => {}, ready: dbModule.ready, close: dbModule.close },
  ];

  const server = await startServer({
    modules,
    port: cfg.PORT,
    host: cfg.HOST,
    log,
    verifier,
    readMaxBytes: cfg.READ_MAX_BYTES,
    shutdownTimeoutMs: cfg.SHUTDOWN_TIMEOUT_MS,
    hiddenPrefixes: ["/crm.db.v1."],
  });
  const url = `http://${cfg.HOST === "0.0.0.0" ? "127.0.0.1" : cfg.HOST}:${server.port}`;
  log.info({ url, ms: Math.round(performance.now() - started), data: dataDir }, `ready: CRM all-in-one at ${url}`);
  return {
    port: server.port,
    async close() {
      await server.close();
      for (const c of closers.reverse()) await c();
    },
  };
}

