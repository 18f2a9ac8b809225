/**
 * How a log stays readable under a flood: a budget of lines per second. Each budget is a token
 * bucket that also counts the lines it held back, so the next line it lets through can say how
 * many there were: "refused {...}: ... (37 earlier refusals not logged)". Nothing is lost silently.
 */
import { TokenBucket } from '../framework/token-bucket.js';

export class LogBudget {
  private readonly bucket?: TokenBucket;
  private heldBack = 0;

  /** `perSecond` lines a second after a burst of `burst`; 0 means no limit. */
  constructor(perSecond: number, burst: number) {
    if (perSecond > 0) this.bucket = new TokenBucket(perSecond, burst);
  }

  /**
   * May a line be written at `nowMs` (monotonic milliseconds)? Undefined when it must be held
   * back; otherwise the number of lines held back since the last one written (usually 0).
   */
  admit(nowMs: number): number | undefined {
    if (this.bucket !== undefined && !this.bucket.take(nowMs)) {
      this.heldBack += 1;
      return undefined;
    }
    const heldBack = this.heldBack;
    this.heldBack = 0;
    return heldBack;
  }
}

/** The sentence ending that says what a budget held back: ` (3 earlier refusals not logged)`, or nothing. */
export const heldBackNote = (count: number, what: string): string => (count > 0 ? ` (${count} earlier ${what} not logged)` : '');
