import type { DevPki } from "../certs.mjs";
import type { RunningNginx } from "../../services/gateway/run.mjs";

export declare const repoRoot: string;
export declare const clusterServices: { name: string; port: number }[];
export declare const defaults: { databaseUrl: string; redisUrl: string; amqpUrl: string; httpsPort: number; httpPort: number; opsBase: number };
export declare class ClusterError extends Error {}
export declare function freePort(): Promise<number>;
export declare function checkPrerequisites(o: { databaseUrl: string; redisUrl: string; amqpUrl: string; gateway?: boolean }): Promise<string[]>;
export declare function ensureDatabase(databaseUrl: string): Promise<void>;

export interface ServiceProcess {
  readonly name: string;
  readonly port: number;
  readonly opsPort: number;
  readonly lines: string[];
  readonly logFile: string;
  readonly running: boolean;
  exited: Promise<number | string | null>;
  start(): Promise<void>;
  stop(graceMs?: number): Promise<void>;
  kill(): void;
  lastLines(n: number): string;
}

export interface ClusterOptions {
  root?: string;
  dataDir?: string;
  ports?: "default" | "free";
  only?: string[];
  databaseUrl?: string;
  redisUrl?: string;
  amqpUrl?: string;
  env?: Record<string, string>;
  serviceEnv?: Record<string, Record<string, string>>;
  gateway?: false | { clientVerify?: "off" | "optional" | "on"; vars?: Record<string, string> };
  onLog?: (name: string, line: string) => void;
  onExit?: (name: string, code: number | string | null) => void;
  readyTimeoutMs?: number;
  /** A built crm.mjs to run each service from (as the image does); default: from source (tsx). */
  bundle?: string;
  /** With a bundle: false runs it without --enable-source-maps (the image's entry point has it). */
  sourceMaps?: boolean;
}

export interface Cluster {
  dataDir: string;
  gatewayUrl: string;
  httpUrl: string;
  httpsPort: number;
  httpPort: number;
  ports: Record<string, number>;
  opsPorts: Record<string, number>;
  pki: DevPki;
  keys: { privateKeyFile: string; jwksFile: string; kid: string };
  logDir: string;
  databaseUrl: string;
  services: Map<string, ServiceProcess>;
  nginx: RunningNginx | undefined;
  service(name: string): ServiceProcess;
  stopService(name: string): Promise<void>;
  startService(name: string): Promise<void>;
  restartService(name: string): Promise<void>;
  stop(): Promise<void>;
  killAll(): void;
}

export declare function startCluster(opts?: ClusterOptions): Promise<Cluster>;
