/** Input rules for the chat RPCs. Pure functions: they return normalised values or throw `invalid` naming every bad field. */
import { invalid, isUuid, type Violation } from "@crm/kit";
import { chars, contentViolations, limits } from "./rules.js";

function id(v: Violation[], field: string, raw: string, what: string): string {
  if (!raw) v.push({ field, description: `is required: the ${what} id (UUID)` });
  else if (!isUuid(raw)) v.push({ field, description: `must be a ${what} id (UUID), got ${JSON.stringify(raw.slice(0, 40))}` });
  return raw;
}

function ids(v: Violation[], field: string, raw: string[], min: number): string[] {
  if (raw.length < min) v.push({ field, description: `needs at least ${min} user id` });
  else if (raw.length > limits.members) v.push({ field, description: `at most ${limits.members} users per call (got ${raw.length})` });
  const bad = raw.map((r, i) => [r, i] as const).filter(([r]) => !isUuid(r));
  if (bad.length) v.push({ field, description: `must be user ids (UUID); not ones: ${bad.slice(0, 5).map(([r, i]) => `[${i}] ${JSON.stringify(r.slice(0, 40))}`).join(", ")}` });
  return [...new Set(raw)];
}

function done<T>(v: Violation[], value: T): T {
  if (v.length) throw invalid(v);
  return value;
}

export function validateCreateChat(req: { name: string; memberIds: string[] }) {
  const v: Violation[] = [];
  const name = req.name.trim();
  if (!name) v.push({ field: "name", description: "is required (1..200 characters)" });
  else if (chars(name) > limits.name) v.push({ field: "name", description: `must be at most ${limits.name} characters (got ${chars(name)})` });
  const memberIds = ids(v, "memberIds", req.memberIds, 0);
  return done(v, { name, memberIds });
}

export function validateAddMembers(req: { chatId: string; userIds: string[] }) {
  const v: Violation[] = [];
  const chatId = id(v, "chatId", req.chatId, "chat");
  const userIds = ids(v, "userIds", req.userIds, 1);
  return done(v, { chatId, userIds });
}

export function validateRemoveMember(req: { chatId: string; userId: string }) {
  const v: Violation[] = [];
  const chatId = id(v, "chatId", req.chatId, "chat");
  const userId = id(v, "userId", req.userId, "user");
  return done(v, { chatId, userId });
}

export function validateListChats(req: { pageSize: number; pageToken: string }) {
  const v: Violation[] = [];
  if (req.pageSize < 0 || req.pageSize > limits.pageSize) v.push({ field: "pageSize", description: `must be 1..${limits.pageSize} (0 means ${limits.defaultPageSize}); got ${req.pageSize}` });
  if (req.pageToken.length > 512) v.push({ field: "pageToken", description: "is not a token from ListChats" });
  return done(v, { pageSize: req.pageSize || limits.defaultPageSize, pageToken: req.pageToken });
}

export function validateSendMessage(req: { chatId: string; content: string; clientMessageId: string }) {
  const v: Violation[] = [];
  const chatId = id(v, "chatId", req.chatId, "chat");
  const { content, violations } = contentViolations(req.content);
  v.push(...violations);
  if (chars(req.clientMessageId) > limits.clientMessageId) v.push({ field: "clientMessageId", description: `must be at most ${limits.clientMessageId} characters (a UUID is a good choice)` });
  return done(v, { chatId, content, clientMessageId: req.clientMessageId });
}

export function validateListMessages(req: { chatId: string; beforeSeq?: bigint | undefined; afterSeq?: bigint | undefined; limit: number }) {
  const v: Violation[] = [];
  const chatId = id(v, "chatId", req.chatId, "chat");
  if (req.beforeSeq !== undefined && req.afterSeq !== undefined) v.push({ field: "beforeSeq", description: "set at most one of beforeSeq (page backwards) and afterSeq (page forwards)" });
  if (req.beforeSeq !== undefined && req.beforeSeq < 1n) v.push({ field: "beforeSeq", description: `must be at least 1 (got ${req.beforeSeq})` });
  if (req.afterSeq !== undefined && req.afterSeq < 0n) v.push({ field: "afterSeq", description: `must not be negative (got ${req.afterSeq})` });
  if (req.limit < 0 || req.limit > limits.pageSize) v.push({ field: "limit", description: `must be 1..${limits.pageSize} (0 means ${limits.defaultPageSize}); got ${req.limit}` });
  return done(v, { chatId, beforeSeq: req.beforeSeq, afterSeq: req.afterSeq, limit: req.limit || limits.defaultPageSize });
}

export function validateSubscribe(req: { chatId: string; afterSeq?: bigint | undefined }) {
  const v: Violation[] = [];
  const chatId = id(v, "chatId", req.chatId, "chat");
  if (req.afterSeq !== undefined && req.afterSeq < 0n) v.push({ field: "afterSeq", description: `must not be negative (got ${req.afterSeq})` });
  return done(v, { chatId, afterSeq: req.afterSeq });
}

export function validateMarkRead(req: { chatId: string; seq: bigint }) {
  const v: Violation[] = [];
  const chatId = id(v, "chatId", req.chatId, "chat");
  if (req.seq < 0n) v.push({ field: "seq", description: `must not be negative (got ${req.seq})` });
  return done(v, { chatId, seq: req.seq });
}
