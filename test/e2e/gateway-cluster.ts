/**
 * The local cluster behind its NGINX gateway over TLS, as the console's gateway tests use it: every
 * service its own process on free ports, a database and an e-mail queue of the test's own on the
 * local PostgreSQL and RabbitMQ, one gateway worker. `stop()` removes all of it.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dropDatabase, removeRabbitObjects } from "@crm/testkit";
import { defaults, startCluster, type Cluster } from "../../scripts/cluster/lib.mjs";

export interface GatewayCluster {
  cluster: Cluster;
  /** The gateway's https origin. */
  base: string;
  stop(): Promise<void>;
}

/** Unique per run: for the cluster's database and queue, and the test's e-mail addresses. */
export function runTag(): string {
  return `${process.pid}_${randomBytes(3).toString("hex")}`;
}

export async function startGatewayCluster(name: string, tag: string): Promise<GatewayCluster> {
  const dbName = `crm_${name}_${tag}`;
  const queue = `email_tasks_${name}_${tag}`;
  const dir = mkdtempSync(join(tmpdir(), `crm-${name}-`));
  let cluster: Cluster | undefined;
  const stop = async () => {
    await cluster?.stop();
    await dropDatabase(dbName);
    await removeRabbitObjects({ queues: [queue, `${queue}.retry`, `${queue}.dead`] }, defaults.amqpUrl);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    cluster = await startCluster({
      dataDir: dir,
      ports: "free",
      databaseUrl: `postgres://postgres@127.0.0.1:5432/${dbName}`,
      redisUrl: "redis://127.0.0.1:6379/8",
      env: { LOG_LEVEL: "info", EMAIL_QUEUE: queue, LOGS_REPORT_ERRORS: "false" },
      gateway: { clientVerify: "optional", vars: { CRM_GW_WORKERS: "1" } },
      readyTimeoutMs: 240_000,
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { cluster, base: `https://127.0.0.1:${cluster.httpsPort}`, stop };
}
