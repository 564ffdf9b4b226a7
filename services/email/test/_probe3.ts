// CPU per RPC on both sides (test client + dbservice child), and per SMTP message (client + server in this process).
import { DbAuthService } from "@crm/gen/crm/db/v1/db_auth_pb";
import { DbEmailService } from "@crm/gen/crm/db/v1/db_email_pb";
import { EmailKind } from "@crm/gen/crm/email/v1/email_pb";
import { readFileSync } from "node:fs";
import { startMiniCluster } from "./processes.js";
const cpuOf = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" "); return (Number(f[11]) + Number(f[12])) * 10; };
const cluster = await startMiniCluster();
try {
  const reg = await cluster.client(DbAuthService, "auth").registerCompany({ companyName: "x", locale: "en", ownerEmail: "o@x.y", ownerName: "o", passwordHash: "$argon2id$x", session: { refreshHash: new Uint8Array(32), expiresAt: { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600), nanos: 0 } } });
  const db = cluster.client(DbEmailService, "email");
  const q = cluster.client(DbEmailService, "auth");
  const r = await q.queueEmail({ companyId: reg.companyId, email: { to: "a@b.co", subject: "s", text: "t", kind: EmailKind.CUSTOM } });
  const pid = cluster.dbservice.child.pid!;
  for (const round of [1, 2, 3]) {
    const n = 500;
    const c0 = cpuOf(pid); const s0 = process.cpuUsage(); const t0 = performance.now();
    for (let i = 0; i < n; i++) await db.getEmailStatusDB({ emailId: r.emailId, companyId: reg.companyId });
    const s = process.cpuUsage(s0);
    console.log(`round ${round}: ${((performance.now() - t0) / n).toFixed(2)} ms wall, dbservice ${((cpuOf(pid) - c0) / n).toFixed(2)} ms cpu, client ${((s.user + s.system) / 1000 / n).toFixed(2)} ms cpu per GetEmailStatusDB`);
  }
} finally {
  await cluster.dbservice.kill("SIGTERM");
  await cluster.close();
}
