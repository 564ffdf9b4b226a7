/**
 * Simulated users' accounts: companies of up to 1000 users (RegisterCompany for the owner,
 * AdminService/AddUsers for the rest), chats of 10, and access tokens signed with the system's
 * own key (DATA_DIR/keys or the cluster's keys) — 5,000 logins would cost minutes of argon2
 * (the login scenario measures that), and what is measured here is the steady state.
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

export async function createUsers(o: { url: string; count: number; chatSize: number; keys: { privateKeyFile: string; jwksFile: string; kid?: string }; log: (m: string) => void }): Promise<SimUser[]> {
  const key = await loadSigningKey(o.keys.privateKeyFile, o.keys.kid, readJwks(o.keys.jwksFile));
  const issuer = createTokenIssuer({ key, issuer: "crm-auth", audience: "crm-api", accessTtlSeconds: 3600 });
  const users: SimUser[] = [];
  const tag = uniqueTag();
  for (let company = 0; users.length < o.count; company++) {
    const owner = await registerOwner(o.url, `${tag}c${company}`);
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
  return users;
}

export const writeUsers = (file: string, users: SimUser[]) => writeFileSync(file, JSON.stringify(users));
