/**
 * An auth process for key-rotation.test.ts: runService and auth's settings as main.ts runs them
 * (JWT_PRIVATE_KEY_FILE, JWT_PUBLIC_KEYS_FILE, CREDENTIAL_RELOAD_INTERVAL_MS), with dbservice
 * replaced by the in-memory store of fake-store.ts holding one user (ROTATION_EMAIL,
 * ROTATION_PASSWORD), so the test can log in, refresh and check without a database.
 */
import { createClient } from "@connectrpc/connect";
import { memoryCounter, runService } from "@crm/kit";
import { inMemory } from "@crm/testkit";
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { build } from "../src/build.js";
import { authSettings } from "../src/main.js";
import { hashPassword } from "../src/passwords.js";
import { fakeAuthStore, fakeDirectory } from "./fake-store.js";

void runService("auth", async (b) => {
  const { cfg, keys } = authSettings();
  const world = inMemory({ verifier: b.verifier });
  const dir = fakeDirectory(Date.now);
  dir.addUser(dir.addCompany(), { role: "owner", email: process.env.ROTATION_EMAIL!, passwordHash: await hashPassword(process.env.ROTATION_PASSWORD!) });
  const db = world.serve((r) => r.service(DbAuthService, fakeAuthStore(dir)), { from: "auth" });
  return build({ ...b, cfg, keys, peer: (_service, desc) => createClient(desc, db), counter: memoryCounter(), publicUrl: () => "https://crm.test" });
});
