/** crm.logs.v1.LogsService handlers: validate, hand to the sink, answer at once. */
import type { ServiceImpl } from "@connectrpc/connect";
import { AppError, callingService, principalKey } from "@crm/kit";
import type { LogsService } from "@crm/gen/crm/logs/v1/logs_pb";
import type { Sink } from "./shipper.js";
import { validateSaveLogs, type Caller } from "./validation.js";

export interface LogsDeps {
  sink: Sink;
  now?: () => number;
}

export function logsService(deps: LogsDeps): ServiceImpl<typeof LogsService> {
  const now = deps.now ?? Date.now;
  return {
    async saveLogs(req, ctx) {
      const principal = ctx.values.get(principalKey);
      const peer = callingService(ctx.values);
      let caller: Caller;
      if (principal) caller = { user: { companyId: principal.companyId, userId: principal.userId } };
      else if (peer) caller = { service: peer };
      else throw new AppError("unauthenticated", "SaveLogs needs an access token or a service identity (mTLS certificate)");
      const records = validateSaveLogs(req, caller, now());
      if (!req.waitShipped) {
        deps.sink.push(records); // buffered: never waits for Loki
        return { accepted: records.length };
      }
      // The caller keeps its entries until Loki has them (the audit log's shipping acks its queue then).
      const shipped = deps.sink.pushAndWait(records);
      shipped.catch(() => {}); // when the caller is gone, the outcome is nobody's
      try {
        await new Promise<void>((resolve, reject) => {
          const abort = () => reject(new Error("the call's deadline passed"));
          if (ctx.signal.aborted) return abort();
          ctx.signal.addEventListener("abort", abort, { once: true });
          shipped.then(resolve, reject).finally(() => ctx.signal.removeEventListener("abort", abort));
        });
      } catch (err) {
        throw new AppError("unavailable", `the entries were not shipped to Loki yet (${(err as Error).message}): send them again`);
      }
      return { accepted: records.length };
    },
  };
}
