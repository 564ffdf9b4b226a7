/**
 * Where `crm` keeps its sessions: $XDG_CONFIG_HOME/crm/credentials.json (else ~/.config/crm/…),
 * the directory 0700 and the file 0600, written whole to a temporary file and renamed, so a
 * reader never sees half a file. One session per server; `current` is the server of the last
 * login, used when neither --server nor CRM_SERVER names one.
 *
 * Refresh tokens rotate on every use and a spent one ends the whole session, so two `crm`
 * processes must never refresh with the same token: `withLock` serialises refreshes through an
 * exclusive lock file, and whoever gets it second finds the new tokens already stored.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { CliError } from "./errors.js";

export interface StoredSession {
  /** The e-mail or phone logged in with. */
  login: string;
  userId: string;
  companyId: string;
  role: string;
  refreshToken: string;
  /** RFC 3339; empty when the server did not say. */
  refreshExpiresAt: string;
  accessToken: string;
  accessExpiresAt: string;
}

export interface Credentials {
  version: 1;
  current?: string;
  sessions: Record<string, StoredSession>;
}

/** The config directory: $XDG_CONFIG_HOME/crm, else ~/.config/crm. */
export function configDir(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith("/") ? env.XDG_CONFIG_HOME : join(env.HOME || homedir(), ".config");
  return join(base, "crm");
}

export class CredentialStore {
  readonly file: string;
  private readonly lockFile: string;

  constructor(readonly dir: string) {
    this.file = join(dir, "credentials.json");
    this.lockFile = `${this.file}.lock`;
  }

  async read(): Promise<Credentials> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return { version: 1, sessions: {} };
      throw e;
    }
    try {
      const data = JSON.parse(text) as Credentials;
      if (data && typeof data === "object" && data.sessions && typeof data.sessions === "object") return { version: 1, sessions: data.sessions, ...(data.current ? { current: data.current } : {}) };
    } catch {
      // fall through
    }
    throw new CliError(`${this.file} is not a credentials file of crm: delete it and run \`crm login\``);
  }

  async write(data: Credentials): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.${randomBytes(4).toString("hex")}`;
    const fh = await open(tmp, "wx", 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(data, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(tmp, 0o600); // whatever the umask
    await rename(tmp, this.file);
  }

  async session(server: string): Promise<StoredSession | undefined> {
    return (await this.read()).sessions[server];
  }

  /** Stores (or, with undefined, forgets) the session of `server`. */
  async put(server: string, session: StoredSession | undefined, makeCurrent = false): Promise<void> {
    const data = await this.read();
    if (session) data.sessions[server] = session;
    else delete data.sessions[server];
    if (makeCurrent) data.current = server;
    if (!session && data.current === server) delete data.current;
    await this.write(data);
  }

  /** Runs fn holding the lock file (created exclusively); a lock older than 30 s is stale. */
  async withLock<T>(fn: () => Promise<T>): Promise<T> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        const fh = await open(this.lockFile, "wx", 0o600);
        await fh.writeFile(String(process.pid));
        await fh.close();
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        const age = await stat(this.lockFile).then((s) => Date.now() - s.mtimeMs, () => 0);
        if (age > 30_000) await rm(this.lockFile, { force: true });
        else if (Date.now() > deadline) throw new CliError(`another crm process holds ${this.lockFile}; if none runs, delete it`);
        else await delay(50); // another crm process is refreshing: its refresh takes one round trip
      }
    }
    try {
      return await fn();
    } finally {
      await rm(this.lockFile, { force: true });
    }
  }
}
