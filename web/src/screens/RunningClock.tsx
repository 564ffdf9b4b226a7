/** The header's clock: the running timer's elapsed time, ticking every second, with a Stop button. */
import { useEffect, useState } from "react";
import { useMutation, useQuery, createConnectQueryKey } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { TimerService } from "@crm/gen/crm/timer/v1/timer_pb";
import { useI18n } from "../i18n";
import { describeError } from "../errors";

/** Now, re-read every second while `on`. */
export function useNow(on: boolean): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    if (!on) return;
    setNow(Date.now());
    const id = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(id);
  }, [on]);
  return now;
}

/** Tells this browser's other tabs that the timers changed, so their clocks follow at once. */
const timersChannel = typeof BroadcastChannel === "function" ? new BroadcastChannel("crm.timers") : undefined;
const timerKey = createConnectQueryKey({ schema: TimerService, cardinality: undefined });

/** Refetch every timer query (the header's clock and the week's list) after a change, here and in other tabs. */
export function useTimersChanged() {
  const queryClient = useQueryClient();
  return () => {
    timersChannel?.postMessage("changed");
    return queryClient.invalidateQueries({ queryKey: timerKey });
  };
}

function useTimersChangedElsewhere() {
  const queryClient = useQueryClient();
  useEffect(() => {
    if (!timersChannel) return;
    const onMessage = () => void queryClient.invalidateQueries({ queryKey: timerKey });
    timersChannel.addEventListener("message", onMessage);
    return () => timersChannel.removeEventListener("message", onMessage);
  }, [queryClient]);
}

export function RunningClock() {
  const i18n = useI18n();
  const { t } = i18n;
  const working = useQuery(TimerService.method.getWorkingTimer, {}, { refetchInterval: 60_000 });
  useTimersChangedElsewhere();
  const changed = useTimersChanged();
  const stop = useMutation(TimerService.method.endTimer, { onSuccess: changed });
  const timer = working.data?.timer;
  const now = useNow(Boolean(timer));
  if (!timer?.startTime) {
    return (
      <div className="clock idle">
        <span>{working.isPending ? "…" : t("timer.none")}</span>
      </div>
    );
  }
  const started = timestampDate(timer.startTime);
  return (
    <div className="clock running" role="group" aria-label={t("timer.running")}>
      <span className="clock-time" role="timer" aria-label={`${t("timer.running")}: ${timer.description || t("timers.noDescription")}`} data-started={started.toISOString()}>
        {i18n.clock(now - started.getTime())}
      </span>
      <span className="clock-desc">{timer.description}</span>
      <button type="button" onClick={() => stop.mutate({})} disabled={stop.isPending}>
        {t("timer.stop")}
      </button>
      {stop.error && (
        <span role="alert" className="error">
          {describeError(stop.error, i18n)}
        </span>
      )}
    </div>
  );
}
