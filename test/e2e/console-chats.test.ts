/**
 * The console's chats in a real browser against the all-in-one started here: unread badges (per
 * chat in the list, the total beside "Chats" in the menu; cleared by reading, raised by another
 * member's messages) and history scrolling (ListMessages pages of 50 loaded by scrolling up, by
 * mouse or keyboard, with the view kept on the message it showed; a message arriving while the
 * reader is up in the history does not move the view). A second member, invited through
 * AdminService and the e-mailed token, writes through the API.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { AdminService } from "@crm/gen/crm/admin/v1/admin_pb";
import { AuthService } from "@crm/gen/crm/auth/v1/auth_pb";
import { ChatService } from "@crm/gen/crm/chat/v1/chat_pb";
import { emlTo, until, type TestApp } from "@crm/testkit";
import { startTestApp } from "@crm/all/test-app";
import type { Client } from "@connectrpc/connect";
import type { Browser, Page } from "playwright-core";
import { axe, buildWebIfStale, chromiumSkip, launchChromium, logIn, screenshot, watchProblems } from "./browser.ts";
import { PASSWORD, registerOwner, tokenIn, uniq } from "../../services/admin/test/helpers.ts";

const skip = chromiumSkip();

let app: TestApp;
let browser: Browser;
let page: Page;
const problems: string[] = [];
let owner: Awaited<ReturnType<typeof registerOwner>>;
/** The second member's chat client. */
let bea: Client<typeof ChatService>;
const chat = { general: "", sales: "" };

before(async () => {
  if (skip) return;
  buildWebIfStale();
  [app, browser] = await Promise.all([startTestApp(), launchChromium()]);
  owner = await registerOwner(app);
  const beaEmail = `bea-${uniq()}@example.com`;
  await app.client(AdminService, { token: owner.accessToken }).addUsers({ users: [{ email: beaEmail, name: "Bea" }] });
  await until("Bea's invitation", () => emlTo(app, beaEmail).length > 0, 20_000);
  const accepted = await app.client(AuthService).acceptInvite({ token: tokenIn(emlTo(app, beaEmail)[0]!), password: PASSWORD });
  bea = app.client(ChatService, { token: accepted.accessToken });
  const chats = app.client(ChatService, { token: owner.accessToken });
  chat.general = (await chats.createChat({ name: "General", memberIds: [accepted.userId] })).chat!.chatId;
  chat.sales = (await chats.createChat({ name: "Sales", memberIds: [accepted.userId] })).chat!.chatId;
  for (let i = 1; i <= 130; i++) await bea.sendMessage({ chatId: chat.general, content: `history ${i}` });
  for (const content of ["a lead from Riga", "and one from Oslo"]) await bea.sendMessage({ chatId: chat.sales, content });

  const context = await browser.newContext({ locale: "en-US", viewport: { width: 1100, height: 800 } });
  page = await context.newPage();
  page.setDefaultTimeout(10_000);
  watchProblems(page, problems);
  // The list's 15-second poll is fast-forwarded below rather than waited for.
  await page.clock.install();
  await logIn(page, app.baseUrl, owner.email, PASSWORD);
});

after(async () => {
  await browser?.close();
  await app?.close();
});

const menuChats = () => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: /^Chats/ });
const listLink = (name: string) => page.getByRole("list", { name: "Your chats" }).getByRole("link", { name: new RegExp(`^${name}`) });
/** A link's accessible name (a space the browser puts before the hidden ", 3 unread" is dropped). */
const accessibleName = async (l: ReturnType<typeof menuChats>) => ((await l.ariaSnapshot()).split("\n")[0] ?? "").replace(/^- link "?|"?:?$/g, "").replace(/\s+,/g, ",");

