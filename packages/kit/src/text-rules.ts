/**
 * One rule for the text of every request, checked before any handler runs (textInterceptor, on the
 * fast path, connect-node's path and in-process peers alike). It walks the request message by its
 * schema, so every string field of every RPC is covered, nested, repeated and map keys and values
 * included, without anyone listing fields or RPCs.
 *
 * A string is refused (invalid_argument naming the field, e.g. `entries[0].attributes`) when it:
 * - is not valid UTF-8 (binary protobuf; see the decoder below) or holds a lone surrogate (JSON's
 *   "\ud800" escapes): neither can be stored or sent on as text;
 * - holds a control character: U+0000–U+001F, U+007F and U+0080–U+009F (C0, DEL, C1). Fields of
 *   several lines of text also allow TAB, LF and CR. A field is multi-line when its proto name is
 *   one of MULTILINE_FIELDS (the naming rule: message bodies, descriptions, addresses, error text,
 *   log attributes such as stack traces, the start of an HTTP answer; map keys are always one line);
 *   every other string (names, ids, e-mail addresses, tokens, keys, queries) is one line.
 *
 * Lengths and shapes stay with each service's own validation.
 */
import type { DescField, DescMessage } from "@bufbuild/protobuf";
import { ScalarType } from "@bufbuild/protobuf";
import { configureTextEncoding, getTextEncoding } from "@bufbuild/protobuf/wire";
import type { Interceptor, StreamRequest } from "@connectrpc/connect";
import { AppError, invalid, type Violation } from "./errors.js";
import { undecodableKey } from "./undecodable.js";

/** Proto field names (snake_case) whose text may span lines: TAB, LF and CR allowed. */
export const MULTILINE_FIELDS: ReadonlySet<string> = new Set(["content", "description", "text", "body", "html", "message", "address", "error", "last_error", "attributes", "response_prefix"]);

/**
 * Binary protobuf strings that are not valid UTF-8 decode to this lone surrogate followed by the
 * lenient decoding, instead of throwing inside the decoder (connect-node reports that as
 * `internal` "parse binary") or silently becoming U+FFFD. A lone surrogate never comes out of a
 * valid UTF-8 decoding, so the walk below tells this apart and names the field; nothing else
 * decodes requests before it runs. Process-wide, for the one copy of @bufbuild/protobuf we bundle.
 */
export const INVALID_UTF8 = "\udfff";
const lenient = getTextEncoding();
configureTextEncoding({
  checkUtf8: lenient.checkUtf8,
  encodeUtf8: lenient.encodeUtf8,
  encodeUtf8Into: lenient.encodeUtf8Into,
  decodeUtf8(bytes, strict) {
    if (!strict) return lenient.decodeUtf8(bytes);
    try {
      return lenient.decodeUtf8(bytes, true);
    } catch {
      return INVALID_UTF8 + lenient.decodeUtf8(bytes);
    }
  },
});

/** String.prototype.isWellFormed (Node 20+; not yet in this TypeScript lib). */
const isWellFormed = (String.prototype as unknown as { isWellFormed(this: string): boolean }).isWellFormed;

const oneLine = /[\u0000-\u001f\u007f-\u009f]/;
const severalLines = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

/**
 * `s` made acceptable to the rule, for text our own code sends on (error reports): refused control
 * characters and lone surrogates become U+FFFD.
 */
export function scrubText(s: string, multiline = true): string {
  const bad = multiline ? /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/g : /[\u0000-\u001f\u007f-\u009f]/g;
  const text = isWellFormed.call(s) ? s : (s as unknown as { toWellFormed(): string }).toWellFormed();
  return text.replace(bad, "\uFFFD");
}

