/** Setting up CRM data for a scenario through the public API (Connect JSON). */
import { connectJson } from "./app.js";

export const benchPassword = "correct horse battery staple 42";

export interface Owner {
  email: string;
  token: string;
  userId: string;
  companyId: string;
}

export async function registerOwner(url: string, tag: string): Promise<Owner> {
  const email = `owner.${tag}@bench.example`;
  const r = await connectJson<{ accessToken: string; userId: string; companyId: string }>(url, "crm.auth.v1.AuthService/RegisterCompany", {
    companyName: `Bench ${tag}`, email, password: benchPassword, ownerName: "Bench Owner",
  });
  return { email, token: r.accessToken, userId: r.userId, companyId: r.companyId };
}

export async function createChat(url: string, token: string, name: string, memberIds: string[] = []): Promise<string> {
  const r = await connectJson<{ chat: { chatId: string } }>(url, "crm.chat.v1.ChatService/CreateChat", { name, memberIds }, token);
  return r.chat.chatId;
}

export const uniqueTag = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
