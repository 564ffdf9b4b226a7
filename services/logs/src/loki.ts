/**
 * Loki's push format (POST /loki/api/v1/push, application/json):
 *   {"streams":[{"stream":{<labels>},"values":[["<unix ns>","<line>"],["<unix ns>","<line>",{<structured metadata>}]]}]}
 * Labels are of low cardinality only: service (a known service name, else "other"), level, and
 * company_id when configured. Everything else (trace_id, user_id, attributes) is in the JSON line,
 * and optionally in structured metadata.
 */
import { servicePorts } from "@crm/kit";
import type { LogRecord } from "./validation.js";

export interface PayloadOptions {
  companyLabel: boolean;
  structuredMetadata: boolean;
}

export type LokiValue = [string, string] | [string, string, Record<string, string>];
export interface LokiPush {
  streams: { stream: Record<string, string>; values: LokiValue[] }[];
}

const knownServices = new Set<string>([...Object.keys(servicePorts), "gateway", "crm"]);

export function labelsOf(r: LogRecord, o: PayloadOptions): Record<string, string> {
  const labels: Record<string, string> = { service: knownServices.has(r.name) ? r.name : "other", level: r.level };
  if (o.companyLabel && r.companyId) labels.company_id = r.companyId;
  return labels;
}

/** The log line: JSON, so Grafana's `| json` and a plain `|= "<trace id>"` filter both work. */
export function lineOf(r: LogRecord): string {
  const line: Record<string, unknown> = { msg: r.message, name: r.name };
  if (r.traceId) line.trace_id = r.traceId;
  if (r.userId) line.user_id = r.userId;
  if (r.companyId) line.company_id = r.companyId;
  if (Object.keys(r.attributes).length) line.attrs = r.attributes;
  return JSON.stringify(line);
}

function metadataOf(r: LogRecord): Record<string, string> {
  const m: Record<string, string> = {};
  if (r.traceId) m.trace_id = r.traceId;
  if (r.userId) m.user_id = r.userId;
  if (r.companyId) m.company_id = r.companyId;
  return m;
}

export function lokiPayload(records: LogRecord[], o: PayloadOptions): LokiPush {
  const streams = new Map<string, { stream: Record<string, string>; entries: LogRecord[] }>();
  for (const r of records) {
    const labels = labelsOf(r, o);
    const key = JSON.stringify(labels);
    let s = streams.get(key);
    if (!s) streams.set(key, (s = { stream: labels, entries: [] }));
    s.entries.push(r);
  }
  return {
    streams: [...streams.values()].map((s) => ({
      stream: s.stream,
      values: s.entries
        .sort((a, b) => (a.timeNs < b.timeNs ? -1 : a.timeNs > b.timeNs ? 1 : 0))
        .map((r): LokiValue => {
          const meta = o.structuredMetadata ? metadataOf(r) : {};
          return Object.keys(meta).length ? [r.timeNs.toString(), lineOf(r), meta] : [r.timeNs.toString(), lineOf(r)];
        }),
    })),
  };
}
