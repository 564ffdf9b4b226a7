/**
 * The records store's transaction: dbservice's one transaction helper, which sets the app role,
 * the tenant, the acting user and their CURRENT role (read from users, not from the token, so a
 * demotion or deactivation takes effect at once) for the row-level security policies in its first
 * round trip, and the schema's refusals turned into errors a client can act on.
 */
import type { HandlerContext } from "@connectrpc/connect";
import { actorOf, AppError, invalid, principalOf, type Role } from "@crm/kit";
import type { Db, Sql } from "@crm/dbservice/db";
import { publishChanges, type PendingChange, type RecordReaders } from "./changes.js";

export interface Acting {
  companyId: string;
  userId: string;
  role: Role;
  /** The record changes made so far (changes.ts): versioned and published when the transaction ends. */
  pending: PendingChange[];
  /** Who the timeline names (unset: the user): an API key acting for the user, or an import job. */
  actor?: TimelineActor | undefined;
}

/** Who a timeline entry names; rec_timeline's INSERT policies check the type and id against the transaction. */
export interface TimelineActor {
  type: "user" | "api_key" | "import";
  id: string;
  /** "API key <name>", "import <id>"; empty for a user. */
  name: string;
}

/** The actor of a's changes. */
export const actorOfActing = (a: Acting): TimelineActor => a.actor ?? { type: "user", id: a.userId, name: "" };

/** What the store's transactions need besides the database. */
export interface CallerOptions {
  /** Reads changed records for their events (changes.ts). */
  readers?: RecordReaders;
  /** Called after a transaction that wrote events committed: wakes the outbox relay. */
  afterOutbox?: () => void;
}

export const isAdmin = (a: Acting) => a.role === "owner" || a.role === "admin";
/** The same rule as the policies' crm_may_edit(owner). */
export const mayEdit = (a: Acting, ownerId: string) => isAdmin(a) || ownerId === a.userId;

/** What a constraint protects: the request field it names (JSON path) and what to say. */
export interface ConstraintInfo {
  field?: string;
  reason: "invalid_argument" | "already_exists" | "not_found" | "failed_precondition";
  message: string;
}

/**
 * Runs fn in ONE tenant transaction as the caller; `constraints` names the fields behind the
 * schema's refusals. The record changes fn noted are versioned and published at its end, with the
 * COMMIT (changes.ts).
 */
export async function asCaller<T>(
  db: Db,
  ctx: HandlerContext,
  fn: (sql: Sql, a: Acting) => Promise<T>,
  constraints: Record<string, ConstraintInfo> = {},
  o: CallerOptions = {},
): Promise<T> {
  const p = principalOf(ctx);
  let published = 0;
  try {
    const result = await db.tenant(
      p.companyId,
      async (sql, { role, at }) => {
        if (role !== "owner" && role !== "admin" && role !== "member") {
          throw new AppError("permission_denied", "your account is not active in this company: ask an owner or admin");
        }
        const a: Acting = { companyId: p.companyId, userId: p.userId, role, pending: [] };
        const actor = actorOf(p);
        if (actor.type === "api_key") {
          // A call made with an API key is written as the key (acting for its creator): the
          // timeline's policy admits the key named here, and only one of the user's own.
          await sql.query("SELECT set_config('app.api_key_id', $1, true)", [actor.id]);
          a.actor = { type: "api_key", id: actor.id, name: actor.name };
        }
        const value = await fn(sql, a);
        published = await publishChanges(db, sql, a, o.readers ?? {}, at);
        return value;
      },
      { actingUser: p.userId },
    );
    if (published) o.afterOutbox?.();
    return result;
  } catch (err) {
    throw schemaError(err, constraints);
  }
}

/** Turns PostgreSQL's refusals into the errors of the API (anything else passes through: a bug, or unavailable). */
export function schemaError(err: unknown, constraints: Record<string, ConstraintInfo>): unknown {
  if (err instanceof AppError) return err;
  const e = err as { code?: string; constraint?: string; message?: string };
  const known = e.constraint ? constraints[e.constraint] : undefined;
  switch (e.code) {
    case "23505": // unique
    case "23514": // check
    case "23503": // foreign key
    case "23502": // not null
      if (known) return new AppError(known.reason, known.message, known.field ? [{ field: known.field, description: known.message }] : []);
      if (e.code === "23505") return new AppError("already_exists", "a record with these values exists already");
      if (e.code === "23503") return new AppError("not_found", "a record this one refers to does not exist in your company (any more)");
      return invalid([{ field: "request", description: `a value is out of range (${e.constraint ?? "constraint"}): check the fields against the API reference` }]);
    case "42501": // insufficient privilege: a row-level security policy refused the row
      return new AppError("permission_denied", "your role may not make this change: members change only the records they own; owners and admins change everything");
    case "22P02": // invalid text representation
    case "22007": // invalid datetime format
    case "22008": // datetime field overflow
    case "22003": // numeric value out of range
    case "22001": // string data right truncation
    case "22021": // character not in repertoire
    case "22P05": // untranslatable character
      return invalid([{ field: "request", description: `a value has the wrong form: ${e.message?.slice(0, 200) ?? e.code}` }]);
    case "54001": // statement too complex
      return invalid([{ field: "filter", description: "the filter is too complex: use fewer conditions" }]);
    default:
      return err;
  }
}