test("unread badges: per chat and in the menu; reading clears them, another member's messages raise them", { skip }, async () => {
  await listLink("General").waitFor();
  assert.equal(await accessibleName(listLink("General")), "General, 130 unread");
  assert.equal(await accessibleName(listLink("Sales")), "Sales, 2 unread");
  assert.equal(await accessibleName(menuChats()), "Chats, 132 unread");
  assert.equal(await listLink("Sales").locator(".badge").textContent(), "2", "the number is shown");
  await axe(page, "chats with unread badges");

  await listLink("Sales").click();
  await page.getByRole("log").getByText("and one from Oslo").waitFor();
  await until("Sales read (MarkRead, then the list again)", async () => (await accessibleName(menuChats())) === "Chats, 130 unread", 10_000);
  assert.equal(await accessibleName(listLink("Sales")), "Sales");

  // Another member writes: in the open chat it just appears; elsewhere the badge rises with the list's next poll.
  await bea.sendMessage({ chatId: chat.sales, content: "Riga signed" });
  await page.getByRole("log").getByText("Riga signed").waitFor();
  await bea.sendMessage({ chatId: chat.general, content: "history 131" });
  await page.clock.fastForward(16_000);
  await until("General's badge to rise", async () => (await accessibleName(listLink("General"))) === "General, 131 unread", 10_000);
  assert.equal(await accessibleName(listLink("Sales")), "Sales", "the open chat's own messages are read");
  assert.equal(await accessibleName(menuChats()), "Chats, 131 unread");
  await screenshot(page, "chats");
});

/** Where message `seq` is: its top in the log's content (scroll-independent) and on screen (relative to the log's top edge). */
function place(seq: number) {
  return page.evaluate((s) => {
    type El = { getBoundingClientRect(): { top: number }; scrollTop: number; querySelector(q: string): El };
    const log = (globalThis as unknown as { document: El }).document.querySelector('[role="log"]');
    const li = log.querySelector(`li[data-seq="${s}"]`);
    const onScreen = li.getBoundingClientRect().top - log.getBoundingClientRect().top;
    return { content: onScreen + log.scrollTop, onScreen, scrollTop: log.scrollTop };
  }, seq);
}
const seqs = () => page.locator('[role="log"] li[data-seq]').evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-seq"))));

test("history: scrolling up loads older pages and keeps the view on the same message; the start of the chat is marked", { skip }, async () => {
  await listLink("General").click();
  const log = page.getByRole("log");
  await log.getByText("history 131", { exact: true }).waitFor();
  assert.deepEqual(await seqs(), Array.from({ length: 50 }, (_, i) => 82 + i), "the newest 50");
  await until("the view at the newest message", async () => (await log.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight)) < 2, 5_000);
  await until("General read", async () => (await accessibleName(listLink("General"))) === "General", 10_000);

  // By mouse (the wheel up to the top): the page before loads above, and message 82 stays where it was shown.
  const before = await place(82);
  await log.evaluate((el) => (el.scrollTop = 0));
  await log.locator('li[data-seq="32"]').waitFor({ state: "attached" });
  await until("the older page in", async () => (await log.getAttribute("aria-busy")) === "false", 5_000);
  const after = await place(82);
  assert.ok(Math.abs(after.onScreen - before.content) <= 2, `message 82 stayed in view where it was (${before.content} → ${after.onScreen})`);
  assert.ok(after.scrollTop > 500, "the view was not left at the top, where it would load page after page");
  assert.deepEqual(await seqs(), Array.from({ length: 100 }, (_, i) => 32 + i));

  // While the reader is up in the history, a new message goes in at the bottom and the view stays.
  const kept = await log.evaluate((el) => el.scrollTop);
  await bea.sendMessage({ chatId: chat.general, content: "history 132" });
  await log.getByText("history 132", { exact: true }).waitFor({ state: "attached" });
  assert.equal(await log.evaluate((el) => el.scrollTop), kept, "the view did not jump to the bottom");

  // By keyboard: the log takes the focus, Home goes to the top, the rest of the history loads.
  await log.focus();
  await page.keyboard.press("Home");
  await log.locator('li[data-seq="1"]').waitFor({ state: "attached" });
  await log.getByText("The beginning of the chat.").waitFor();
  assert.equal(await log.getByRole("button", { name: "Load older messages" }).count(), 0, "nothing older to load");
  assert.deepEqual(await seqs(), Array.from({ length: 132 }, (_, i) => 1 + i), "every message once, in order");
  await axe(page, "chat history");

  // The newest message is one End away, and the chat stays read.
  await page.keyboard.press("End");
  await until("at the bottom", async () => (await log.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight)) < 2, 5_000);
  assert.deepEqual(problems, [], "no CSP violation or uncaught error");
});
