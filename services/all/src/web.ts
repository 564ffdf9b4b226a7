/**
 * Serves the web console (web/dist, built by `npm ci`'s prepare step) from the all-in-one port:
 *
 * - files of the build only (a map made at start: no path from the URL ever reaches the disk);
 * - hashed assets (/assets/*) cached for a year (`immutable`), everything else `no-cache` with an
 *   ETag, so a new build is seen on the next load;
 * - brotli or gzip when the browser takes it: the build's precompressed copies (file.br, file.gz),
 *   else compressed once per file at a fast level and kept;
 * - a strict Content-Security-Policy: only this origin's scripts, styles and calls, no inline code;
 * - SPA fallback: a GET for an unknown path that accepts text/html gets index.html, so /chats/…
 *   can be reloaded — but never a path another route answers: RPC paths (/pkg.Service/Method),
 *   REST aliases, /.well-known/…, the health and metrics paths, and the pages in `reserved`;
 * - the e-mailed links (/accept-invite, /reset-password) are the console's screens; without a
 *   build they redirect to auth's plain pages under /account-links/ (the fragment with the token
 *   stays in the browser across the redirect).
 *
 * It must be the last module of the server, so every other module's http() route comes first.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import type http from "node:http";
import type http2 from "node:http2";
import { extname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import zlib from "node:zlib";
import type { Logger, ServiceModule } from "@crm/kit";
import { createAliasMatcher } from "@crm/kit/rest";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

export const contentSecurityPolicy = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const securityHeaders = {
  "content-security-policy": contentSecurityPolicy,
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
};

const types: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".webp": "image/webp",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};
const compressible = new Set([".html", ".js", ".mjs", ".css", ".json", ".map", ".svg", ".txt"]);

/** Paths pages of other modules answer (auth's plain pages for e-mailed links); never the SPA's fallback. */
export const reservedPages = ["/account-links"];

/** The e-mailed links' paths (the console's screens) and auth's plain page for each, used without a build. */
export const linkPages: Record<string, string> = {
  "/accept-invite": "/account-links/accept-invite",
  "/reset-password": "/account-links/reset-password",
};

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
  cacheControl: string;
  gzip?: Promise<Buffer>;
  br?: Promise<Buffer>;
  compress: boolean;
}

const gzip = promisify(zlib.gzip);
const brotli = promisify(zlib.brotliCompress);

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else out.push(path);
  }
  return out;
}

/** The build's files by URL path ("/assets/index-abc.js"); empty when there is no build. */
export function loadBuild(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  if (!existsSync(join(dir, "index.html"))) return files;
  const paths = walk(dir);
  const present = new Set(paths);
  for (const path of paths) {
    // file.br and file.gz are the build's precompressed copies (scripts/build-web.mjs), not URLs.
    if ((path.endsWith(".br") || path.endsWith(".gz")) && present.has(path.slice(0, -3))) continue;
    const url = "/" + relative(dir, path).split(sep).join("/");
    const body = readFileSync(path);
    const ext = extname(path).toLowerCase();
    const compress = compressible.has(ext) && body.length > 512;
    files.set(url, {
      body,
      type: types[ext] ?? "application/octet-stream",
      etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
      // Vite names everything under assets/ by its content hash: such a URL never changes meaning.
      cacheControl: url.startsWith("/assets/") ? "public, max-age=31536000, immutable" : "no-cache",
      compress,
      ...(compress && present.has(`${path}.br`) ? { br: Promise.resolve(readFileSync(`${path}.br`)) } : {}),
      ...(compress && present.has(`${path}.gz`) ? { gzip: Promise.resolve(readFileSync(`${path}.gz`)) } : {}),
    });
  }
  return files;
}

function encodingFor(req: Req, file: StaticFile): "br" | "gzip" | undefined {
  if (!file.compress) return undefined;
  const accept = String(req.headers["accept-encoding"] ?? "");
  if (/\bbr\b/.test(accept)) return "br";
  if (/\bgzip\b/.test(accept)) return "gzip";
  return undefined;
}

function encoded(file: StaticFile, enc: "br" | "gzip"): Promise<Buffer> {
  // Without the build's precompressed copy: a fast level once, kept (brotli 11 takes seconds).
  if (enc === "br") return (file.br ??= brotli(file.body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: file.body.length } }));
  return (file.gzip ??= gzip(file.body, { level: 9 }));
}

