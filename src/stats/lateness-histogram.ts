import { LATENESS_BUCKETS } from '../metrics/karya-metrics';

/**
 * The lateness histogram of task_stats (operations.migration.ts): one count per bucket of LATENESS_BUCKETS
 * (upper bounds in seconds, inclusive like Prometheus's `le`), plus one slot for anything later than the
 * last bound.
 */
export const LATENESS_SLOTS = LATENESS_BUCKETS.length + 1;

/** The slot a lateness (seconds) falls into; early starts (clock skew, negative) count as 0. */
export function latenessSlot(seconds: number): number {
  const s = Number.isFinite(seconds) ? Math.max(0, seconds) : Infinity;
  for (let i = 0; i < LATENESS_BUCKETS.length; i++) if (s <= LATENESS_BUCKETS[i]) return i;
  return LATENESS_BUCKETS.length;
}

/**
 * The q-quantile (0 < q <= 1) of a lateness histogram, in milliseconds, or null when it holds nothing.
 * Estimated by linear interpolation inside the bucket the quantile falls in (between its lower bound, the
 * previous bucket's upper bound or 0, and its upper bound), as Prometheus's histogram_quantile does; the
 * overflow slot has no upper bound, so a quantile that falls there is reported as the last bound (60 s),
 * a lower bound of the truth. Rounded to 0.01 ms.
 */
export function latenessPercentileMs(counts: readonly number[], q: number): number | null {
  let total = 0;
  for (const c of counts) total += c;
  if (total <= 0) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i];
    if (c > 0 && below + c >= rank) {
      const lower = i === 0 ? 0 : LATENESS_BUCKETS[Math.min(i, LATENESS_BUCKETS.length) - 1];
      if (i >= LATENESS_BUCKETS.length) return round(lower * 1000);
      const upper = LATENESS_BUCKETS[i];
      return round((lower + (upper - lower) * ((rank - below) / c)) * 1000);
    }
    below += c;
  }
  // Unreachable for 0 < q <= 1: the last non-empty slot reaches the total.
  return null;
}

/** Element-wise sum of `add` into `into` (arrays of LATENESS_SLOTS counts; a shorter one counts as zeros). */
export function addCounts(into: number[], add: readonly number[]): void {
  for (let i = 0; i < Math.min(into.length, add.length); i++) into[i] += add[i];
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
