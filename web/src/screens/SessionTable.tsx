/**
 * The sessions table both screens show: the signed-in person's own (Account: ListSessions) and a
 * member's as an admin sees them (Admin → Members: ListUserSessions). Each screen says how a
 * session is ended (the `end` cell); this shows the device, address and times.
 */
import type { ReactNode } from "react";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { useI18n } from "../i18n";

/** "Chrome on Linux" from a User-Agent header; the header itself when it names neither. */
export function device(ua: string): string {
  const browser = /Edg\//.test(ua) ? "Edge" : /OPR\//.test(ua) ? "Opera" : /Firefox\//.test(ua) ? "Firefox" : /Chrom(e|ium)\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "";
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Windows/.test(ua) ? "Windows" : /Mac OS X|Macintosh/.test(ua) ? "macOS" : /Linux/.test(ua) ? "Linux" : "";
  if (browser && os) return `${browser} · ${os}`;
  return browser || os || ua.slice(0, 60);
}

/** The fields of a session both APIs answer with (auth.v1.Session; admin.v1's adds no others here). */
export interface SessionRow {
  sessionId: string;
  userAgent: string;
  ip: string;
  createdAt?: Timestamp;
  lastUsedAt?: Timestamp;
  expiresAt?: Timestamp;
  /** The caller's own session (ListSessions only): tagged, and never offered for ending. */
  current?: boolean;
}

export function SessionTable({
  sessions,
  labelledBy,
  expiresLabel,
  end,
}: {
  sessions: readonly SessionRow[];
  labelledBy: string;
  /** The Expires column's heading; no such column without it. */
  expiresLabel?: string;
  /** The last cell: how this screen ends the session (`device` and `created` name it for screen readers). */
  end(s: SessionRow, named: { device: string; created: string }): ReactNode;
}) {
  const i18n = useI18n();
  const { t } = i18n;
  const when = (ts: Timestamp | undefined) => (ts ? i18n.dateTime(timestampDate(ts)) : "");
  return (
    <table className="entries" aria-labelledby={labelledBy}>
      <thead>
        <tr>
          <th scope="col">{t("account.device")}</th>
          <th scope="col">{t("account.ip")}</th>
          <th scope="col">{t("account.created")}</th>
          <th scope="col">{t("account.lastUsed")}</th>
          {expiresLabel !== undefined && <th scope="col">{expiresLabel}</th>}
          <th scope="col">
            <span className="visually-hidden">{t("account.actions")}</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {sessions.map((s) => {
          const name = device(s.userAgent);
          return (
            <tr key={s.sessionId} data-session={s.sessionId}>
              <td title={s.userAgent}>
                {name}
                {s.current && <strong className="tag"> {t("account.current")}</strong>}
              </td>
              <td>{s.ip}</td>
              <td>{when(s.createdAt)}</td>
              <td>{when(s.lastUsedAt)}</td>
              {expiresLabel !== undefined && <td>{when(s.expiresAt)}</td>}
              <td>{end(s, { device: name, created: when(s.createdAt) })}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
