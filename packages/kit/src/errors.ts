/**
 * One registry of stable error reasons, each mapped to a Connect code. Handlers and domain code
 * throw `AppError`; the error interceptor turns it into a ConnectError whose message says what was
 * wrong and what to do, with the reason in the `crm-error` metadata (a header/trailer clients can
 * branch on). Anything else thrown is a bug: it becomes `internal` with a request id, never a leak.
 *
 * Bad fields travel as the standard error detail google.rpc.BadRequest (one FieldViolation per
 * field), which gRPC clients read from grpc-status-details-bin and Connect clients from the error's
 * "details". Nothing a client sent is ever put into a header: field paths can hold map keys of any
 * characters, so they go only into the message and the (binary, base64-encoded) details.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, type BadRequest } from "@crm/gen/google/rpc/error_details_pb";

export const errorReasons = {
  invalid_argument: Code.InvalidArgument,
  unauthenticated: Code.Unauthenticated,
  invalid_credentials: Code.Unauthenticated,
  token_invalid: Code.Unauthenticated,
  session_ended: Code.Unauthenticated,
  refresh_token_reused: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  /** A write made on an older view of a record (stale etag/version): read again and retry. */
  aborted: Code.Aborted,
  rate_limited: Code.ResourceExhausted,
  too_large: Code.ResourceExhausted,
  quota_exceeded: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  internal: Code.Internal,
} as const satisfies Record<string, Code>;

export type ErrorReason = keyof typeof errorReasons;

export interface Violation {
  /** The request field, in the proto's JSON name (e.g. "ownerName", "users[3].email"). */
  field: string;
  description: string;
}

export class AppError extends Error {
  override name = "AppError";
  constructor(
    readonly reason: ErrorReason,
    message: string,
    readonly violations: Violation[] = [],
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** One invalid_argument naming every bad field. */
export function invalid(violations: Violation[]): AppError {
  const text = violations.map((v) => `${v.field}: ${v.description}`).join("; ");
  return new AppError("invalid_argument", `invalid request: ${text}`, violations);
}

export const ERROR_REASON_HEADER = "crm-error";

export function toConnectError(err: AppError): ConnectError {
  const meta = new Headers({ [ERROR_REASON_HEADER]: err.reason });
  if (err.retryAfterSeconds !== undefined) meta.set("retry-after", String(Math.max(0, Math.ceil(err.retryAfterSeconds))));
  const details = err.violations.length ? [{ desc: BadRequestSchema, value: { fieldViolations: err.violations } }] : [];
  return new ConnectError(err.message, errorReasons[err.reason], meta, details);
}

/** The field violations (google.rpc.BadRequest details) of an error, as sent or as received. */
export function violationsOf(err: unknown): Violation[] {
  if (err instanceof AppError) return err.violations;
  if (!(err instanceof ConnectError)) return [];
  return err.findDetails(BadRequestSchema).flatMap((d: BadRequest) => d.fieldViolations.map(({ field, description }) => ({ field, description })));
}

/** The stable reason of an error that came back from a peer (or undefined). */
export function reasonOf(err: unknown): ErrorReason | undefined {
  if (err instanceof AppError) return err.reason;
  if (err instanceof ConnectError) {
    const r = err.metadata.get(ERROR_REASON_HEADER);
    if (r && r in errorReasons) return r as ErrorReason;
  }
  return undefined;
}
