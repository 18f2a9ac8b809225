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
