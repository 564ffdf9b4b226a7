/**
 * Simulated users' accounts: companies of up to 1000 users (RegisterCompany for the owner,
 * AdminService/AddUsers for the rest), chats of 10, and access tokens signed with the system's
 * own key (DATA_DIR/keys or the cluster's keys) — 5,000 logins would cost minutes of argon2
 * (the login scenario measures that), and what is measured here is the steady state.
 * With `board`, each company also gets a deal board for its users' CRM work: a pipeline of four
 * stages holding `board.deals` deals, and members allowed to change every deal (PermissionService).
 */
import { writeFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { connectJson } from "./app.js";
import { createChat, registerOwner, uniqueTag } from "./crm.js";
import { readJwks } from "@crm/kit";
import { createTokenIssuer, loadSigningKey } from "@crm/auth/tokens";

export interface SimUser {
  userId: string;
  companyId: string;
  token: string;
  chatId: string;
}

/** A company's deal board: its pipeline, the stages in order, and the deals on it. */
export interface Board {
  pipelineId: string;
  stageIds: string[];
  dealIds: string[];
}

export interface SimWorld {
  users: SimUser[];
  /** By company id; empty without the `board` option. */
  boards: Record<string, Board>;
}

/** Creates a company's board: the pipeline, members' right to change deals, `deals` deals spread over the stages (8 in flight). */
async function createBoard(url: string, token: string, deals: number): Promise<Board> {
  const stages = ["New", "Qualified", "Proposal", "Negotiation"].map((name, i) => ({ name, probability: 10 + 25 * i }));
  const { pipeline } = await connectJson<{ pipeline: { id: string; stages: { id: string }[] } }>(url, "crm.records.v1.PipelineService/CreatePipeline", { pipeline: { name: "Sales board", stages } }, token);
  await connectJson(url, "crm.records.v1.PermissionService/SetMembersEditAll", { objectType: "OBJECT_TYPE_DEAL", allowed: true }, token);
  const stageIds = pipeline.stages.map((s) => s.id);
  const dealIds: string[] = new Array(deals);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < deals; i = next++) {
      const deal = { name: `Deal ${i}`, stageId: stageIds[i % stageIds.length], amountMinor: String(1000 * (1 + (i % 97))), currencyCode: "EUR" };
      dealIds[i] = (await connectJson<{ deal: { id: string } }>(url, "crm.records.v1.DealService/CreateDeal", { deal }, token)).deal.id;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return { pipelineId: pipeline.id, stageIds, dealIds };
}

export async function createUsers(o: { url: string; count: number; chatSize: number; keys: { privateKeyFile: string; jwksFile: string; kid?: string }; board?: { deals: number }; log: (m: string) => void }): Promise<SimWorld> {
  const key = await loadSigningKey(o.keys.privateKeyFile, o.keys.kid, readJwks(o.keys.jwksFile));
  const issuer = createTokenIssuer({ key, issuer: "crm-auth", audience: "crm-api", accessTtlSeconds: 3600 });
  const users: SimUser[] = [];
  const boards: Record<string, Board> = {};
  const tag = uniqueTag();
  for (let company = 0; users.length < o.count; company++) {
    const owner = await registerOwner(o.url, `${tag}c${company}`);
    if (o.board) boards[owner.companyId] = await createBoard(o.url, owner.token, o.board.deals);
    const want = Math.min(1000, o.count - users.length);
    const rows = Array.from({ length: want }, (_, i) => ({ email: `u${i}.c${company}.${tag}@bench.example`, name: `User ${i}` }));
    const added = await connectJson<{ results: { userId?: string; status?: string; reason?: string }[] }>(o.url, "crm.admin.v1.AdminService/AddUsers", { users: rows }, owner.token);
    const ids = added.results.map((r) => r.userId).filter((x): x is string => !!x);
    if (ids.length !== want) throw new Error(`AddUsers created ${ids.length} of ${want} users: ${JSON.stringify(added.results.find((r) => !r.userId))}`);
    for (let i = 0; i < ids.length; i += o.chatSize) {
      const members = ids.slice(i, i + o.chatSize);
      const chatId = await createChat(o.url, owner.token, `team ${i / o.chatSize}`, members);
      for (const userId of members) {
        const { token } = await issuer.issueAccess({ userId, companyId: owner.companyId, role: "member", sessionId: randomUUID() });
        users.push({ userId, companyId: owner.companyId, token, chatId });
      }
    }
    o.log(`users: ${users.length} of ${o.count}`);
  }
  return { users, boards };
}

export const writeUsers = (file: string, world: SimWorld) => writeFileSync(file, JSON.stringify(world));
