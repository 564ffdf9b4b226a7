/**
 * The chats domain's rules used on both sides: by the service's request checks (validation.ts,
 * chat-service.ts) and by its store (services/chats/store), which checks again what it is given
 * (dbservice trusts no caller's input). Pure: no I/O.
 */
import { AppError, type Violation } from "@crm/kit";

export const limits = {
  name: 200,
  content: 4000,
  clientMessageId: 64,
  members: 1000,
  pageSize: 200,
  defaultPageSize: 50,
} as const;

/** Length in characters (code points), as PostgreSQL counts them. */
export const chars = (s: string) => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

/** A chat that does not exist and one the caller is not a member of look the same. */
export const notFound = (chatId: string) => new AppError("not_found", `chat ${chatId} not found, or you are not a member of it`);

/** A message's text: trimmed, 1..limits.content characters, no NUL. */
export function contentViolations(raw: string): { content: string; violations: Violation[] } {
  const content = raw.trim();
  const violations: Violation[] = [];
  if (!content) violations.push({ field: "content", description: raw ? "must not be only whitespace" : `is required (1..${limits.content} characters)` });
  else if (chars(content) > limits.content) violations.push({ field: "content", description: `must be at most ${limits.content} characters after trimming (got ${chars(content)})` });
  else if (content.includes("\u0000")) violations.push({ field: "content", description: "must not contain NUL characters" });
  return { content, violations };
}
