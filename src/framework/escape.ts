/**
 * Untrusted text is escaped before it reaches a terminal, a log or a page: a client's bytes, a
 * host name (whoever runs the DNS of the client's address chose its PTR name), a command-line
 * argument, a file path, an environment variable. One rule, here, for all of them. Escaped:
 *
 * - Control characters (Unicode category Cc): C0, below 0x20, with ESC, which starts every
 *   terminal escape sequence (`ESC ] 0 ;` sets the window title, `ESC [ 2 J` clears the screen);
 *   DEL; and C1, U+0080–U+009F, which some terminals obey too (U+009B is an 8-bit CSI).
 * - Format characters (Cf): invisible, yet they change how the text around them is shown. The
 *   bidirectional marks, embeddings, overrides and isolates (U+200E, U+200F, U+061C, U+202A–U+202E,
 *   U+2066–U+2069) make a line read otherwise than it is stored ("Trojan Source", CVE-2021-42574);
 *   zero-width spaces and joiners (U+200B–U+200D, U+2060), the soft hyphen (U+00AD), the tag
 *   characters (U+E0001–U+E007F), the byte order mark and the interlinear annotations
 *   (U+FFF9–U+FFFB) hide text or make two different strings look the same.
 * - The line and paragraph separators (Zl, Zp): a line break to some terminals and editors.
 * - Every other Default_Ignorable_Code_Point: characters a terminal draws as nothing, among them
 *   the variation selectors (U+FE00–U+FE0F, U+E0100–U+E01EF) and the Hangul fillers (U+115F,
 *   U+1160, U+3164, U+FFA0), which can make a name look blank or like another. (An emoji that
 *   uses U+FE0F or a joiner then shows those as escapes: a price worth paying in a log.)
 * - Lone UTF-16 surrogates (Cs): not text at all; a JavaScript string may hold them.
 * - The backslash, so that no escape can be forged: `\x1b` in a log is an ESC, `\\x1b` four characters.
 *
 * Unicode properties rather than a list of code points: Unicode adds format characters from time
 * to time, and Node's ICU knows them. Each is written `\xNN` below 0x80 (`\t`, `\n`, `\r` by name)
 * and `\u{…}` above; bytes that are not UTF-8 as `\xNN` each. Printable text, non-ASCII letters and
 * right-to-left scripts included (日本語, é, עברית), passes as it is.
 */
import { isUtf8 } from 'node:buffer';

/** One character that must be escaped. */
const UNSAFE_CHARACTER = /^[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Default_Ignorable_Code_Point}\\]$/u;

/** Printable ASCII only: nothing to escape (the common case, checked first because it is cheap). */
const PLAIN_ASCII = /^[\x20-\x5b\x5d-\x7e]*$/;

const NAMED_ESCAPES: Record<number, string> = { 0x09: '\\t', 0x0a: '\\n', 0x0d: '\\r', 0x5c: '\\\\' };

const hexByte = (byte: number): string => `\\x${byte.toString(16).padStart(2, '0')}`;

/** One unsafe character, escaped. */
function escapeCharacter(character: string): string {
  const codePoint = character.codePointAt(0)!;
  return NAMED_ESCAPES[codePoint] ?? (codePoint < 0x80 ? hexByte(codePoint) : `\\u{${codePoint.toString(16)}}`);
}

/**
 * Which UTF-16 code units are unsafe: UNSAFE_CHARACTER asked once for each, when the first text
 * that is not plain ASCII arrives (a few milliseconds). Looking a character up is several times
 * faster than running the regular expression over a line, and echo escapes every logged line.
 * Surrogates are marked: a pair is then looked up as the one character it makes.
 */
let unsafeCodeUnits: Uint8Array | undefined;
function unsafeTable(): Uint8Array {
  if (unsafeCodeUnits === undefined) {
    unsafeCodeUnits = new Uint8Array(0x10000);
    for (let unit = 0; unit < 0x10000; unit++) unsafeCodeUnits[unit] = UNSAFE_CHARACTER.test(String.fromCharCode(unit)) ? 1 : 0;
  }
  return unsafeCodeUnits;
}

