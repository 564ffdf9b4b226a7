export declare const nginxPackages: string;
export declare function nginxBinary(): string | undefined;
export declare function njsModulePath(): string;
export declare function nginxProblem(): string | undefined;
export declare function waitForPort(port: number, opts?: { host?: string; timeoutMs?: number; alive?: () => boolean }): Promise<void>;
export interface RunningNginx {
  pid: number;
  conf: string;
  dir: string;
  httpsPort: number;
  httpPort: number;
  lines: string[];
  exited: Promise<number | string | null>;
  readonly running: boolean;
  reload(vars?: Record<string, string | undefined>): void;
  stop(graceMs?: number): Promise<number | string | null>;
}
export declare function startNginx(opts: {
  dir: string;
  vars: Record<string, string | undefined>;
  onLine?: (line: string) => void;
  timeoutMs?: number;
  /** Rewrites the rendered nginx.conf before start (benchmarks). */
  patch?: (conf: string) => string;
}): Promise<RunningNginx>;
