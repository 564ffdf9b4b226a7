/** What every command gets: the streams, the environment, the options, the server's API. */
import { CredentialStore, configDir } from "./config.js";
import { usageError } from "./errors.js";
import { Api, DEFAULT_SERVER, connectTransport, normaliseServer, type TransportFactory } from "./session.js";

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  /** How calls reach the server (tests: in memory). */
  transport: TransportFactory;
  now: () => number;
  /** Ends when the user interrupts (Ctrl-C); long-running commands stop on it. */
  signal?: AbortSignal;
}

let pipeWatched = false;

export function processIo(): Io {
  if (!pipeWatched) {
    pipeWatched = true;
    // `crm export deals | head`: a reader that went away ends crm quietly, as it does other tools.
    process.stdout.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
      process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
    });
  }
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env, transport: connectTransport, now: Date.now };
}

export interface GlobalOptions {
  server?: string;
  json?: boolean;
}

export class Context {
  readonly store: CredentialStore;
  /** The server the last call went to (for error messages). */
  server: string | undefined;
  private api: Api | undefined;

  constructor(
    readonly io: Io,
    readonly opts: GlobalOptions,
  ) {
    this.store = new CredentialStore(configDir(io.env));
  }

  get json(): boolean {
    return Boolean(this.opts.json);
  }

  out(text: string): void {
    this.io.stdout.write(text);
  }

  /** A line for people on stderr (progress, summaries): stdout stays for data. */
  note(text: string): void {
    this.io.stderr.write(text.endsWith("\n") ? text : `${text}\n`);
  }

  /** --server, else CRM_SERVER, else the server of the last login, else http://127.0.0.1:8080. */
  async resolveServer(): Promise<string> {
    const given = this.opts.server ?? this.io.env.CRM_SERVER;
    const raw = given || (await this.store.read()).current || DEFAULT_SERVER;
    try {
      return normaliseServer(raw);
    } catch (e) {
      throw usageError(`${this.opts.server ? "--server" : given ? "CRM_SERVER" : this.store.file}: ${(e as Error).message}`);
    }
  }

  async connect(): Promise<Api> {
    if (this.api) return this.api;
    this.server = await this.resolveServer();
    return (this.api = new Api(this.server, this.store, this.io.transport, this.io.env.CRM_API_KEY || undefined, this.io.now));
  }
}

/** A command's action: returns its exit code. */
export type Action = (ctx: Context, ...args: any[]) => Promise<number | void>;
/** Wraps an action for commander (main.ts): builds the context, records the exit code. */
export type Wrap = (fn: Action) => (...args: any[]) => Promise<void>;
