/**
 * What an import tells others, in the transaction that changes the job: the ImportFinished event
 * on the outbox when it reaches a final state (records.events, imports.<tenant>; webhooks delivers
 * it as import.finished), and the audit log's records.import_started and records.import_undone.
 */
import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import { actorOf, principalOf } from "@crm/kit";
import { importFinishedEvent } from "@crm/contracts/tenant-events";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { ImportState, type ImportSchema } from "@crm/gen/crm/records/v1/import_pb";
import type { Db, Sql } from "@crm/dbservice/db";
import type { ExportAudit } from "./export-store.js";

type Job = MessageInitShape<typeof ImportSchema>;

const finalStates = new Set([ImportState.SUCCEEDED, ImportState.FAILED, ImportState.CANCELLED]);

/**
 * Queues the job's ImportFinished if it ended now (`before`: its state when the transaction read
 * it, still running or queued). True when it did: the caller wakes the relay after the commit.
 */
export async function queueImportFinished(db: Pick<Db, "enqueueMany">, sql: Sql, companyId: string, before: ImportState, job: Job): Promise<boolean> {
  if (finalStates.has(before) || !finalStates.has(job.state ?? ImportState.UNSPECIFIED)) return false;
  // Without the sample rows: cells of the file are not the event's business.
  const e = importFinishedEvent({ eventId: randomUUID(), tenantId: companyId, import: { ...job, sampleRows: [] }, finishTime: job.endTime ?? timestampFromDate(new Date()) });
  await db.enqueueMany(sql, [{ ...e, companyId }]);
  return true;
}

/** The audit log's entry of an import started (a dry run too) or undone, by the caller. */
export async function auditImport(audit: ExportAudit | undefined, sql: Sql, ctx: HandlerContext, action: "records.import_started" | "records.import_undone", job: Job, details: Record<string, string> = {}): Promise<void> {
  await audit?.record(sql, [
    {
      action,
      actor: actorOf(principalOf(ctx)),
      target: { type: "import", id: job.id ?? "" },
      details: { file_name: job.fileName ?? "", object_type: (ObjectType[job.objectType ?? 0] ?? "").toLowerCase(), dry_run: String(job.dryRun ?? false), ...details },
    },
  ]);
}
