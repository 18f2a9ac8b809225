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

/** Printable ASCII only: nothing to escape (the common case, checked first because it is cheap). */
const PLAIN_ASCII = /^[\x20-\x5b\x5d-\x7e]*$/;

/** Makes text safe to log; a string is escaped as its UTF-8 bytes would be. */
export function escapeText(text: string): string {
  return PLAIN_ASCII.test(text) ? text : escapeForLog(Buffer.from(text));
}

/** Makes client bytes safe to log: see the comment at the top of this file. */
export function escapeForLog(bytes: Uint8Array): string {
  const latin1 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  if (PLAIN_ASCII.test(latin1)) return latin1;
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
