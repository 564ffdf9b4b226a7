/** SaveLogs checks (pure): one invalid_argument naming every bad field, or normalized records. */
import { AppError, invalid, type Violation } from "@crm/kit";
import { LogLevel, type SaveLogsRequest } from "@crm/gen/crm/logs/v1/logs_pb";

export const levels = ["debug", "info", "warn", "error", "fatal"] as const;
export type Level = (typeof levels)[number];

export const limits = {
  entries: 1000,
  nameMax: 64,
  messageMaxBytes: 16 * 1024,
  attributes: 64,
  attributeKeyMax: 128,
  attributeValueMaxBytes: 4 * 1024,
  /** Loki refuses older entries by default (reject_old_samples_max_age 168h) and ones more than 10 min ahead. */
  maxAgeMs: 7 * 24 * 3600_000,
  maxAheadMs: 10 * 60_000,
  violationsShown: 20,
};

/** A validated entry, ready for shipping. */
export interface LogRecord {
  name: string;
  level: Level;
  message: string;
  companyId: string;
  userId: string;
  traceId: string;
  attributes: Record<string, string>;
  /** Unix time in nanoseconds, as Loki wants it. */
  timeNs: bigint;
  /** Rough size for buffer accounting. */
  bytes: number;
  /** Called once the record's fate is known: shipped (no argument) or dropped (why). Set for SaveLogs with wait_shipped. */
  settled?: ((dropped?: string) => void) | undefined;
}

/** Who is calling: a verified user (ids come from the token) or one of our services (ids as sent). */
export type Caller = { user: { companyId: string; userId: string } } | { service: string };

const levelOf: Record<number, Level> = {
  [LogLevel.UNSPECIFIED]: "info",
  [LogLevel.DEBUG]: "debug",
  [LogLevel.INFO]: "info",
  [LogLevel.WARN]: "warn",
  [LogLevel.ERROR]: "error",
  [LogLevel.FATAL]: "fatal",
};

const nameShape = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const traceShape = /^[0-9a-f]{32}$/i;
const keyShape = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** Cuts a string to at most `max` UTF-8 bytes on a character boundary, marking the cut. */
export function truncateBytes(s: string, max: number): string {
  if (Buffer.byteLength(s, "utf8") <= max) return s;
  const buf = Buffer.from(s, "utf8").subarray(0, max - 3);
  let text = buf.toString("utf8");
  if (text.endsWith("\uFFFD")) text = text.slice(0, -1);
  return `${text}…`;
}

export function validateSaveLogs(req: SaveLogsRequest, caller: Caller, nowMs: number): LogRecord[] {
  if (req.entries.length === 0) throw invalid([{ field: "entries", description: `send 1..${limits.entries} entries` }]);
  if (req.entries.length > limits.entries) {
    throw new AppError("too_large", `entries: ${req.entries.length} entries in one call; at most ${limits.entries} are allowed — split the batch`, [
      { field: "entries", description: `at most ${limits.entries}` },
    ]);
  }
  const violations: Violation[] = [];
  const records: LogRecord[] = [];
  req.entries.forEach((e, i) => {
    const at = (f: string) => `entries[${i}].${f}`;
    const bad = (field: string, description: string) => violations.push({ field: at(field), description });
    if (!e.name) bad("name", "is required: the service that logged it, e.g. \"chats\"");
    else if (e.name.length > limits.nameMax || !nameShape.test(e.name)) bad("name", `must be 1..${limits.nameMax} letters, digits, '.', '_' or '-'`);
    const level = levelOf[e.level];
    if (!level) bad("level", `is ${e.level}; use one of LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR, LOG_LEVEL_FATAL`);
    if (e.message.trim() === "") bad("message", "is required (empty)");
    if (e.traceId && (!traceShape.test(e.traceId) || /^0+$/.test(e.traceId))) bad("traceId", "must be a W3C trace id: 32 hex digits, not all zero");
    let companyId = e.companyId;
    let userId = e.userId;
    if ("user" in caller) {
      companyId = caller.user.companyId; // a user cannot log as another tenant or user
      userId = caller.user.userId;
    } else {
      if (companyId && !uuid.test(companyId)) bad("companyId", "must be a UUID or empty");
      if (userId && !uuid.test(userId)) bad("userId", "must be a UUID or empty");
    }
    const keys = Object.keys(e.attributes);
    if (keys.length > limits.attributes) bad("attributes", `has ${keys.length} pairs; at most ${limits.attributes} are allowed`);
    const attributes: Record<string, string> = {};
    for (const k of keys) {
      if (k.length > limits.attributeKeyMax || !keyShape.test(k)) {
        bad(`attributes[${JSON.stringify(k.slice(0, 40))}]`, `keys must be 1..${limits.attributeKeyMax} letters, digits, '_', '.', '-', not starting with a digit`);
        continue;
      }
      attributes[k] = truncateBytes(e.attributes[k]!, limits.attributeValueMaxBytes);
    }
    let timeMs = nowMs;
    let timeNs = BigInt(nowMs) * 1_000_000n;
    if (e.time) {
      timeMs = Number(e.time.seconds) * 1000 + Math.floor(e.time.nanos / 1e6);
      timeNs = e.time.seconds * 1_000_000_000n + BigInt(e.time.nanos);
      if (timeMs < nowMs - limits.maxAgeMs) bad("time", "is more than 7 days old; Loki would refuse it");
      else if (timeMs > nowMs + limits.maxAheadMs) bad("time", "is more than 10 minutes in the future; check the sender's clock");
    }
    if (violations.length) return;
    const message = truncateBytes(e.message, limits.messageMaxBytes);
    let bytes = 200 + Buffer.byteLength(message) + e.name.length;
    for (const [k, v] of Object.entries(attributes)) bytes += k.length + Buffer.byteLength(v) + 8;
    records.push({ name: e.name, level: level!, message, companyId, userId, traceId: e.traceId.toLowerCase(), attributes, timeNs, bytes });
  });
  if (violations.length) {
    const shown = violations.slice(0, limits.violationsShown);
    if (violations.length > shown.length) shown.push({ field: "entries", description: `${violations.length - shown.length} more problems not listed` });
    throw invalid(shown);
  }
  return records;
}
