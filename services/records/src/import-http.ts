/**
 * The plain HTTP endpoints of imports and exports, for curl and the browser (a file upload or
 * download is awkward as RPC messages). They check the access token as every RPC does (Bearer or
 * the access_token cookie; API keys use the RPCs, which check their scopes), then run the same
 * code as the RPCs, forwarding the caller's token to dbservice:
 *
 *   POST /imports/<id>/file          the file as the body (curl -T file.csv or --data-binary @file.csv)
 *   GET  /imports/<id>/errors.csv    the error file
 *   POST /exports                    an ExportRecordsRequest as JSON → the CSV
 *   GET  /exports/<companies|people|deals>.csv?filter=<JSON>&orderBy=…&columns=a,b&showDeleted=true
 *
 * Errors are JSON {"code", "message"} with the HTTP status of the Connect code.
 */
import type http from "node:http";
import type http2 from "node:http2";
import { randomUUID } from "node:crypto";
import { fromJson } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { AppError, callContext, toConnectError, tokenFromHeaders, type Logger, type TokenVerifier } from "@crm/kit";
import type { DbImportService } from "@crm/gen/crm/db/v1/db_records_import_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { ExportRecordsRequestSchema } from "@crm/gen/crm/records/v1/export_pb";
import { ImportSchema } from "@crm/gen/crm/records/v1/import_pb";
import { toJson } from "@bufbuild/protobuf";
import { exportCsv } from "./export-service.js";
import { errorFile, uploadFile, type ImportLimits } from "./import-service.js";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

const statusOf: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 400, [Code.FailedPrecondition]: 412, [Code.OutOfRange]: 400, [Code.Unauthenticated]: 401, [Code.PermissionDenied]: 403,
  [Code.NotFound]: 404, [Code.AlreadyExists]: 409, [Code.Aborted]: 409, [Code.ResourceExhausted]: 413, [Code.Unimplemented]: 501, [Code.Unavailable]: 503,
};
const codeNames: Record<number, string> = Object.fromEntries(Object.entries(Code).filter(([, v]) => typeof v === "number").map(([k, v]) => [v, k.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase()]));

function fail(res: Res, err: unknown, log: Logger) {
  const ce = err instanceof AppError ? toConnectError(err) : ConnectError.from(err);
  if (!statusOf[ce.code]) log.error({ err: String(err) }, "import/export HTTP request failed");
  if (res.headersSent) {
    res.destroy?.();
    return;
  }
  const body = JSON.stringify({ code: codeNames[ce.code] ?? "internal", message: ce.rawMessage });
  (res as http.ServerResponse).writeHead(statusOf[ce.code] ?? 500, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

async function bodyText(req: Req, max: number): Promise<string> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) throw new AppError("too_large", `the body is over ${max} bytes`);
    parts.push(c);
  }
  return Buffer.concat(parts).toString("utf8");
}

async function* csvOut(res: Res, name: string, chunks: AsyncIterable<Uint8Array>) {
  let started = false;
  for await (const c of chunks) {
    if (!started) {
      (res as http.ServerResponse).writeHead(200, { "content-type": "text/csv; charset=utf-8", "content-disposition": `attachment; filename="${name}"`, "cache-control": "no-store" });
      started = true;
    }
    if (!(res as http.ServerResponse).write(c)) await new Promise((r) => (res as http.ServerResponse).once("drain", r));
    yield;
  }
  res.end();
}

const objects: Record<string, ObjectType> = { companies: ObjectType.COMPANY, people: ObjectType.PERSON, deals: ObjectType.DEAL };

export interface ImportHttpDeps {
  db: Client<typeof DbImportService>;
  verifier: TokenVerifier;
  log: Logger;
  limits: ImportLimits;
}

/** The module's `http` hook: true when the request is one of these routes. */
export function importHttp(d: ImportHttpDeps): (req: Req, res: Res) => boolean {
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const path = url.pathname;
    const upload = /^\/imports\/([0-9a-fA-F-]{36})\/file$/.exec(path);
    const errors = /^\/imports\/([0-9a-fA-F-]{36})\/errors\.csv$/.exec(path);
    const exportGet = /^\/exports\/(companies|people|deals)\.csv$/.exec(path);
    const exportPost = path === "/exports";
    if (!upload && !errors && !exportGet && !exportPost) return false;
    const method = req.method ?? "";
    const want = upload || exportPost ? ["POST", "PUT"] : ["GET"];
    void (async () => {
      try {
        if (!want.includes(method)) throw new AppError("invalid_argument", `use ${want.join(" or ")} on ${path}`);
        const headers = new Headers();
        for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string" && !k.startsWith(":")) headers.set(k, v);
        const token = tokenFromHeaders(headers);
        if (!token) throw new AppError("unauthenticated", "send Authorization: Bearer <token> or the access_token cookie");
        const principal = await d.verifier.verify(token);
        if (principal.apiKey) throw new AppError("permission_denied", "API keys use the RPCs (ImportService, ExportService), which check the key's scopes");
        const ctx = { requestId: randomUUID(), authorization: `Bearer ${principal.token}`, principal, companyId: principal.companyId, userId: principal.userId };
        await callContext.run(ctx, async () => {
          if (upload) {
            const job = await uploadFile(d.db, upload[1]!.toLowerCase(), req as AsyncIterable<Uint8Array>, d.limits);
            const body = JSON.stringify({ import: toJson(ImportSchema, job as never) });
            (res as http.ServerResponse).writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
            res.end(body);
            return;
          }
          if (errors) {
            for await (const _ of csvOut(res, `import-${errors[1]}-errors.csv`, errorFile(d.db, errors[1]!.toLowerCase()))) void _;
            return;
          }
          let request;
          if (exportPost) {
            try {
              request = fromJson(ExportRecordsRequestSchema, JSON.parse(await bodyText(req, 256 * 1024)));
            } catch (err) {
              if (err instanceof AppError) throw err;
              throw new AppError("invalid_argument", `the body must be an ExportRecordsRequest as JSON: ${(err as Error).message.slice(0, 200)}`);
            }
          } else {
            const q = url.searchParams;
            let filter;
            try {
              filter = q.get("filter") ? JSON.parse(q.get("filter")!) : undefined;
            } catch {
              throw new AppError("invalid_argument", "filter must be a Filter as JSON", [{ field: "filter", description: "is not JSON" }]);
            }
            try {
              request = fromJson(ExportRecordsRequestSchema, {
                objectType: `OBJECT_TYPE_${ObjectType[objects[exportGet![1]!]!]}`,
                ...(filter === undefined ? {} : { filter }),
                orderBy: q.get("orderBy") ?? "",
                columns: (q.get("columns") ?? "").split(",").map((c) => c.trim()).filter(Boolean),
                showDeleted: q.get("showDeleted") === "true",
              });
            } catch (err) {
              throw new AppError("invalid_argument", `the query is not an export request: ${(err as Error).message.slice(0, 200)}`, [{ field: "filter", description: "is not a Filter as JSON" }]);
            }
          }
          const name = `${ObjectType[request.objectType]?.toLowerCase() ?? "records"}-${new Date().toISOString().slice(0, 10)}.csv`;
          async function* data() {
            for await (const p of exportCsv(d.db, request!)) yield p.data;
          }
          for await (const _ of csvOut(res, name, data())) void _;
        });
      } catch (err) {
        fail(res, err, d.log);
      }
    })();
    return true;
  };
}
