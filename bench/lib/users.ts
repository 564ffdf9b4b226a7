/**
 * Simulated users' accounts: companies of up to 1000 users (RegisterCompany for the owner,
 * AdminService/AddUsers for the rest), chats of 10, and access tokens signed with the system's
 * own key (DATA_DIR/keys or the cluster's keys) — 5,000 logins would cost minutes of argon2
 * (the login scenario measures that), and what is measured here is the steady state.
 * With `board`, the users also get deal boards for their CRM work: each sales team of
 * `board.teamSize` users of a company shares a pipeline of four stages holding `board.deals` deals,
 * and members may change every deal (PermissionService).
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
  /** The key of the user's team board in SimWorld.boards (with the `board` option). */
  board?: string;
}

/** A team's deal board: its pipeline, the stages in order, and the deals on it. */
export interface Board {
  pipelineId: string;
  stageIds: string[];
  dealIds: string[];
}

export interface SimWorld {
  users: SimUser[];
  /** By SimUser.board; empty without the `board` option. */
  boards: Record<string, Board>;
}

/** Creates a board: the pipeline and `deals` deals spread over its stages (8 in flight). */
async function createBoard(url: string, token: string, name: string, deals: number): Promise<Board> {
  const stages = ["New", "Qualified", "Proposal", "Negotiation"].map((name, i) => ({ name, probability: 10 + 25 * i }));
  const { pipeline } = await connectJson<{ pipeline: { id: string; stages: { id: string }[] } }>(url, "crm.records.v1.PipelineService/CreatePipeline", { pipeline: { name, stages } }, token);
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

export async function createUsers(o: { url: string; count: number; chatSize: number; keys: { privateKeyFile: string; jwksFile: string; kid?: string }; board?: { teamSize: number; deals: number }; log: (m: string) => void }): Promise<SimWorld> {
  const key = await loadSigningKey(o.keys.privateKeyFile, o.keys.kid, readJwks(o.keys.jwksFile));
  const issuer = createTokenIssuer({ key, issuer: "crm-auth", audience: "crm-api", accessTtlSeconds: 3600 });
  const users: SimUser[] = [];
  const boards: Record<string, Board> = {};
  const tag = uniqueTag();
  for (let company = 0; users.length < o.count; company++) {
    const owner = await registerOwner(o.url, `${tag}c${company}`);
    const want = Math.min(1000, o.count - users.length);
    if (o.board) {
      await connectJson(o.url, "crm.records.v1.PermissionService/SetMembersEditAll", { objectType: "OBJECT_TYPE_DEAL", allowed: true }, owner.token);
      for (let team = 0; team * o.board.teamSize < want; team++) boards[`${owner.companyId}:${team}`] = await createBoard(o.url, owner.token, `Team ${team} board`, o.board.deals);
    }
    const rows = Array.from({ length: want }, (_, i) => ({ email: `u${i}.c${company}.${tag}@bench.example`, name: `User ${i}` }));
    const added = await connectJson<{ results: { userId?: string; status?: string; reason?: string }[] }>(o.url, "crm.admin.v1.AdminService/AddUsers", { users: rows }, owner.token);
    const ids = added.results.map((r) => r.userId).filter((x): x is string => !!x);
    if (ids.length !== want) throw new Error(`AddUsers created ${ids.length} of ${want} users: ${JSON.stringify(added.results.find((r) => !r.userId))}`);
    for (let i = 0; i < ids.length; i += o.chatSize) {
      const members = ids.slice(i, i + o.chatSize);
      const chatId = await createChat(o.url, owner.token, `team ${i / o.chatSize}`, members);
      for (const [k, userId] of members.entries()) {
        const { token } = await issuer.issueAccess({ userId, companyId: owner.companyId, role: "member", sessionId: randomUUID() });
        const board = o.board ? `${owner.companyId}:${Math.floor((i + k) / o.board.teamSize)}` : undefined;
        users.push({ userId, companyId: owner.companyId, token, chatId, ...(board ? { board } : {}) });
      }
    }
    o.log(`users: ${users.length} of ${o.count}`);
  }
  return { users, boards };
}

export const writeUsers = (file: string, world: SimWorld) => writeFileSync(file, JSON.stringify(world));
