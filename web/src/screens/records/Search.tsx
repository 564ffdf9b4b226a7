/**
 * Search across companies, people and deals (SearchService.Search): a modal dialog opened by the
 * header's Search button or Ctrl-K (⌘K), a combobox whose results are a listbox — ↑ ↓ choose,
 * Enter opens the record, Escape closes. It asks 200 ms after the last key, from 2 characters.
 */
import { useEffect, useId, useRef, useState, type KeyboardEvent } from "react";
import { useLocation } from "wouter";
import { useQuery } from "@connectrpc/connect-query";
import { SearchService, type SearchResult } from "@crm/gen/crm/records/v1/search_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { useI18n } from "../../i18n";
import { describeError } from "../../errors";
import "./records.css";

const words = {
  en: { title: "Search", label: "Companies, people and deals", hint: "Type at least 2 characters. ↑ ↓ to choose, Enter to open, Esc to close.", none: "Nothing found.", close: "Close", company: "Company", person: "Person", deal: "Deal" },
  ru: { title: "Поиск", label: "Компании, люди и сделки", hint: "Введите хотя бы 2 символа. ↑ ↓ — выбор, Enter — открыть, Esc — закрыть.", none: "Ничего не найдено.", close: "Закрыть", company: "Компания", person: "Контакт", deal: "Сделка" },
};

const hrefOf = (r: SearchResult) => `/${r.objectType === ObjectType.COMPANY ? "companies" : r.objectType === ObjectType.PERSON ? "people" : "deals"}/${r.recordId}`;

export function SearchDialog({ onClose }: { onClose(): void }) {
  const i18n = useI18n();
  const w = words[i18n.locale];
  const id = useId();
  const dialog = useRef<HTMLDialogElement>(null);
  const [, navigate] = useLocation();
  const [text, setText] = useState("");
  const [query, setQuery] = useState("");
  const [active, setActive] = useState(0);
  useEffect(() => {
    const d = dialog.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  useEffect(() => {
    const t = setTimeout(() => setQuery(text.trim()), 200);
    return () => clearTimeout(t);
  }, [text]);
  const enough = query.replace(/[^\p{L}\p{N}]/gu, "").length >= 2;
  const found = useQuery(SearchService.method.search, { query, pageSize: 20 }, { enabled: enough, placeholderData: (p) => p, staleTime: 5_000 });
  const results = enough ? (found.data?.results ?? []) : [];
  useEffect(() => setActive(0), [query]);
  const open = (r: SearchResult | undefined) => {
    if (!r) return;
    onClose();
    navigate(hrefOf(r));
  };
  const onKey = (e: KeyboardEvent<HTMLInputElement>) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      if (results.length) setActive((a) => (a + (e.key === "ArrowDown" ? 1 : results.length - 1)) % results.length);
    } else if (e.key === "Enter") {
      e.preventDefault();
      open(results[active]);
    } else if (e.key === "Escape") {
      e.preventDefault(); // a search field would only clear itself
      onClose();
    }
  };
  const kind = (t: ObjectType) => (t === ObjectType.COMPANY ? w.company : t === ObjectType.PERSON ? w.person : w.deal);
  return (
    <dialog ref={dialog} className="search-dialog" aria-labelledby={`${id}-title`} onClose={onClose} onCancel={onClose}>
      <div className="search-head">
        <h2 id={`${id}-title`}>{w.title}</h2>
        <button type="button" className="secondary small" onClick={onClose}>
          {w.close}
        </button>
      </div>
      <label htmlFor={`${id}-q`} className="visually-hidden">
        {w.label}
      </label>
      <input
        id={`${id}-q`}
        type="search"
        role="combobox"
        autoFocus
        autoComplete="off"
        placeholder={w.label}
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={onKey}
        aria-expanded={results.length > 0}
        aria-controls={`${id}-list`}
        aria-activedescendant={results[active] ? `${id}-${results[active].recordId}` : undefined}
        aria-describedby={`${id}-hint`}
      />
      <p id={`${id}-hint`} className="hint">
        {w.hint}
      </p>
      {found.error && enough && (
        <p role="alert" className="error">
          {describeError(found.error, i18n)}
        </p>
      )}
      <ul id={`${id}-list`} role="listbox" aria-label={w.label} className="search-results">
        {results.map((r, i) => (
          <li
            key={r.recordId}
            id={`${id}-${r.recordId}`}
            role="option"
            aria-selected={i === active}
            className={i === active ? "active" : undefined}
            onMouseEnter={() => setActive(i)}
            onClick={() => open(r)}
          >
            <span className="search-kind">{kind(r.objectType)}</span>
            <span className="search-title">{r.title}</span>
            {r.subtitle && <span className="search-sub">{r.subtitle}</span>}
          </li>
        ))}
      </ul>
      {enough && !found.isFetching && found.data && results.length === 0 && <p role="status">{w.none}</p>}
    </dialog>
  );
}
