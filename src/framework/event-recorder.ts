/**
 * Keeps every event of a stream, in order, and waits for the one you expect, with a deadline.
 * For labs and tests, which ask "did the server accept us? what did the kernel say after the
 * close?": they read events, never log lines. A wait that is not met fails in seconds with a
 * message saying what was awaited, rather than hanging.
 */
import type { EventOf, EventStream, EventType, ServerEvent } from './events.js';

/** How long waitFor() waits by default: ample for loopback on a loaded machine. */
export const DEFAULT_EVENT_DEADLINE_MS = 5000;

export class EventRecorder {
  readonly events: ServerEvent[] = [];
  private readonly waiters = new Set<(event: ServerEvent) => void>();
  private readonly unsubscribe: () => void;

  constructor(stream: EventStream, types?: readonly EventType[]) {
    this.unsubscribe = stream.subscribe((event) => {
      this.events.push(event);
      for (const waiter of this.waiters) waiter(event);
    }, types);
  }

  /** The events of one type seen so far, optionally only those for which `where` holds. */
  of<T extends EventType>(type: T, where: (event: EventOf<T>) => boolean = () => true): EventOf<T>[] {
    return this.events.filter((event): event is EventOf<T> => event.type === type && where(event as EventOf<T>));
  }

  /**
   * The first event of `type` (or of one of several types) for which `where` holds, already seen
   * or still to come. Rejects after `deadlineMs` with an error that names the event awaited.
   */
  waitFor<T extends EventType>(type: T | readonly T[], where: (event: EventOf<T>) => boolean = () => true, deadlineMs = DEFAULT_EVENT_DEADLINE_MS): Promise<EventOf<T>> {
    const types: readonly EventType[] = typeof type === 'string' ? [type] : type;
    const matches = (event: ServerEvent): event is EventOf<T> => types.includes(event.type) && where(event as EventOf<T>);
    const seen = this.events.find(matches);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = (event: ServerEvent): void => {
        if (!matches(event)) return;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve(event);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`no ${types.join(' or ')} event within ${deadlineMs / 1000} s (last seen: ${this.events.slice(-10).map((e) => e.type).join(', ') || 'none'})`));
      }, deadlineMs);
      this.waiters.add(waiter);
    });
  }

  stop(): void {
    this.unsubscribe();
  }
}