/** The text with each unsafe character escaped; a backslash too, unless `keepBackslash`. */
function escapeUnsafe(text: string, keepBackslash: boolean): string {
  if (PLAIN_ASCII.test(text)) return text;
  const unsafe = unsafeTable();
  let out = '';
  let copiedUpTo = 0;
  for (let at = 0; at < text.length; at++) {
    const unit = text.charCodeAt(at);
    if (unsafe[unit] === 0 || (keepBackslash && unit === 0x5c)) continue;
    const next = text.charCodeAt(at + 1);
    const isPair = unit >= 0xd800 && unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff;
    const character = text.slice(at, isPair ? at + 2 : at + 1);
    if (isPair && !UNSAFE_CHARACTER.test(character)) {
      at += 1; // an emoji, a rare CJK ideograph: printable
      continue;
    }
    out += text.slice(copiedUpTo, at) + escapeCharacter(character);
    at += character.length - 1;
    copiedUpTo = at + 1;
  }
  return copiedUpTo === 0 ? text : out + text.slice(copiedUpTo);
}

/** Makes an untrusted string safe to show: see the comment at the top of this file. */
export function escapeText(text: string): string {
  return escapeUnsafe(text, false);
}

/**
 * Makes a message of ours safe to print when it quotes untrusted values (argv, a path): the same
 * characters are escaped, but a backslash is kept, since the message's own come from
 * JSON.stringify. LabError applies it to every message, and the CLI to an internal error's.
 */
export function escapeMessage(text: string): string {
  return escapeUnsafe(text, true);
}

/** escapeMessage for each line of a text whose line breaks are meant (a stack trace, one frame a line). */
export const escapeLines = (text: string): string => text.split('\n').map(escapeMessage).join('\n');

/** An untrusted value in double quotes, escaped (a quote inside as `\"`): for messages. */
export const quoted = (value: string): string => `"${escapeText(value).replaceAll('"', '\\"')}"`;

/** Makes client bytes safe to log: valid UTF-8 as escapeText would show it, each other byte as `\xNN`. */
export function escapeForLog(bytes: Uint8Array): string {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const latin1 = buffer.toString('latin1');
  if (PLAIN_ASCII.test(latin1)) return latin1;
  // Valid UTF-8 (what a client nearly always sends) is decoded by Node at once; only malformed input takes the loop below.
  if (isUtf8(buffer)) return escapeText(buffer.toString('utf8'));
  let out = '';
  let wellFormedFrom = 0; // the start of the bytes decoded since the last malformed one
  for (let at = 0; at < bytes.length; ) {
    const length = wellFormedLength(bytes, at);
    if (length > 0) {
      at += length;
      continue;
    }
    out += escapeText(buffer.toString('utf8', wellFormedFrom, at)) + hexByte(bytes[at]!);
    at += 1;
    wellFormedFrom = at;
  }
  return out + escapeText(buffer.toString('utf8', wellFormedFrom));
}

/**
 * The length of the UTF-8 sequence starting at `bytes[at]`, or 0 when the bytes there are not
 * well-formed UTF-8 (a stray continuation byte, a truncated sequence, an overlong form, a surrogate,
 * a code point above U+10FFFF).
 */
function wellFormedLength(bytes: Uint8Array, at: number): number {
  const lead = bytes[at]!;
  if (lead < 0x80) return 1;
  const [length, min] = lead >= 0xf0 && lead <= 0xf4 ? [4, 0x10000] : lead >= 0xe0 && lead < 0xf0 ? [3, 0x800] : lead >= 0xc2 && lead < 0xe0 ? [2, 0x80] : [0, 0];
  if (length === 0 || at + length > bytes.length) return 0;
  let codePoint = lead & (0xff >> (length + 1));
  for (let i = 1; i < length; i++) {
    const next = bytes[at + i]!;
    if ((next & 0xc0) !== 0x80) return 0;
    codePoint = (codePoint << 6) | (next & 0x3f);
  }
  const isSurrogate = codePoint >= 0xd800 && codePoint <= 0xdfff;
  return codePoint < min || codePoint > 0x10ffff || isSurrogate ? 0 : length;
}
