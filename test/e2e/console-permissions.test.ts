/**
 * Who may change records, in a real browser against the all-in-one started here (issue 19): an
 * owner and a member of one company, each in a browser context of their own. The member sees a
 * company and a person of the owner's read-only (no Edit, a line saying why); the owner makes the
 * member the company's assignee with the picker on its page, and the member may then change it
 * (but not hand it on); the owner allows members to change every person on Admin → Permissions
 * (PermissionService), and the member's person page offers Edit, and saving works; taking it back
 * makes it read-only again. On the deal board and the lists the member is offered no move (drag
 * or ← ↑ ↓ →) and no Delete for records not theirs, each marked "Read only" with the reason above;
 * their own deal moves; with the deals and companies grants the controls appear. axe-core on each
 * screen, in English and Russian.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { until, emlTo, type TestApp } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import { AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import { AuthService, Role } from "@crm/gen/crm/auth/v1/auth_pb";
import { CompanyService } from "@crm/gen/crm/records/v1/company_pb";
import { PersonService } from "@crm/gen/crm/records/v1/person_pb";
import { PipelineService, StageKind } from "@crm/gen/crm/records/v1/pipeline_pb";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { PermissionService } from "@crm/gen/crm/records/v1/permission_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { Browser, Page } from "playwright-core";
import { axe, buildWebIfStale, chromiumSkip, launchChromium, logIn, watchProblems } from "./browser.ts";
import { PASSWORD, mailParts, registerOwner } from "../../services/admin/test/helpers.ts";

const skip = chromiumSkip();

let app: TestApp;
let browser: Browser;
let owner: Page;
let member: Page;
const problems: string[] = [];
const memberPassword = "a member's own long passphrase";
let companyId = "";
let personId = "";
let memberName = "";
let ownerToken = "";
let memberEmail = "";

async function newPage(): Promise<Page> {
  const context = await browser.newContext({ locale: "en-US", viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000); // the box is shared: generous, never a sleep
  page.setDefaultNavigationTimeout(60_000);
  watchProblems(page, problems);
  return page;
}

before(async () => {
  if (skip) return;
  buildWebIfStale();
  [app, browser] = await Promise.all([startTestApp(), launchChromium()]);
  const o = await registerOwner(app);
  const email = `mia-${o.tag}@example.com`;
  memberName = `Mia ${o.tag}`;
  await app.client(AdminService, { token: o.accessToken }).addUsers({ users: [{ email, name: memberName, role: Role.MEMBER, phone: "" }] });
  await until(`the invitation to ${email}`, () => emlTo(app, email).length >= 1, 20_000);
  const text = mailParts(emlTo(app, email).at(-1)!).text;
  const token = /accept-invite#token=(\S+)/.exec(text)?.[1];
  assert.ok(token, `the invitation links to accept-invite:\n${text}`);
  await app.client(AuthService).acceptInvite({ token, password: memberPassword });
  ownerToken = o.accessToken;
  memberEmail = email;
  // The owner's records, made through the API.
  companyId = (await app.client(CompanyService, { token: o.accessToken }).createCompany({ company: { name: "Initech", industry: "Software" } })).company!.id;
  personId = (await app.client(PersonService, { token: o.accessToken }).createPerson({ person: { firstName: "Peter", lastName: "Gibbons", emails: ["peter@initech.example"] } })).person!.id;
  [owner, member] = await Promise.all([newPage(), newPage()]);
  await logIn(owner, app.baseUrl, o.email, PASSWORD);
  await logIn(member, app.baseUrl, email, memberPassword);
});

after(async () => {
  await browser?.close();
  await app?.close();
});

const editButtons = (p: Page) => p.getByRole("region", { name: "Details" }).getByRole("button", { name: /^Edit / });
const readOnly = (p: Page) => p.getByText("You can read this record.", { exact: false });

test("a member sees another's company read-only; made its assignee by the owner, may change it but not hand it on", { skip }, async () => {
  await member.goto(`${app.baseUrl}/companies/${companyId}`);
  await member.getByRole("heading", { name: "Initech" }).waitFor();
  await readOnly(member).waitFor();
  assert.equal(await editButtons(member).count(), 0, "no Edit for a record the member may not change");
  assert.equal(await member.getByRole("button", { name: "Edit Assignee" }).count(), 0);
  await axe(member, "company page, read-only");

  // The owner picks the member as the assignee.
  await owner.goto(`${app.baseUrl}/companies/${companyId}`);
  await owner.getByRole("heading", { name: "Initech" }).waitFor();
  const assignee = owner.getByRole("region", { name: "Details" }).locator('[data-field="assigneeId"]');
  await assignee.getByText("Nobody").waitFor();
  await owner.getByRole("button", { name: "Edit Assignee" }).click();
  await axe(owner, "company page, the assignee picker open");
  await owner.getByRole("region", { name: "Details" }).getByLabel("Assignee", { exact: true }).selectOption({ label: memberName });
  await owner.getByRole("button", { name: "Save Assignee" }).click();
  await assignee.getByText(memberName).waitFor();
  assert.equal(await readOnly(owner).count(), 0);

  // The member, assigned: Edit on the details, but the assignee stays the owner's to change.
  await member.reload();
  await member.getByRole("heading", { name: "Initech" }).waitFor();
  await member.getByRole("button", { name: "Edit Industry" }).waitFor();
  assert.equal(await readOnly(member).count(), 0);
  assert.equal(await member.getByRole("button", { name: "Edit Assignee" }).count(), 0, "an assignee may not hand the record on");
  assert.equal(await member.getByRole("region", { name: "Details" }).locator('[data-field="assigneeId"]').getByText("You").count(), 1);
  await member.getByRole("button", { name: "Edit Industry" }).click();
  await member.getByRole("region", { name: "Details" }).getByLabel("Industry", { exact: true }).fill("Printers");
  await member.getByRole("button", { name: "Save Industry" }).click();
  await member.getByRole("region", { name: "Details" }).locator('[data-field="industry"]').getByText("Printers").waitFor();
});

test("the owner allows members to change every person (Admin → Permissions): the member gets Edit, then loses it", { skip }, async () => {
  await member.goto(`${app.baseUrl}/people/${personId}`);
  await member.getByRole("heading", { name: "Peter Gibbons" }).waitFor();
  await readOnly(member).waitFor();
  assert.equal(await editButtons(member).count(), 0);

  // A member has no Permissions screen.
  await member.goto(`${app.baseUrl}/admin/permissions`);
  await member.getByRole("heading", { name: "This page is for the owners and admins of the company." }).waitFor();

  await owner.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Admin" }).click();
  await owner.getByRole("link", { name: "Permissions" }).click();
  await owner.getByRole("heading", { name: "Who may change records" }).waitFor();
  const people = owner.getByRole("checkbox", { name: "Members may change every record: People" });
  assert.equal(await people.isChecked(), false);
  await axe(owner, "permissions");
  await people.check();
  await owner.getByRole("status").filter({ hasText: "Members may now change every record: People." }).waitFor();
  assert.equal(await owner.getByRole("checkbox", { name: "Members may change every record: Companies" }).isChecked(), false, "one type at a time");

  await member.goto(`${app.baseUrl}/people/${personId}`);
  await member.getByRole("button", { name: "Edit Job title" }).waitFor();
  assert.equal(await readOnly(member).count(), 0);
  await member.getByRole("button", { name: "Edit Job title" }).click();
  await member.getByRole("region", { name: "Details" }).getByLabel("Job title", { exact: true }).fill("Programmer");
  await member.getByRole("button", { name: "Save Job title" }).click();
  await member.getByRole("region", { name: "Details" }).locator('[data-field="jobTitle"]').getByText("Programmer").waitFor();

  // Taken back: after a reload the page is read-only again (and the server would refuse).
  await owner.reload();
  await people.waitFor();
  assert.equal(await people.isChecked(), true, "the grant is the server's, read again");
  await people.uncheck();
  await owner.getByRole("status").filter({ hasText: "Members now change only their own records: People." }).waitFor();
  await member.reload();
  await member.getByRole("heading", { name: "Peter Gibbons" }).waitFor();
  await readOnly(member).waitFor();
  assert.equal(await editButtons(member).count(), 0);
});

test("the board and the lists offer a member no move and no Delete for records not theirs, until a grant", { skip }, async () => {
  const pipeline = (await app.client(PipelineService, { token: ownerToken }).createPipeline({
    pipeline: { name: "Sales", stages: [{ name: "Lead", probability: 10 }, { name: "Won", kind: StageKind.WON }, { name: "Lost", kind: StageKind.LOST }] },
  })).pipeline!;
  const [lead, won] = pipeline.stages;
  await app.client(DealService, { token: ownerToken }).createDeal({ deal: { name: "Owner deal", pipelineId: pipeline.id, stageId: lead!.id } });
  const { accessToken: memberToken } = await app.client(AuthService).login({ email: memberEmail, password: memberPassword });
  await app.client(DealService, { token: memberToken }).createDeal({ deal: { name: "Mia deal", pipelineId: pipeline.id, stageId: lead!.id } });
  await app.client(CompanyService, { token: ownerToken }).createCompany({ company: { name: "Umbrella" } });
  const card = (name: string) => member.locator("li.card").filter({ has: member.getByRole("link", { name, exact: true }) });
  const boardHint = () => member.getByText("Deals marked “Read only” you can read but not move", { exact: false });

  // The board: the owner's deal is read-only (not draggable, no move buttons), the member's own moves.
  await member.goto(`${app.baseUrl}/deals`);
  await member.getByRole("heading", { name: "Deals in Sales" }).waitFor();
  await card("Owner deal").waitFor();
  await boardHint().waitFor();
  assert.equal(await card("Owner deal").getAttribute("draggable"), "false", "not draggable");
  assert.equal(await card("Owner deal").getByRole("button").count(), 0, "no move buttons");
  await card("Owner deal").getByText("Read only").waitFor();
  assert.equal(await card("Mia deal").getAttribute("draggable"), "true");
  await axe(member, "board, a deal read-only");
  await member.getByRole("button", { name: "Move Mia deal to Won" }).click();
  await member.locator(`[data-stage-id="${won!.id}"]`).getByRole("link", { name: "Mia deal" }).waitFor();
  // A drag of the owner's deal does not start: it stays where it was.
  await card("Owner deal").dragTo(member.locator(`[data-stage-id="${won!.id}"]`));
  assert.equal(await member.locator(`[data-stage-id="${won!.id}"]`).getByRole("link", { name: "Owner deal" }).count(), 0);

  // The lists: Delete only on what the member may change (Initech: assigned in the first test).
  await member.goto(`${app.baseUrl}/companies`);
  await member.getByRole("link", { name: "Umbrella", exact: true }).waitFor();
  await member.getByText("Rows marked “Read only” you can read but not change or delete", { exact: false }).waitFor();
  assert.equal(await member.getByRole("button", { name: "Move to the trash: Umbrella" }).count(), 0);
  await member.getByRole("row", { name: /Umbrella/ }).getByText("Read only").waitFor();
  await member.getByRole("button", { name: "Move to the trash: Initech" }).waitFor();
  await axe(member, "companies list, rows read-only");
  await member.goto(`${app.baseUrl}/people`);
  await member.getByRole("link", { name: "Peter Gibbons", exact: true }).waitFor();
  await member.getByRole("row", { name: /Peter Gibbons/ }).getByText("Read only").waitFor();
  assert.equal(await member.getByRole("button", { name: "Move to the trash: Peter Gibbons" }).count(), 0);

  // With the grants for deals and companies, the controls are there.
  const perms = app.client(PermissionService, { token: ownerToken });
  await perms.setMembersEditAll({ objectType: ObjectType.DEAL, allowed: true });
  await perms.setMembersEditAll({ objectType: ObjectType.COMPANY, allowed: true });
  await member.goto(`${app.baseUrl}/deals`);
  await member.getByRole("heading", { name: "Deals in Sales" }).waitFor();
  await member.getByRole("button", { name: "Move Owner deal to Won" }).waitFor();
  assert.equal(await boardHint().count(), 0);
  assert.equal(await card("Owner deal").getAttribute("draggable"), "true");
  await card("Owner deal").dragTo(member.locator(`[data-stage-id="${won!.id}"]`));
  await member.locator(`[data-stage-id="${won!.id}"]`).getByRole("link", { name: "Owner deal" }).waitFor();
  await member.goto(`${app.baseUrl}/companies`);
  await member.getByRole("button", { name: "Move to the trash: Umbrella" }).waitFor();
  assert.equal(await member.getByText("Read only", { exact: true }).count(), 0);
  await perms.setMembersEditAll({ objectType: ObjectType.DEAL, allowed: false });
  await perms.setMembersEditAll({ objectType: ObjectType.COMPANY, allowed: false });
  // Back on the read-only person page, where the next test switches the language.
  await member.goto(`${app.baseUrl}/people/${personId}`);
  await readOnly(member).waitFor();
});

test("in Russian: the permissions screen and a read-only record page", { skip }, async () => {
  await owner.getByLabel("Language").selectOption("ru");
  await owner.getByRole("heading", { name: "Кто может менять записи" }).waitFor();
  await owner.getByRole("checkbox", { name: "Сотрудники меняют все записи: Сделки" }).waitFor();
  await axe(owner, "permissions (ru)");
  await member.getByLabel("Language").selectOption("ru");
  await member.getByText("Эту запись можно только читать.", { exact: false }).waitFor();
  await axe(member, "person page, read-only (ru)");
  assert.deepEqual(problems, [], "no console errors, CSP reports or failed requests");
});
