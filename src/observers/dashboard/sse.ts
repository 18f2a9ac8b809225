/**
 * Server-Sent Events (the WHATWG HTML standard, §9.2): one long HTTP response of
 * `text/event-stream`, a message at a time, that the browser's EventSource reads and reconnects to
 * by itself, sending the last `id:` it saw as the Last-Event-ID header.
 *
 * A message is a few `field: value` lines and a blank line. A value may not contain a line break
 * (it would start a new field), so a multi-line payload is sent as several `data:` lines, which the
 * browser joins with "\n".
 *
 * Backpressure: res.write() never blocks. When a browser stops reading (a laptop lid closed, a
 * tab frozen), the kernel's socket buffers fill, and every later write piles up in Node's memory
 * instead. So each client has a bound on the bytes waiting for it: past it, the client is dropped
 * (its socket destroyed), and its EventSource, if it wakes up, reconnects and starts over from a
 * fresh snapshot.
 */
import type { ServerResponse } from 'node:http';

/** Bytes that may wait, unsent, for one browser before it is dropped: a few snapshots' worth. */
export const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;

export interface SseMessage {
  /** The browser sends the last one back as Last-Event-ID when it reconnects. */
  id?: number;
  /** The name the page listens for (addEventListener); `message` when omitted. */
  event?: string;
  data: string;
}

const LINE_BREAK = /\r\n|\r|\n/;

/** One message, framed: `id:`, `event:`, a `data:` line per line of data, and the blank line that ends it. */
export function formatSseMessage({ id, event, data }: SseMessage): string {
  if (event !== undefined && (event === '' || LINE_BREAK.test(event))) throw new Error(`an SSE event name must be one non-empty line: ${JSON.stringify(event)}`);
  const head = `${id === undefined ? '' : `id: ${id}\n`}${event === undefined ? '' : `event: ${event}\n`}`;
  return `${head}${data.split(LINE_BREAK).map((line) => `data: ${line}\n`).join('')}\n`;
}

/** A comment line: ignored by EventSource, but it makes a dead connection fail its write. */
export const SSE_KEEPALIVE = ': keep-alive\n\n';

/** The response headers of an event stream. */
export const SSE_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  // Each message must reach the browser now: no cache, and no buffering by a proxy (nginx's header).
  'Cache-Control': 'no-store',
  'X-Accel-Buffering': 'no',
} as const;

/**
 * The Last-Event-ID a reconnecting browser sent: the id of the last message it received, or
 * undefined (a first visit, or a header that is not one of our ids).
 */
export function lastEventId(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  return value !== undefined && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

/** One browser's open event stream. */
export class SseClient {
  #dropped = false;

  constructor(
    private readonly response: ServerResponse,
    private readonly maxBufferedBytes = DEFAULT_MAX_BUFFERED_BYTES,
    /** Called once, when the client is dropped for not reading. */
    private readonly onDropped: () => void = () => {},
  ) {
    response.writeHead(200, SSE_HEADERS);
    // Headers now: the browser's EventSource reports "open" on them, before the first message.
    response.flushHeaders();
  }

  /** True once dropped for not reading, or gone. */
  get closed(): boolean {
    return this.#dropped || this.response.destroyed;
  }

  /** Bytes written but not yet taken by the kernel: what a slow reader costs us. */
  get bufferedBytes(): number {
    return this.response.writableLength;
  }

  /** Sends framed text; returns false (and drops the client) when too much already waits for it. */
  write(framed: string): boolean {
    if (this.closed) return false;
    if (this.response.writableLength + Buffer.byteLength(framed) > this.maxBufferedBytes) {
      this.drop();
      return false;
    }
    this.response.write(framed);
    return true;
  }

  send(message: SseMessage): boolean {
    return this.write(formatSseMessage(message));
  }

  /** Ends the stream in order (the server is stopping). */
  end(): void {
    if (!this.closed) this.response.end();
  }

  private drop(): void {
    this.#dropped = true;
    // destroy(), not end(): end() would queue behind the very bytes the browser is not reading.
    this.response.destroy();
    this.onDropped();
  }
}
