/**
 * The records screens' routes: companies, people, the deal board and deal pages, pipeline
 * settings. This file is part of the first download (under a kilobyte); every screen is a chunk
 * of its own, fetched on first use — or, when the page opens at its address, by App's boot in
 * parallel with the first Check, which then calls the chunk's `prefetch(path, search)`: the
 * records' message types stay out of the first download.
 */
import { lazy, Suspense, useEffect, useRef, useState } from "react";
import { Route, Switch } from "wouter";
import type { Session } from "../../session";
import { useI18n, type Locale } from "../../i18n";
import { lazyScreen } from "../../lazy-screen";

const loadCompanies = () => import("./Companies");
const loadPeople = () => import("./People");
const loadDeals = () => import("./Deals");

const companyList = lazyScreen(loadCompanies, (m) => m.CompanyList);
const newCompany = lazyScreen(loadCompanies, (m) => m.NewCompany);
const companyPage = lazyScreen(loadCompanies, (m) => m.CompanyPage);
const personList = lazyScreen(loadPeople, (m) => m.PersonList);
const newPerson = lazyScreen(loadPeople, (m) => m.NewPerson);
const personPage = lazyScreen(loadPeople, (m) => m.PersonPage);
const board = lazyScreen(() => import("./Board"), (m) => m.Board);
const dealList = lazyScreen(() => import("./DealList"), (m) => m.DealList);
const newDeal = lazyScreen(loadDeals, (m) => m.NewDeal);
const dealPage = lazyScreen(loadDeals, (m) => m.DealPage);
const pipelines = lazyScreen(() => import("./Pipelines"), (m) => m.Pipelines);
const myTasks = lazyScreen(() => import("./Activity"), (m) => m.MyTasks);
const report = lazyScreen(() => import("./Report"), (m) => m.PipelineReport);
const importer = lazyScreen(() => import("./Import"), (m) => m.ImportScreen);

/** The main menu's entries for these screens (the rest of their words are in their chunks, words.ts). */
export const recordsNav: Record<Locale, { companies: string; people: string; deals: string; tasks: string; reports: string; search: string }> = {
  en: { companies: "Companies", people: "People", deals: "Deals", tasks: "Tasks", reports: "Reports", search: "Search" },
  ru: { companies: "Компании", people: "Люди", deals: "Сделки", tasks: "Задачи", reports: "Отчёты", search: "Поиск" },
};

const SearchDialog = lazy(() => import("./Search").then((m) => ({ default: m.SearchDialog })));

/** The header's Search button, also opened by Ctrl-K (⌘K anywhere on the page); the dialog is a chunk of its own. */
export function RecordSearch() {
  const { locale } = useI18n();
  const [open, setOpen] = useState(false);
  const button = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey && e.key.toLowerCase() === "k") {
        e.preventDefault();
        setOpen(true);
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);
  const close = () => {
    setOpen(false);
    setTimeout(() => button.current?.focus(), 0);
  };
  return (
    <>
      <button ref={button} type="button" className="secondary" aria-keyshortcuts="Control+K Meta+K" aria-haspopup="dialog" onClick={() => setOpen(true)}>
        {recordsNav[locale].search}
      </button>
      {open && (
        <Suspense fallback={null}>
          <SearchDialog onClose={close} />
        </Suspense>
      )}
    </>
  );
}

/** The paths these screens own (App routes them here). */
export const recordPaths = /^\/(companies|people|deals|pipelines|tasks|reports)(\/[^/]*)?\/?$/;

/** The screen at `path`, if it is one of these (its chunk exports `prefetch`). */
export function recordsScreenAt(path: string) {
  const [, section, rest = ""] = /^\/([a-z]+)\/?([^/]*)/.exec(path) ?? [];
  switch (section) {
    case "companies":
      return !rest ? companyList : rest === "new" ? newCompany : rest === "import" ? importer : companyPage;
    case "people":
      return !rest ? personList : rest === "new" ? newPerson : rest === "import" ? importer : personPage;
    case "deals":
      return !rest ? board : rest === "new" ? newDeal : rest === "list" ? dealList : rest === "import" ? importer : dealPage;
    case "pipelines":
      return pipelines;
    case "tasks":
      return rest ? undefined : myTasks;
    case "reports":
      return rest ? undefined : report;
    default:
      return undefined;
  }
}

const { Component: CompanyList } = companyList;
const { Component: NewCompany } = newCompany;
const { Component: CompanyPage } = companyPage;
const { Component: PersonList } = personList;
const { Component: NewPerson } = newPerson;
const { Component: PersonPage } = personPage;
const { Component: Board } = board;
const { Component: DealList } = dealList;
const { Component: NewDeal } = newDeal;
const { Component: DealPage } = dealPage;
const { Component: Pipelines } = pipelines;
const { Component: MyTasks } = myTasks;
const { Component: Report } = report;
const { Component: ImportScreen } = importer;

export function Records({ session }: { session: Session }) {
  const { t } = useI18n();
  return (
    <Switch>
      <Route path="/companies">
        <CompanyList session={session} />
      </Route>
      <Route path="/companies/new">
        <NewCompany session={session} />
      </Route>
      <Route path="/companies/import">
        <ImportScreen kind="company" />
      </Route>
      <Route path="/companies/:id">{(p) => <CompanyPage key={p.id} id={p.id} session={session} />}</Route>
      <Route path="/people">
        <PersonList session={session} />
      </Route>
      <Route path="/people/new">
        <NewPerson session={session} />
      </Route>
      <Route path="/people/import">
        <ImportScreen kind="person" />
      </Route>
      <Route path="/people/:id">{(p) => <PersonPage key={p.id} id={p.id} session={session} />}</Route>
      <Route path="/deals">
        <Board session={session} />
      </Route>
      <Route path="/deals/list">
        <DealList session={session} />
      </Route>
      <Route path="/deals/import">
        <ImportScreen kind="deal" />
      </Route>
      <Route path="/deals/new">
        <NewDeal session={session} />
      </Route>
      <Route path="/deals/:id">{(p) => <DealPage key={p.id} id={p.id} session={session} />}</Route>
      <Route path="/pipelines">
        <Pipelines session={session} />
      </Route>
      <Route path="/tasks">
        <MyTasks session={session} />
      </Route>
      <Route path="/reports">
        <Report session={session} />
      </Route>
      <Route>
        <h1>{t("app.notFound")}</h1>
      </Route>
    </Switch>
  );
}
