/**
 * Fills a company with a realistic CRM demo through the real API, so a newcomer sees a living
 * CRM: custom fields, a sales pipeline, companies, people, deals across its stages (some won,
 * some lost), tasks (open, overdue, done) and notes, each change on the records' timelines.
 *
 *   npm run demo -- --email owner@example.com [--password …] [--url http://127.0.0.1:8080] [--company "Demo Inc"]
 *
 * It logs in with the e-mail and password; when no such account exists it registers a new company
 * with them (the password defaults to "demo password 2468"). Through the gateway use
 * --url https://localhost:8443 (NODE_EXTRA_CA_CERTS=certs/ca.crt for the dev CA). Run it once per
 * company: a second run sees the demo's companies and stops.
 */
import { parseArgs } from "node:util";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { DescService, JsonObject } from "@bufbuild/protobuf";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ObjectType, Operator } from "@crm/gen/crm/records/v1/common_pb";
import { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { FieldService, FieldType } from "@crm/gen/crm/records/v1/field_pb";
import { NoteService } from "@crm/gen/crm/records/v1/note_pb";
import { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import { PipelineService, StageKind } from "@crm/gen/crm/records/v1/pipeline_pb";
import { ReportService } from "@crm/gen/crm/records/v1/report_pb";
import { TaskService } from "@crm/gen/crm/records/v1/task_pb";

const { values: args } = parseArgs({
  options: {
    email: { type: "string" },
    password: { type: "string", default: "demo password 2468" },
    url: { type: "string", default: "http://127.0.0.1:8080" },
    company: { type: "string", default: "Demo Inc" },
    help: { type: "boolean", default: false },
  },
});
if (args.help || !args.email) {
  console.log('usage: npm run demo -- --email owner@example.com [--password "…"] [--url http://127.0.0.1:8080] [--company "Demo Inc"]');
  process.exit(args.help ? 0 : 2);
}

const DAY = 86_400_000;
const at = (days: number) => timestampFromDate(new Date(Date.now() + days * DAY));
const date = (days: number) => new Date(Date.now() + days * DAY).toISOString().slice(0, 10);
/** A fixed sequence of choices, so every run makes the same demo. */
let seed = 42;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

const COMPANIES: [name: string, domain: string, industry: string, size: number, city: string][] = [
  ["Globex", "globex.example", "Manufacturing", 1200, "Springfield"],
  ["Initech", "initech.example", "Software", 340, "Austin"],
  ["Umbrella Health", "umbrella-health.example", "Healthcare", 5200, "Raccoon City"],
  ["Stark Logistics", "stark-logistics.example", "Logistics", 860, "Long Island"],
  ["Wayne Foods", "wayne-foods.example", "Food & Beverage", 2100, "Gotham"],
  ["Acme Retail", "acme-retail.example", "Retail", 15000, "Phoenix"],
  ["Soylent Energy", "soylent-energy.example", "Energy", 430, "New York"],
  ["Hooli Cloud", "hooli-cloud.example", "Software", 9800, "Palo Alto"],
  ["Vandelay Imports", "vandelay.example", "Wholesale", 45, "New York"],
  ["Pied Piper", "piedpiper.example", "Software", 28, "Palo Alto"],
  ["Cyberdyne Systems", "cyberdyne.example", "Robotics", 760, "Sunnyvale"],
  ["Oceanic Airlines", "oceanic-air.example", "Travel", 7400, "Sydney"],
];
const FIRST = ["Ann", "Ben", "Chloé", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi", "Lars", "Maya", "Nikolai", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tara"];
const LAST = ["Lee", "Müller", "Novak", "Okafor", "Petrov", "Rossi", "Sato", "Schmidt", "Silva", "Tanaka", "Walsh", "Ivanova", "García", "Chen", "Dubois"];
const TITLES = ["CTO", "Head of Procurement", "VP Sales", "Operations Manager", "CFO", "IT Director", "Buyer", "CEO"];
const DEAL_KINDS = ["Annual licence", "Pilot", "Rollout", "Renewal", "Expansion", "Support plan", "Training package"];
const SOURCES = ["Website", "Referral", "Event", "Outbound", "Partner"];
const NOTES = [
  "Intro call went well. They run **three warehouses** and want one view of stock.\n\nNext: send the pricing sheet.",
  "Budget is approved for Q3. Decision maker is the CFO; legal review takes ~2 weeks.",
  "Demo feedback:\n- loved the kanban board\n- asked about SSO\n- wants an export to their ERP",
  "Competitor is cheaper but lacks the audit log. We should stress compliance.",
  "Champion moved to another team — need a new contact in procurement.",
  "Signed! Kick-off planned for next Monday. Onboarding checklist shared.",
  "Lost on price. Keep in touch for next year's budget round.",
];
const TASKS = ["Send the pricing sheet", "Book a demo", "Follow up on the proposal", "Prepare the contract", "Call about the renewal", "Share the onboarding checklist", "Ask for a reference"];

async function session(baseUrl: string) {
  const transport = createConnectTransport({ baseUrl, httpVersion: "1.1" });
  const auth = createClient(AuthService, transport);
  let token: string;
  try {
    token = (await auth.login({ email: args.email!, password: args.password! })).accessToken;
    console.log(`logged in as ${args.email}`);
  } catch (err) {
    if (ConnectError.from(err).code !== Code.Unauthenticated) throw err;
    const reg = await auth.registerCompany({ companyName: args.company!, email: args.email!, password: args.password!, ownerName: "Demo Owner" });
    token = reg.accessToken;
    console.log(`registered ${args.company} with the owner ${args.email} (password: ${args.password})`);
  }
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const authed = createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors: [bearer] });
  return <S extends DescService>(s: S): Client<S> => createClient(s, authed);
}

