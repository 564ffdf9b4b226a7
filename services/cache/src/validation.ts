/** Request checks of the cache service (pure). */
import { AppError, invalid, type Violation } from "@crm/kit";

export const limits = {
  keyMaxBytes: 512,
  valueMaxBytes: 1024 * 1024,
  ttlMaxSeconds: 30 * 24 * 3600,
};

export interface CacheLimits {
  maxTtlSeconds: number;
  maxValueBytes: number;
}

// C0/C1 control characters and DEL.
const control = /[\u0000-\u001f\u007f-\u009f]/;
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function keyViolation(key: string): Violation | undefined {
  if (key.length === 0) return { field: "key", description: "is required (1..512 bytes of UTF-8)" };
  const bytes = Buffer.byteLength(key, "utf8");
  if (bytes > limits.keyMaxBytes) return { field: "key", description: `is ${bytes} bytes; at most ${limits.keyMaxBytes} are allowed` };
  if (control.test(key)) return { field: "key", description: "must not contain control characters (newlines, tabs, NUL…)" };
  if (loneSurrogate.test(key)) return { field: "key", description: "must be valid UTF-8 (it holds a lone surrogate)" };
  return undefined;
}

/** The key alone (Get, Delete). */
export function validateKey(key: string): string {
  const v = keyViolation(key);
  if (v) throw invalid([v]);
  return key;
}

export function validateSave(req: { key: string; value: Uint8Array; ttlSeconds: number }, l: CacheLimits): { key: string; value: Uint8Array; ttlSeconds: number } {
  const violations: Violation[] = [];
  const k = keyViolation(req.key);
  if (k) violations.push(k);
  if (req.ttlSeconds <= 0) violations.push({ field: "ttlSeconds", description: `is required: a number of seconds 1..${l.maxTtlSeconds}` });
  else if (req.ttlSeconds > l.maxTtlSeconds) violations.push({ field: "ttlSeconds", description: `is ${req.ttlSeconds}; at most ${l.maxTtlSeconds} seconds are allowed` });
  if (violations.length) throw invalid(violations);
  if (req.value.byteLength > l.maxValueBytes) {
    throw new AppError("too_large", `value: is ${req.value.byteLength} bytes; at most ${l.maxValueBytes} are allowed (store large data elsewhere and cache a reference)`, [
      { field: "value", description: `at most ${l.maxValueBytes} bytes` },
    ]);
  }
  return { key: req.key, value: req.value, ttlSeconds: req.ttlSeconds };
}
