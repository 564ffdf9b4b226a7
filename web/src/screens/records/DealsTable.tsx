/** The deals of a filter (a company's, a person's) on a record page: name, stage, amount, status, expected close. */
import { Link } from "wouter";
import { useQuery } from "@connectrpc/connect-query";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import type { Filter } from "@crm/gen/crm/records/v1/common_pb";
import { statusWord, usePipelines } from "./common";
import { formatDate, formatMoney } from "./format";
import { useWords } from "./words";

export function DealsTable({ filter }: { filter: Filter | undefined }) {
  const words = useWords();
  const { w } = words;
  const deals = useQuery(DealService.method.listDeals, { filter, orderBy: "create_time desc", pageSize: 100 });
  const { stages } = usePipelines();
  const rows = deals.data?.deals ?? [];
  if (rows.length === 0) return <p>{deals.isPending ? "…" : w("noLinked")}</p>;
  return (
    <table className="records compact">
      <thead>
        <tr>
          <th scope="col">{w("name")}</th>
          <th scope="col">{w("stage")}</th>
          <th scope="col">{w("amount")}</th>
          <th scope="col">{w("status")}</th>
          <th scope="col">{w("closeDate")}</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((d) => (
          <tr key={d.id}>
            <th scope="row">
              <Link href={`/deals/${d.id}`}>{d.name}</Link>
            </th>
            <td>{stages.get(d.stageId)?.stage.name ?? ""}</td>
            <td className="num">{d.amountMinor !== undefined && d.currencyCode ? formatMoney(d.amountMinor, d.currencyCode, words.locale) : ""}</td>
            <td>{statusWord[d.status] ? w(statusWord[d.status]!) : ""}</td>
            <td>{d.expectedCloseDate ? formatDate(d.expectedCloseDate, words.locale) : ""}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
