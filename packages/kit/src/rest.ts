/**
 * The original design's HTTP routes (POST /auth/login, GET /chats/{chatID}/messages, …) mapped
 * onto the same Connect handlers: the JSON body (or the query string for GET) plus path
 * parameters becomes the request message. One table, @crm/contracts' rest-aliases.json, is read
 * here (all-in-one) and by the gateway's nginx config generator (cluster).
 */
import aliasTable from "@crm/contracts/rest-aliases.json" with { type: "json" };

export interface RestAlias {
  method: string;
  path: string;
  rpc: string;
  pathParams: Record<string, string>;
}

export interface AliasMatch {
  rpc: string;
  /** Fields taken from the path ({chatID} → chatId). */
  fields: Record<string, string>;
}

export type AliasMatcher = ((method: string, url: string) => AliasMatch | undefined) & {
  /** The aliases of this path, whatever their method (a wrong method is then a 405, not a 404). */
  aliasesOf(url: string): RestAlias[];
};

export function createAliasMatcher(aliases: RestAlias[] = aliasTable as RestAlias[]): AliasMatcher {
  const compiled = aliases.map((a) => {
    const names: string[] = [];
    const source = a.path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{(\w+)\}/g, (_, name: string) => (names.push(name), "([^/?#]+)"));
    return { alias: a, names, re: new RegExp(`^${source}$`) };
  });
  const match = (method: string, url: string): AliasMatch | undefined => {
    const path = url.split("?", 1)[0]!;
    for (const { alias, names, re } of compiled) {
      if (alias.method !== method) continue;
      const m = re.exec(path);
      if (!m) continue;
      const fields: Record<string, string> = {};
      names.forEach((name, i) => (fields[alias.pathParams[name] ?? name] = decodeSegment(m[i + 1]!)));
      return { rpc: alias.rpc, fields };
    }
    return undefined;
  };
  const aliasesOf = (url: string) => {
    const path = url.split("?", 1)[0]!;
    return compiled.filter(({ re }) => re.test(path)).map(({ alias }) => alias);
  };
  return Object.assign(match, { aliasesOf });
}

/** A path segment, percent-decoded; a malformed escape ("%E0%A4%A") stays as sent, for the RPC's validation to refuse. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Query string → JSON fields (repeated keys become arrays). */
export function queryFields(url: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const q = url.indexOf("?");
  if (q < 0) return out;
  for (const [k, v] of new URLSearchParams(url.slice(q + 1))) {
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}
