/**
 * A closed-loop driver in this process for calls h2load cannot make (unique bodies per request,
 * streams, typed clients): `concurrency` workers each await one call at a time until `total`
 * calls were made or `timeoutMs` passed.
 */
import { latency } from "./stats.js";
import type { LoadResult } from "./h2load.js";

export interface DriverOptions {
  concurrency: number;
  total: number;
  timeoutMs: number;
  call: (i: number) => Promise<unknown>;
}

export async function closedLoop(o: DriverOptions): Promise<LoadResult & { errorSamples: string[]; timedOut: boolean }> {
  const times: number[] = [];
  const errorSamples: string[] = [];
  let next = 0;
  let errors = 0;
  const deadline = Date.now() + o.timeoutMs;
  const started = performance.now();
  const worker = async () => {
    while (next < o.total && Date.now() < deadline) {
      const i = next++;
      const t0 = performance.now();
      try {
        await o.call(i);
        times.push(performance.now() - t0);
      } catch (err) {
        errors++;
        if (errorSamples.length < 5) errorSamples.push(String((err as Error)?.message ?? err).slice(0, 300));
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  return {
    tool: `node driver c=${o.concurrency}`,
    requests: times.length + errors,
    ok: times.length,
    errors,
    seconds,
    rps: times.length / seconds,
    ...latency(times),
    statuses: {},
    samplesMs: times,
    errorSamples,
    timedOut: next < o.total,
  };
}
