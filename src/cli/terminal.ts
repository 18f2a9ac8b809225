/**
 * Output for a person at a terminal: lines that wrap between words at the terminal's width, and
 * colour only where it helps and is wanted. Pipes and files get the plain text.
 */

/** Colour on a terminal, unless the user asked for none (https://no-color.org: NO_COLOR set and not empty). */
export function wantsColour(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === '');
}

/**
 * `text` in lines of at most `width` characters, broken between words (a word longer than a line
 * gets a line of its own), each line after the first starting with `indent`.
 */
export function wrapText(text: string, width: number, indent: string): string {
  if (text.length <= width) return text;
  const lead = /^ */.exec(text)![0];
  const lines: string[] = [];
  let line = lead;
  for (const word of text.slice(lead.length).split(' ')) {
    const room = lines.length === 0 ? width : width - indent.length;
    const empty = line.trim() === '';
    if (!empty && line.length + 1 + word.length > room) {
      lines.push(line);
      line = word;
    } else {
      line = empty ? line + word : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines.join(`\n${indent}`);
}

const GREEN = '\x1b[32m';
const RED = '\x1b[31m';
const DIM = '\x1b[2m';
const RESET = '\x1b[0m';

/** A lab's ✓, ✗ and • in green, red and dim. */
export const colourMarks = (line: string): string =>
  line.replace('✓', `${GREEN}✓${RESET}`).replace('✗', `${RED}✗${RESET}`).replace('•', `${DIM}•${RESET}`);

/**
 * Characters a terminal draws two columns wide (East Asian Width W and F in Unicode's tables):
 * CJK ideographs and kana, Hangul, full-width forms, most emoji.
 */
const WIDE = /[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{1f300}-\u{1f64f}\u{1f900}-\u{1f9ff}\u{20000}-\u{3fffd}]/u;
/** Characters drawn over the one before, or not at all: combining marks, zero-width spaces and joiners. */
const ZERO_WIDTH = /[\p{Mn}\p{Me}\u200b-\u200f]/u;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

const charWidth = (char: string): number => (ZERO_WIDTH.test(char) ? 0 : WIDE.test(char) ? 2 : 1);

/** The columns `text` takes on a terminal: not its length when it holds 日本語 or emoji. */
export function displayWidth(text: string): number {
  if (PRINTABLE_ASCII.test(text)) return text.length; // the common case, checked first because it is cheap
  let width = 0;
  for (const char of text) width += charWidth(char);
  return width;
}

/** `text` in at most `width` columns, ending with … where it was cut. */
export function truncateToWidth(text: string, width: number): string {
  if (displayWidth(text) <= width) return text;
  let kept = '';
  let used = 0;
  for (const char of text) {
    if (used + charWidth(char) > width - 1) break;
    kept += char;
    used += charWidth(char);
  }
  return width > 0 ? `${kept}…` : '';
}
