/** Latency summaries: percentiles by nearest rank over every sample (no sampling, no histogram buckets). */
export interface Latency {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function latency(samplesMs: ArrayLike<number>): Latency {
  const sorted = Float64Array.from(samplesMs).sort();
  return { p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN };
}

/** Rounds for tables: 3 significant digits, integers kept whole. */
export function round(x: number | undefined): number | undefined {
  if (x === undefined || !Number.isFinite(x)) return x;
  if (Math.abs(x) >= 100) return Math.round(x);
  return Number(x.toPrecision(3));
}
