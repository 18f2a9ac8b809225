/**
 * A token bucket: up to `burst` events at once, refilled at `perSecond`.
 * Used to keep a flood of client messages from turning logging into the bottleneck.
 */
export class RateLimiter {
  private tokens: number;
  private last: number;
  /** Events refused since the last one allowed; reported with the next allowed event. */
  private refused = 0;

  constructor(
    readonly perSecond: number,
    private readonly burst: number,
    private readonly nowMs: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.last = nowMs();
  }

  /**
   * Returns undefined when the event must be dropped, or the number of events dropped
   * before this one (0 when none were).
   */
  take(): number | undefined {
    const now = this.nowMs();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) {
      this.refused += 1;
      return undefined;
    }
    this.tokens -= 1;
    const refused = this.refused;
    this.refused = 0;
    return refused;
  }

  /** Events dropped and not yet reported. */
  get pending(): number {
    return this.refused;
  }
}
