/** The logs service's own error reports, straight into its sink. */
import type { ErrorReport } from "@crm/kit";
import { truncateBytes, limits, type LogRecord } from "./validation.js";

export function recordOfReport(r: ErrorReport): LogRecord {
  const message = truncateBytes(r.message, limits.messageMaxBytes);
  const attributes = Object.fromEntries(Object.entries(r.attributes).slice(0, limits.attributes).map(([k, v]) => [k, truncateBytes(v, limits.attributeValueMaxBytes)]));
  let bytes = 200 + Buffer.byteLength(message);
  for (const [k, v] of Object.entries(attributes)) bytes += k.length + Buffer.byteLength(v) + 8;
  return {
    name: r.service,
    level: r.level,
    message,
    companyId: r.companyId ?? "",
    userId: r.userId ?? "",
    traceId: r.traceId ?? "",
    attributes,
    timeNs: BigInt(r.time.getTime()) * 1_000_000n,
    bytes,
  };
}
