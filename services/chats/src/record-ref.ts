/**
 * Request checks of SetChatRecord and ListChats' record filter (the reference's rule is
 * rules.ts chatRecordOf, shared with the store). Pure: no I/O.
 */
import { invalid, isUuid, type Violation } from "@crm/kit";
import { chatRecordOf } from "./rules.js";

/** SetChatRecord's request checks: the chat id and the record (unset or {}: detach). */
export function validateSetChatRecord<R extends { objectType: number; id: string }>(req: { chatId: string; record?: R | undefined }): { chatId: string; record: R | undefined } {
  const v: Violation[] = [];
  if (!isUuid(req.chatId)) v.push({ field: "chatId", description: req.chatId ? `must be a chat id (UUID), got ${JSON.stringify(req.chatId.slice(0, 40))}` : "is required: the chat id (UUID)" });
  chatRecordOf(req.record, "record", v);
  if (v.length) throw invalid(v);
  return { chatId: req.chatId, record: req.record };
}

/** ListChats' record filter, checked. */
export function validateRecordFilter<R extends { objectType: number; id: string }>(record: R | undefined): R | undefined {
  const v: Violation[] = [];
  chatRecordOf(record, "record", v);
  if (v.length) throw invalid(v);
  return record;
}