async function main() {
  const client = await session(args.url!);
  const companies = client(CompanyService);
  const people = client(PersonService);
  const pipelines = client(PipelineService);
  const deals = client(DealService);
  const fields = client(FieldService);
  const tasks = client(TaskService);
  const notes = client(NoteService);

  const existing = await companies.listCompanies({ filter: { node: { case: "condition", value: { field: "domain", operator: Operator.EQUALS, values: [COMPANIES[0]![1]] } } }, showDeleted: true });
  if (existing.companies.length) {
    console.log(`this company has the demo already (${COMPANIES[0]![0]} exists): nothing to do`);
    return;
  }

  // Custom fields: a tier and a renewal date on companies, a profile link on people, a source,
  // a next step and a champion's score on deals.
  const field = (objectType: ObjectType, key: string, label: string, type: FieldType, extra: Record<string, unknown> = {}) =>
    fields.createField({ field: { objectType, key, label, type, ...extra } }).catch((err: unknown) => {
      if (ConnectError.from(err).code !== Code.AlreadyExists) throw err;
    });
  await field(ObjectType.COMPANY, "tier", "Tier", FieldType.SELECT, { options: [{ value: "Gold" }, { value: "Silver" }, { value: "Bronze" }] });
  await field(ObjectType.COMPANY, "renewal_date", "Renewal date", FieldType.DATE);
  await field(ObjectType.PERSON, "linkedin", "LinkedIn", FieldType.URL);
  await field(ObjectType.DEAL, "source", "Source", FieldType.SELECT, { options: SOURCES.map((value) => ({ value })) });
  await field(ObjectType.DEAL, "next_step", "Next step", FieldType.TEXT);
  await field(ObjectType.DEAL, "fit_score", "Fit score", FieldType.NUMBER);

  // "Sales", or "Demo sales" when the company has its own "Sales" already (names are unique).
  const salesPipeline = (name: string) =>
    pipelines.createPipeline({
      pipeline: {
        name,
        stages: [
          { name: "Lead", probability: 10 },
          { name: "Qualified", probability: 25 },
          { name: "Proposal", probability: 50 },
          { name: "Negotiation", probability: 75 },
          { name: "Won", probability: 100, kind: StageKind.WON },
          { name: "Lost", probability: 0, kind: StageKind.LOST },
        ],
      },
    });
  const pipeline = (await salesPipeline("Sales").catch((err: unknown) => {
    if (ConnectError.from(err).code !== Code.AlreadyExists) throw err;
    return salesPipeline("Demo sales");
  })).pipeline!;
  const stage = Object.fromEntries(pipeline.stages.map((s) => [s.name, s.id]));

  // Reports in US dollars: the deals below are in USD and EUR (kept when the company has a base currency already).
  const reports = client(ReportService);
  if (!(await reports.getCurrencySettings({})).baseCurrencyCode) {
    await reports.setBaseCurrency({ baseCurrencyCode: "USD" });
    await reports.setExchangeRate({ currencyCode: "EUR", rate: "1.08" });
  }

  const made: { id: string; name: string; domain: string; people: string[] }[] = [];
  for (const [name, domain, industry, size, city] of COMPANIES) {
    const custom: JsonObject = { tier: pick(["Gold", "Silver", "Bronze"]), renewal_date: date(Math.floor(rnd() * 300) + 20) };
    const c = (await companies.createCompany({ company: { name, domain, industry, size, address: `${Math.floor(rnd() * 200) + 1} Main Street\n${city}`, tags: rnd() < 0.3 ? ["key account"] : [], custom } })).company!;
    const staff: string[] = [];
    for (let i = 0; i < 2 + Math.floor(rnd() * 3); i++) {
      const first = pick(FIRST);
      const last = pick(LAST);
      const handle = `${first}.${last}`.toLowerCase().normalize("NFD").replace(/[^a-z.]/g, "");
      const p = (await people.createPerson({
        person: {
          firstName: first,
          lastName: last,
          emails: [`${handle}${made.length}${i}@${domain}`],
          phones: [`+1415555${String(1000 + made.length * 10 + i).slice(-4)}`],
          jobTitle: pick(TITLES),
          companies: [{ companyId: c.id, role: i === 0 ? "decision maker" : "" }],
          custom: { linkedin: `https://www.linkedin.com/in/${handle}` },
        },
      })).person!;
      staff.push(p.id);
    }
    made.push({ id: c.id, name, domain, people: staff });
  }

  // Deals across the board: most open, some won, some lost; kanban order as created.
  const plan = ["Lead", "Lead", "Lead", "Qualified", "Qualified", "Qualified", "Proposal", "Proposal", "Proposal", "Negotiation", "Negotiation", "Won", "Won", "Won", "Lost", "Lost"];
  const dealIds: { id: string; company: (typeof made)[number]; stage: string }[] = [];
  for (const [i, target] of plan.entries()) {
    const company = made[i % made.length]!;
    const d = (await deals.createDeal({
      deal: {
        name: `${company.name} — ${pick(DEAL_KINDS)}`,
        pipelineId: pipeline.id,
        amountMinor: BigInt(Math.round((2_000 + rnd() * 120_000) / 100) * 100 * 100),
        currencyCode: pick(["USD", "EUR", "USD"]),
        expectedCloseDate: date(Math.floor(rnd() * 120) - 10),
        companyId: company.id,
        personIds: company.people.slice(0, 2),
        custom: { source: pick(SOURCES), fit_score: Math.round(rnd() * 100), next_step: target === "Won" || target === "Lost" ? "" : pick(TASKS) },
      },
    })).deal!;
    // Through the stages one by one, as a salesperson would.
    for (const s of ["Qualified", "Proposal", "Negotiation"]) {
      if (target === "Lead" || (target === "Qualified" && s !== "Qualified") || (target === "Proposal" && s === "Negotiation")) break;
      await deals.moveDeal({ id: d.id, stageId: stage[s]! });
      if (target === s) break;
    }
    if (target === "Won" || target === "Lost") await deals.moveDeal({ id: d.id, stageId: stage[target]!, lostReason: target === "Lost" ? pick(["price", "timing", "went with a competitor"]) : "" });
    dealIds.push({ id: d.id, company, stage: target });
  }

  // Tasks: some overdue, some due this week, some done; notes on deals and companies.
  for (const [i, d] of dealIds.entries()) {
    if (d.stage !== "Won" && d.stage !== "Lost") {
      const t = (await tasks.createTask({
        task: { title: `${pick(TASKS)} (${d.company.name})`, dueTime: at(i % 4 === 0 ? -2 : (i % 7) + 1), links: [{ objectType: ObjectType.DEAL, id: d.id }, { objectType: ObjectType.PERSON, id: d.company.people[0]! }] },
      })).task!;
      if (i % 5 === 1) await tasks.updateTask({ task: { id: t.id, done: true }, updateMask: { paths: ["done"] } });
    }
    if (i % 2 === 0 || d.stage === "Won" || d.stage === "Lost") {
      const text = d.stage === "Won" ? NOTES[5]! : d.stage === "Lost" ? NOTES[6]! : NOTES[i % 5]!;
      await notes.createNote({ note: { text, links: [{ objectType: ObjectType.DEAL, id: d.id }, { objectType: ObjectType.COMPANY, id: d.company.id }] } });
    }
  }

  const count = async (list: () => Promise<{ totalSize: bigint }>) => (await list()).totalSize;
  console.log(
    `demo ready: ${await count(() => companies.listCompanies({ exactTotal: true }))} companies, ${await count(() => people.listPeople({ exactTotal: true }))} people, ` +
      `${await count(() => deals.listDeals({ exactTotal: true }))} deals in "${pipeline.name}", ${await count(() => tasks.listTasks({ exactTotal: true }))} tasks, ` +
      `${await count(() => notes.listNotes({ exactTotal: true }))} notes — open ${args.url} and log in as ${args.email}`,
  );
}

main().catch((err: unknown) => {
  const e = ConnectError.from(err);
  console.error(`demo failed: ${e.code === Code.Unavailable ? `nothing answers at ${args.url} (start the CRM with npm start, or pass --url)` : e.message}`);
  process.exit(1);
});