/** WEB_DIR, else web/dist of this checkout (from source), else ./web/dist (the bundle, run from the repo root). */
export function webDir(configured: string | undefined): string {
  if (configured) return resolve(configured);
  const fromSource = fileURLToPath(new URL("../../../web/dist", import.meta.url));
  return existsSync(join(fromSource, "index.html")) ? fromSource : resolve("web/dist");
}

export interface WebModuleOptions {
  /** The Vite build (web/dist). */
  dir: string;
  log: Logger;
  /** Extra paths (and their subpaths) the SPA fallback must leave alone. */
  reserved?: string[];
}

export function createWebModule(opts: WebModuleOptions): ServiceModule {
  const files = loadBuild(opts.dir);
  const index = files.get("/index.html");
  if (!index) opts.log.warn({ dir: opts.dir }, "the web console is not built (no index.html): run `npm run build:web` (npm ci does it) to serve it at /");
  const aliases = createAliasMatcher();
  const aliasMethods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
  const reserved = [...reservedPages, ...(opts.reserved ?? [])];

  /** Paths some other route answers, whatever the Accept header says. */
  const taken = (path: string): boolean => {
    const first = path.split("/", 2)[1] ?? "";
    if (first.includes(".")) return true; // /crm.auth.v1.AuthService/…, /grpc.health.v1…, /.well-known/…
    if (path === "/healthz" || path === "/readyz" || path === "/metrics") return true;
    if (reserved.some((p) => path === p || path.startsWith(`${p}/`))) return true;
    // A REST alias under any method: GET /auth/login is the API's 405, not the console.
    return aliasMethods.some((m) => aliases(m, path) !== undefined);
  };

  const send = (req: Req, res: Res, file: StaticFile, status = 200) => {
    const head: Record<string, string | number> = {
      ...securityHeaders,
      "content-type": file.type,
      "cache-control": file.cacheControl,
      etag: file.etag,
      vary: "accept-encoding",
    };
    const ifNoneMatch = req.headers["if-none-match"];
    if (status === 200 && typeof ifNoneMatch === "string" && ifNoneMatch.split(/\s*,\s*/).includes(file.etag)) {
      (res as http.ServerResponse).writeHead(304, head);
      res.end();
      return;
    }
    const enc = encodingFor(req, file);
    const finish = (body: Buffer) => {
      if (enc) head["content-encoding"] = enc;
      head["content-length"] = body.length;
      (res as http.ServerResponse).writeHead(status, head);
      if (req.method === "HEAD") res.end();
      else res.end(body);
    };
    if (!enc) return finish(file.body);
    encoded(file, enc).then(finish, (err: unknown) => {
      opts.log.warn({ err: String(err), enc }, "compressing a web file failed; sending it as is");
      delete head["content-encoding"];
      finish(file.body);
    });
  };

  return {
    name: "web",
    services: [],
    routes: () => {},
    http(req, res) {
      const method = req.method ?? "GET";
      if (method !== "GET" && method !== "HEAD") return false;
      const path = (req.url ?? "/").split("?", 1)[0]!;
      const file = path === "/" ? index : files.get(path);
      if (file) {
        send(req, res, file);
        return true;
      }
      const plain = linkPages[path];
      if (!index && plain) {
        // No console here: the link still works, on auth's plain page. The browser keeps the
        // #token=… fragment across the redirect (RFC 9110 §10.2.2); a ?token=… query goes along.
        const query = (req.url ?? "").slice(path.length);
        (res as http.ServerResponse).writeHead(302, { ...securityHeaders, location: plain + query, "cache-control": "no-store", "content-length": 0 });
        res.end();
        return true;
      }
      if (taken(path)) return false;
      // The SPA's own routes (/chats/…): navigations get the app, which shows its own "not found".
      if (!String(req.headers.accept ?? "").includes("text/html")) return false;
      if (!index) {
        const text = "The CRM web console is not built: run `npm run build:web` (npm ci does it), then reload.\n";
        (res as http.ServerResponse).writeHead(503, { ...securityHeaders, "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", "content-length": Buffer.byteLength(text) });
        if (method === "HEAD") res.end();
        else res.end(text);
        return true;
      }
      send(req, res, index);
      return true;
    },
  };
}
