/**
 * The normal form of a login (an e-mail address or a phone number in E.164). Admin creates
 * accounts with it and auth looks them up with it: if the two normalised differently, a person
 * added by an admin could not log in. Logins are unique across the whole system in this form.
 */
import { z } from "zod";

const e164 = /^\+[1-9]\d{6,14}$/;

/** "+1 (415) 555-2671" → "+14155552671"; undefined when it is not an E.164 number. */
export function normalisePhone(raw: string): string | undefined {
  const compact = raw.replace(/[\s().-]/g, "");
  return e164.test(compact) ? compact : undefined;
}

const emailSchema = z.email();
/** Trimmed and lower-cased; undefined when it is not an e-mail address (or longer than 254). */
export function normaliseEmail(raw: string): string | undefined {
  const e = raw.trim().toLowerCase();
  return e.length <= 254 && emailSchema.safeParse(e).success ? e : undefined;
}
