/**
 * Client bytes are untrusted. Before any of them reach a log (and so a terminal), we escape
 * everything that could move the cursor, recolour the screen or hide text:
 * C0 controls (below 0x20, which include ESC, the start of every terminal escape sequence),
 * DEL (0x7f), C1 controls (U+0080–U+009F, which some terminals also obey), Unicode
 * line separators and bidirectional overrides, and bytes that are not valid UTF-8.
 * Printable text, including non-ASCII letters (日本語, é), is kept as it is.
 */

const NAMED_ESCAPES: Record<number, string> = { 0x09: '\\t', 0x0a: '\\n', 0x0d: '\\r', 0x5c: '\\\\' };

const hexByte = (byte: number): string => `\\x${byte.toString(16).padStart(2, '0')}`;

/** Code points that are valid UTF-8 but still unsafe to print. */
function isUnsafeCodePoint(codePoint: number): boolean {
  return (
    (codePoint >= 0x80 && codePoint <= 0x9f) || // C1 controls
    codePoint === 0x2028 || codePoint === 0x2029 || // line and paragraph separators
    (codePoint >= 0x202a && codePoint <= 0x202e) || // bidirectional embeddings and overrides
    (codePoint >= 0x2066 && codePoint <= 0x2069) || // bidirectional isolates
    codePoint === 0xfeff // byte order mark, invisible
  );
}

/**
 * Decodes one UTF-8 sequence starting at `bytes[at]`.
 * Returns its code point and length, or undefined when the bytes are not well-formed UTF-8
 * (a stray continuation byte, a truncated sequence, an overlong form or a surrogate).
 */
function decodeUtf8At(bytes: Uint8Array, at: number): { codePoint: number; length: number } | undefined {
  const lead = bytes[at]!;
  const [length, min] = lead >= 0xf0 && lead <= 0xf4 ? [4, 0x10000] : lead >= 0xe0 ? [3, 0x800] : lead >= 0xc2 ? [2, 0x80] : [0, 0];
  if (length === 0 || at + length > bytes.length) return undefined;
  let codePoint = lead & (0xff >> (length + 1));
  for (let i = 1; i < length; i++) {
    const next = bytes[at + i]!;
    if ((next & 0xc0) !== 0x80) return undefined;
    codePoint = (codePoint << 6) | (next & 0x3f);
  }
  const isSurrogate = codePoint >= 0xd800 && codePoint <= 0xdfff;
  if (codePoint < min || codePoint > 0x10ffff || isSurrogate) return undefined;
  return { codePoint, length };
}

/** Makes client bytes safe to log: see the comment at the top of this file. */
export function escapeForLog(bytes: Uint8Array): string {
  let out = '';
  for (let at = 0; at < bytes.length; ) {
    const byte = bytes[at]!;
    if (byte < 0x80) {
      out += NAMED_ESCAPES[byte] ?? (byte < 0x20 || byte === 0x7f ? hexByte(byte) : String.fromCharCode(byte));
      at += 1;
      continue;
    }
    const decoded = decodeUtf8At(bytes, at);
    if (decoded === undefined) {
      out += hexByte(byte);
      at += 1;
    } else {
      const { codePoint, length } = decoded;
      out += isUnsafeCodePoint(codePoint) ? `\\u{${codePoint.toString(16)}}` : String.fromCodePoint(codePoint);
      at += length;
    }
  }
  return out;
}

export interface LoggedLine {
  /** The line's first bytes, escaped for the log. */
  text: string;
  /** The line's full length in bytes, without its newline. */
  length: number;
  truncated: boolean;
}

/**
 * Splits a byte stream into lines for logging while keeping only the first `maxBytes` of
 * each line. A client may send 100 MiB without a newline: we count it, we do not store it.
 */
export class LinePreview {
  private head: Buffer[] = [];
  private headBytes = 0;
  private length = 0;
  /** After skip(): the line in progress was not seen whole, so it is dropped up to its newline. */
  private resyncing = false;

  constructor(private readonly maxBytes: number) {}

  /**
   * Feeds a chunk; calls `onLine` for every line the chunk completes. If `onLine` calls
   * skip(), the rest of the chunk is not examined. Returns how many bytes were examined.
   */
  push(chunk: Buffer, onLine: (line: LoggedLine) => void): number {
    let start = 0;
    for (let newline = chunk.indexOf(0x0a); newline !== -1; newline = chunk.indexOf(0x0a, start)) {
      if (this.resyncing) {
        this.resyncing = false; // the end of a line we only saw part of: drop it
      } else {
        this.keep(chunk.subarray(start, newline));
        onLine(this.take());
      }
      start = newline + 1;
      if (this.resyncing) return start; // onLine said: no more lines for now
    }
    if (!this.resyncing) this.keep(chunk.subarray(start));
    return chunk.length;
  }

  /**
   * Stop looking: the caller will not log the bytes it is getting now (its log budget is spent),
   * so we do not even search them for newlines. Splitting, copying and escaping every 64-byte
   * line of a flood only to throw the result away was the echo server's biggest cost.
   * The line in progress is dropped; push() picks up again at the next whole line.
   */
  skip(): void {
    if (this.resyncing && this.length === 0) return; // skipping already: nothing kept to drop
    this.head = [];
    this.headBytes = 0;
    this.length = 0;
    this.resyncing = true;
  }

  /** The unterminated last line, if any (call when the stream ends). */
  flush(onLine: (line: LoggedLine) => void): void {
    if (this.length > 0 && !this.resyncing) onLine(this.take());
  }

  private keep(part: Buffer): void {
    this.length += part.length;
    const room = this.maxBytes - this.headBytes;
    if (room > 0 && part.length > 0) {
      // Copy: the chunk's memory belongs to the socket, and a slice would pin all of it.
      const kept = Buffer.from(part.subarray(0, room));
      this.head.push(kept);
      this.headBytes += kept.length;
    }
  }

  private take(): LoggedLine {
    let bytes = Buffer.concat(this.head, this.headBytes);
    if (bytes.at(-1) === 0x0d) bytes = bytes.subarray(0, -1); // telnet sends CRLF
    const line = { text: escapeForLog(bytes), length: this.length, truncated: this.length > this.headBytes };
    this.head = [];
    this.headBytes = 0;
    this.length = 0;
    return line;
  }
}