/** What is wrong with `s` as the text of a field, or undefined. */
export function textProblem(s: string, multiline: boolean): string | undefined {
  if (!isWellFormed.call(s)) {
    return s.startsWith(INVALID_UTF8) ? "is not valid UTF-8: send the text encoded as UTF-8" : "contains a lone surrogate (half of a UTF-16 pair): send well-formed Unicode text";
  }
  const bad = (multiline ? severalLines : oneLine).exec(s);
  if (!bad) return undefined;
  const code = `U+${bad[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
  return multiline
    ? `contains the control character ${code}: remove it (line breaks and tabs are allowed here)`
    : `contains the control character ${code}: remove it (this field is one line of text: no line breaks, tabs or other control characters)`;
}

const MAX_SHOWN = 20;
type Walk = (message: Record<string, unknown>, path: string, out: Violation[]) => void;
const walkers = new WeakMap<DescMessage, Walk>();

const isString = (f: DescField) =>
  (f.fieldKind === "scalar" && f.scalar === ScalarType.STRING) || (f.fieldKind === "list" && f.listKind === "scalar" && f.scalar === ScalarType.STRING);

/** The walk for `schema`, made once: only fields that are or can hold strings are visited. */
function walkerOf(schema: DescMessage): Walk {
  let walk = walkers.get(schema);
  if (walk) return walk;
  const steps: ((message: Record<string, unknown>, path: string, out: Violation[]) => void)[] = [];
  for (const field of schema.fields) {
    const multiline = MULTILINE_FIELDS.has(field.name);
    const name = field.jsonName;
    const valueOf = field.oneof
      ? (m: Record<string, unknown>) => {
          const o = m[field.oneof!.localName] as { case?: string; value?: unknown } | undefined;
          return o?.case === field.localName ? o.value : undefined;
        }
      : (m: Record<string, unknown>) => m[field.localName];
    const str = (s: unknown, at: string, out: Violation[]) => {
      if (typeof s !== "string" || s.length === 0) return;
      const problem = textProblem(s, multiline);
      if (problem) out.push({ field: at, description: problem });
    };
    if (isString(field)) {
      if (field.fieldKind === "list") {
        steps.push((m, path, out) => (valueOf(m) as string[] | undefined)?.forEach((s, i) => str(s, `${path}${name}[${i}]`, out)));
      } else steps.push((m, path, out) => str(valueOf(m), path + name, out));
    } else if (field.fieldKind === "message") {
      const child = field.message;
      steps.push((m, path, out) => {
        const v = valueOf(m) as Record<string, unknown> | undefined;
        if (v) walkerOf(child)(v, `${path}${name}.`, out);
      });
    } else if (field.fieldKind === "list" && field.listKind === "message") {
      const child = field.message;
      steps.push((m, path, out) => (valueOf(m) as Record<string, unknown>[] | undefined)?.forEach((v, i) => walkerOf(child)(v, `${path}${name}[${i}].`, out)));
    } else if (field.fieldKind === "map") {
      const keyIsString = field.mapKey === ScalarType.STRING;
      const valueIsString = field.mapKind === "scalar" && field.scalar === ScalarType.STRING;
      const child = field.mapKind === "message" ? field.message : undefined;
      if (!keyIsString && !valueIsString && !child) continue;
      steps.push((m, path, out) => {
        const map = valueOf(m) as Record<string, unknown> | undefined;
        if (!map) return;
        for (const key in map) {
          // A bad key is named by its map (the key itself is what cannot be shown); good keys JSON-quoted.
          const keyProblem = keyIsString ? textProblem(key, false) : undefined;
          if (keyProblem) {
            out.push({ field: path + name, description: `a key ${keyProblem}` });
            continue;
          }
          const at = `${path}${name}[${JSON.stringify(key)}]`;
          if (valueIsString) str(map[key], at, out);
          else if (child && map[key]) walkerOf(child)(map[key] as Record<string, unknown>, `${at}.`, out);
        }
      });
    }
  }
  walk = (message, path, out) => {
    for (const step of steps) {
      if (out.length > MAX_SHOWN) return;
      step(message, path, out);
    }
  };
  walkers.set(schema, walk);
  return walk;
}

/** Every text problem of `message` (at most a screenful), with field paths in JSON names. */
export function textViolations(schema: DescMessage, message: unknown): Violation[] {
  const out: Violation[] = [];
  walkerOf(schema)(message as Record<string, unknown>, "", out);
  return out.slice(0, MAX_SHOWN);
}

/** Throws invalid_argument naming every field whose text breaks the rule above. */
export function checkText(schema: DescMessage, message: unknown): void {
  const out = textViolations(schema, message);
  if (out.length) throw invalid(out);
}

/**
 * Checks every request message (unary, and each message of a stream) before the handler sees it;
 * a message the server could not decode (undecodable.ts) is refused here too.
 */
export function textInterceptor(): Interceptor {
  return (next) => (req) => {
    const undecodable = req.contextValues.get(undecodableKey);
    if (undecodable !== undefined) return Promise.reject(new AppError("invalid_argument", `cannot decode the request: ${undecodable}`));
    if (!req.stream) {
      try {
        checkText(req.method.input, req.message);
      } catch (err) {
        return Promise.reject(err);
      }
      return next(req);
    }
    const schema = req.method.input;
    const source = req.message;
    async function* checked() {
      for await (const m of source) {
        checkText(schema, m);
        yield m;
      }
    }
    // A copy must name `signal`: the fast path's requests carry it as a prototype accessor (@crm/fastpath).
    return next({ ...req, signal: req.signal, message: checked() } as StreamRequest);
  };
}
