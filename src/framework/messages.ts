/**
 * The lines a client sends, as `message` events, the way the tutorial's Perl server printed
 * "message: ..." for each line it read. Echo uses it; any line-based protocol can.
 *
 * TCP carries a byte stream, not lines: a chunk from read(2) holds whatever the kernel had, so a
 * line may be split across chunks and a chunk may hold many lines. So we look for newlines and
 * join the pieces. Looking is the costly part (more than echoing the bytes back), so only the first
 * LINES_REPORTED_PER_CONNECTION lines of a connection are looked for; after that the bytes pass
 * through unexamined. And each line keeps only its first PREVIEW_BYTES, escaped: a client may send
 * 100 MiB without a newline, and we count those bytes rather than store them.
 */
import { escapeForLog } from './escape.js';

/** Lines reported per connection: enough to see a conversation, few enough that a flood costs nothing. */
export const LINES_REPORTED_PER_CONNECTION = 20;
/** How much of each line an event shows; its full length is counted. */
export const PREVIEW_BYTES = 80;

/** One line, as a `message` event carries it. */
export interface LinePreview {
  /** 1 for the connection's first line. */
  line: number;
  /** The line's first PREVIEW_BYTES, escaped, without its CR LF. */
  text: string;
  /** The line's length in bytes, without its LF. */
  length: number;
  truncated: boolean;
}

export interface LineReporter {
  /** Feed a chunk as it was read. */
  push(chunk: Buffer): void;
  /** The stream ended (the client's FIN): report an unterminated last line. */
  end(): void;
}

/** For a connection whose lines nobody wants: costs one call per chunk. */
export const IGNORE_LINES: LineReporter = { push() {}, end() {} };

export class LineSplitter implements LineReporter {
  /** The first bytes of the line in progress (copies: a slice would pin the whole chunk). */
  private head: Buffer[] = [];
  private headBytes = 0;
  private length = 0;
  private reported = 0;

  constructor(private readonly report: (line: LinePreview) => void) {}

  push(chunk: Buffer): void {
    if (!this.wantsMore()) return; // done looking: the rest of the stream passes unexamined
    let start = 0;
    for (let newline = chunk.indexOf(0x0a); newline !== -1 && this.wantsMore(); newline = chunk.indexOf(0x0a, start)) {
      this.keep(chunk.subarray(start, newline));
      this.reportLine();
      start = newline + 1;
    }
    if (this.wantsMore()) this.keep(chunk.subarray(start));
  }

  end(): void {
    if (this.length > 0 && this.wantsMore()) this.reportLine();
  }

  private wantsMore(): boolean {
    return this.reported < LINES_REPORTED_PER_CONNECTION;
  }

  private keep(part: Buffer): void {
    this.length += part.length;
    const room = PREVIEW_BYTES - this.headBytes;
    if (room > 0 && part.length > 0) {
      const kept = Buffer.from(part.subarray(0, room));
      this.head.push(kept);
      this.headBytes += kept.length;
    }
  }

  private reportLine(): void {
    let bytes = Buffer.concat(this.head, this.headBytes);
    if (bytes.at(-1) === 0x0d) bytes = bytes.subarray(0, -1); // telnet sends CRLF
    this.reported += 1;
    this.report({ line: this.reported, text: escapeForLog(bytes), length: this.length, truncated: this.length > this.headBytes });
    this.head = [];
    this.headBytes = 0;
    this.length = 0;
  }
}
