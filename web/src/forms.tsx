/**
 * What every form of the console shares: a labelled field that shows its own error (from the
 * server's field violations or a check here), the card the signed-out screens sit in, and a submit
 * runner that keeps one call at a time and spreads its error over the fields.
 */
import { useEffect, useId, useRef, useState, type FormEvent, type ReactNode } from "react";
import { useI18n } from "./i18n";
import { formErrors } from "./errors";
import { LanguageSwitch } from "./App";
import { newRequestId } from "./request-id";

export interface FieldProps {
  label: string;
  hint?: string | undefined;
  name: string;
  type?: string;
  autoComplete: string;
  required?: boolean;
  value: string;
  onChange(v: string): void;
  error?: string | undefined;
}

export function Field(props: FieldProps) {
  const id = useId();
  const described = [props.hint ? `${id}-hint` : "", props.error ? `${id}-error` : ""].filter(Boolean).join(" ");
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <input
        id={id}
        name={props.name}
        type={props.type ?? "text"}
        autoComplete={props.autoComplete}
        required={props.required ?? true}
        value={props.value}
        onChange={(e) => props.onChange(e.target.value)}
        aria-invalid={props.error ? true : undefined}
        aria-describedby={described || undefined}
      />
      {props.hint && (
        <small id={`${id}-hint`} className="hint">
          {props.hint}
        </small>
      )}
      {props.error && (
        <small id={`${id}-error`} className="field-error">
          {props.error}
        </small>
      )}
    </div>
  );
}

/** The signed-out screens' frame: the language switch, one card, its heading focused on arrival. */
export function Card({ title, children }: { title: string; children: ReactNode }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  return (
    <div className="auth">
      <header className="auth-top">
        <LanguageSwitch />
      </header>
      <main id="main" className="card">
        <h1 ref={heading} tabIndex={-1}>
          {title}
        </h1>
        {children}
      </main>
    </div>
  );
}

export function FormError({ text }: { text: string | undefined }) {
  if (!text) return null;
  return (
    <p role="alert" className="error">
      {text}
    </p>
  );
}

/** What a screen says after an action: a status line, or an alert when it failed. */
export type NoticeText = { text: string; error?: boolean | undefined; action?: ReactNode } | undefined;

/**
 * The notice line every screen shows under its actions: role=status (read out politely) for what
 * happened, role=alert for an error; `action` (an Undo or Restore button) follows the text.
 */
export function Notice({ notice }: { notice: NoticeText }) {
  if (!notice?.text) return null;
  return (
    <p role={notice.error ? "alert" : "status"} className={notice.error ? "error" : "notice"}>
      {notice.text}
      {notice.action ? <> {notice.action}</> : null}
    </p>
  );
}

/** Thrown by an action for errors of its own (a check here, a row's result): shown next to those fields. */
export class LocalInvalid extends Error {
  constructor(
    readonly fields: Record<string, string>,
    /** For the whole form; default "correct the marked fields". */
    readonly formMessage?: string,
  ) {
    super("invalid input");
  }
}

/**
 * The request id of a create form (request-id.ts): `current` is the same for every submit until
 * `renew()`, called once a create went through (a form that stays for the next one).
 */
export function useRequestId(): { readonly current: string; renew(): void } {
  const ref = useRef<string | undefined>(undefined);
  ref.current ??= newRequestId();
  return { get current() { return ref.current!; }, renew: () => void (ref.current = newRequestId()) };
}

/**
 * Runs a submit once at a time and keeps its error for display: `fields` maps the server's field
 * names (BadRequest violations) to this form's, whose errors are shown beside them; the first
 * field in error gets the focus.
 */
export function useSubmit(action: () => Promise<void>, fields: Record<string, string> = {}) {
  const i18n = useI18n();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [fieldError, setFieldError] = useState<Record<string, string>>({});
  const onSubmit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    if (busy) return;
    const form = e.currentTarget;
    setBusy(true);
    setError(undefined);
    setFieldError({});
    try {
      await action();
      setBusy(false);
    } catch (err) {
      if (err instanceof LocalInvalid) {
        setFieldError(err.fields);
        setError(err.formMessage ?? i18n.t("form.fixFields"));
      } else {
        const r = formErrors(err, i18n, fields);
        setFieldError(r.fields);
        setError(r.form);
      }
      setBusy(false);
      setTimeout(() => form.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus(), 0);
    }
  };
  return { busy, error, fieldError, onSubmit: (e: FormEvent<HTMLFormElement>) => void onSubmit(e) };
}
