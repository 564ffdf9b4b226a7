/**
 * Admin → Permissions (owners and admins; a chunk of its own with its words): who may change which
 * records. Members read everything and change what they own or are assigned; here an owner or
 * admin allows members to change every record of an object type (PermissionService,
 * SetMembersEditAll; the server's row-level security enforces it). One checkbox per type, saved
 * when it is ticked or cleared, the answer's grants shown.
 */
import { useState } from "react";
import { createConnectQueryKey, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { createClient } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import { GetRecordPermissionsResponseSchema, PermissionService } from "@crm/gen/crm/records/v1/permission_pb";
import { transport } from "../session";
import { useI18n } from "../i18n";
import { describeError } from "../errors";
import { Notice, type NoticeText } from "../forms";

const permissions = createClient(PermissionService, transport);

const en = {
  "title": "Who may change records",
  "intro": "Everyone in the company reads every record. Members change the records they own or are assigned (a task: also the tasks assigned to them); owners and admins change everything. Tick a type to let members change every record of it.",
  "type": "Records",
  "members": "Members may change every record",
  "allowOf": "Members may change every record: {type}",
  "company": "Companies",
  "person": "People",
  "deal": "Deals",
  "task": "Tasks",
  "note": "Notes",
  "allowed": "Members may now change every record: {type}.",
  "stopped": "Members now change only their own records: {type}.",
  "yes": "Yes",
  "no": "Only their own",
} as const;
type Word = keyof typeof en;

const ru: Record<Word, string> = {
  "title": "Кто может менять записи",
  "intro": "Все в компании видят все записи. Сотрудники меняют записи, за которые отвечают или в которых они исполнители (задачи — ещё и назначенные им); владельцы и администраторы меняют всё. Отметьте тип, чтобы сотрудники могли менять все его записи.",
  "type": "Записи",
  "members": "Сотрудники меняют все записи",
  "allowOf": "Сотрудники меняют все записи: {type}",
  "company": "Компании",
  "person": "Люди",
  "deal": "Сделки",
  "task": "Задачи",
  "note": "Заметки",
  "allowed": "Теперь сотрудники могут менять все записи: {type}.",
  "stopped": "Теперь сотрудники меняют только свои записи: {type}.",
  "yes": "Да",
  "no": "Только свои",
};

/** The object types a grant exists for, in the order of the API's enum. */
const types: { type: ObjectType; word: Word }[] = [
  { type: ObjectType.COMPANY, word: "company" },
  { type: ObjectType.PERSON, word: "person" },
  { type: ObjectType.DEAL, word: "deal" },
  { type: ObjectType.TASK, word: "task" },
  { type: ObjectType.NOTE, word: "note" },
];

export function Permissions() {
  const i18n = useI18n();
  const w = (key: Word, params?: Record<string, string | number>) => i18n.format((i18n.locale === "ru" ? ru : en)[key], params);
  const queryClient = useQueryClient();
  const grants = useQuery(PermissionService.method.getRecordPermissions, {});
  // The box shows what was asked for at once; the server's answer (or its refusal) settles it.
  const [busy, setBusy] = useState<{ type: ObjectType; allow: boolean }>();
  const [notice, setNotice] = useState<NoticeText>();
  const allowed = new Set(grants.data?.membersEditAll ?? []);

  const change = async (type: ObjectType, word: Word, allow: boolean) => {
    setBusy({ type, allow });
    setNotice(undefined);
    try {
      const r = await permissions.setMembersEditAll({ objectType: type, allowed: allow });
      // The answer is the whole set: every screen reading the grants (record pages) sees it at once.
      queryClient.setQueryData(createConnectQueryKey({ schema: PermissionService.method.getRecordPermissions, input: {}, transport, cardinality: "finite" }), create(GetRecordPermissionsResponseSchema, { membersEditAll: r.membersEditAll }));
      setNotice({ text: w(allow ? "allowed" : "stopped", { type: w(word) }) });
    } catch (e) {
      setNotice({ text: describeError(e, i18n), error: true });
    } finally {
      setBusy(undefined);
    }
  };

  return (
    <section aria-labelledby="permissions-title">
      <h2 id="permissions-title">{w("title")}</h2>
      <p className="hint">{w("intro")}</p>
      <Notice notice={notice} />
      {grants.error && (
        <p role="alert" className="error">
          {describeError(grants.error, i18n)}
        </p>
      )}
      {grants.isPending ? (
        <p aria-busy="true">{i18n.t("app.loading")}</p>
      ) : (
        <table className="entries permissions" aria-labelledby="permissions-title">
          <thead>
            <tr>
              <th scope="col">{w("type")}</th>
              <th scope="col">{w("members")}</th>
            </tr>
          </thead>
          <tbody>
            {types.map(({ type, word }) => {
              const on = busy?.type === type ? busy.allow : allowed.has(type);
              return (
                <tr key={word} data-type={word}>
                  <th scope="row">{w(word)}</th>
                  <td>
                    <span className="inline-label">
                      <input
                        type="checkbox"
                        checked={on}
                        disabled={busy !== undefined}
                        aria-busy={busy?.type === type || undefined}
                        aria-label={w("allowOf", { type: w(word) })}
                        onChange={(e) => void change(type, word, e.target.checked)}
                      />
                      <span aria-hidden="true">{w(on ? "yes" : "no")}</span>
                    </span>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
