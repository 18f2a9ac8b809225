/**
 * A token bucket: up to `burst` events at once, then `perSecond` on average. Each event takes a
 * token; tokens come back at a steady rate, up to `burst`. The time is passed in, in milliseconds
 * on any monotonic clock, so a test can drive a bucket without waiting.
 */
export class TokenBucket {
  private tokens: number;
  private lastMs?: number;

  constructor(
    readonly perSecond: number,
    readonly burst: number,
  ) {
    this.tokens = burst;
  }

  /** Takes a token if there is one: true when the event may happen at `nowMs`. */
  take(nowMs: number): boolean {
    if (this.lastMs !== undefined) this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.lastMs) / 1000) * this.perSecond);
    this.lastMs = nowMs;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
