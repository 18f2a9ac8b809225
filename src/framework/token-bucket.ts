/**
 * A token bucket: up to `burst` events at once, then `perSecond` on average. Each event takes a
 * token; tokens come back at a steady rate, up to `burst`. The time is passed in, in milliseconds
 * on any monotonic clock, so a test can drive a bucket without waiting.
 */
export class TokenBucket {
  private tokens: number;
  private lastMs?: number;

  /** A full bucket, unless told to start with fewer tokens (`initial`). */
  constructor(
    readonly perSecond: number,
    readonly burst: number,
    initial = burst,
  ) {
    this.tokens = Math.min(initial, burst);
  }

  /** Takes `cost` tokens (one event, or one per byte) if there are that many: true when the event may happen at `nowMs`. */
  take(nowMs: number, cost = 1): boolean {
    this.refill(nowMs);
    if (this.tokens < cost) return false;
    this.tokens -= cost;
    return true;
  }

  /** Whether `cost` tokens are there at `nowMs`, without taking them. */
  has(nowMs: number, cost = 1): boolean {
    this.refill(nowMs);
    return this.tokens >= cost;
  }

  private refill(nowMs: number): void {
    if (this.lastMs !== undefined) this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.lastMs) / 1000) * this.perSecond);
    this.lastMs = nowMs;
  }
}
