/** Small statistics for benchmark results. */

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * A latency histogram with fixed 1 µs buckets up to `maxMs`: constant memory however many
 * samples arrive, and exact percentiles at that resolution. Slower samples land in the last bucket.
 */
export class LatencyHistogram {
  private readonly buckets: Uint32Array;
  count = 0;

  constructor(maxMs = 200) {
    this.buckets = new Uint32Array(maxMs * 1000 + 1);
  }

  record(ms: number): void {
    const bucket = Math.min(this.buckets.length - 1, Math.round(ms * 1000));
    this.buckets[bucket]! += 1;
    this.count += 1;
  }

  /** The latency, in µs, below which `fraction` (0.5 for p50) of the samples fall. */
  percentileUs(fraction: number): number {
    const rank = Math.ceil(this.count * fraction);
    let seen = 0;
    for (let us = 0; us < this.buckets.length; us++) {
      seen += this.buckets[us]!;
      if (seen >= rank && seen > 0) return us;
    }
    return Number.NaN;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
