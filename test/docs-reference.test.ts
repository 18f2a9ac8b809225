/**
 * The reference pages list what the code has: every error code of src/errors.ts, with its exit
 * status, in docs/reference/cli.md; every event type of src/framework/events.ts in
 * docs/reference/events.md and in the Log events table of docs/reference/cli.md, beside the lines
 * the CLI logs itself. A code or an event added without its line in the docs fails here.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES } from '../src/errors.js';
import { EVENT_TYPES } from '../src/framework/events.js';

// The compiled test runs from dist/test/, hence the ../../.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/** The Markdown tables of `markdown`: each a list of rows, each row its cells, trimmed (the divider row left out). */
export function tables(markdown: string): string[][][] {
  const found: string[][][] = [];
  let current: string[][] | undefined;
  for (const line of markdown.split('\n')) {
    if (!/^\s*\|.*\|\s*$/.test(line)) {
      current = undefined;
      continue;
    }
    const cells = line.trim().slice(1, -1).split(/(?<!\\)\|/).map((cell) => cell.trim());
    if (cells.every((cell) => /^:?-+:?$/.test(cell))) continue;
    if (current === undefined) found.push((current = []));
    current.push(cells);
  }
  return found;
}

/** The body rows of the tables whose header's first cell is `header`. */
const rowsUnder = (markdown: string, header: string): string[][] => tables(markdown).filter(([head]) => head?.[0] === header).flatMap((table) => table.slice(1));

/** The `code spans` of a cell: `ERR_USAGE`, `ERR_UNKNOWN_LAB` → ['ERR_USAGE', 'ERR_UNKNOWN_LAB']. */
const codeSpans = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((match) => match[1]!);

/** The part of `markdown` under the heading `title` (any level), up to the next heading of that level or higher. */
export function section(markdown: string, title: string): string {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => new RegExp(`^(#+) ${title}\\s*$`).test(line));
  if (start === -1) return '';
  const level = /^#+/.exec(lines[start]!)![0].length;
  const end = lines.findIndex((line, i) => i > start && /^#+ /.test(line) && /^#+/.exec(line)![0].length <= level);
  return lines.slice(start + 1, end === -1 ? undefined : end).join('\n');
}

/** Each error code named in the first cell of a table row, with the status in that row's second cell. */
export function documentedCodes(markdown: string): Map<string, string[]> {
  const statuses = new Map<string, string[]>();
  for (const [first = '', second = ''] of tables(markdown).flatMap((table) => table.slice(1))) {
    for (const code of codeSpans(first).filter((span) => /^ERR_[A-Z_]+$/.test(span))) {
      statuses.set(code, [...(statuses.get(code) ?? []), second]);
    }
  }
  return statuses;
}

/** The codes whose documented row is missing or gives another status than ERROR_CODES. */
export function codeProblems(markdown: string, codes: Readonly<Record<string, { exitCode: number }>>): string[] {
  const documented = documentedCodes(markdown);
  const problems: string[] = [];
  for (const [code, { exitCode }] of Object.entries(codes)) {
    const rows = documented.get(code);
    if (rows === undefined) problems.push(`${code}: no table row`);
    else if (!rows.every((status) => status === String(exitCode))) problems.push(`${code}: status ${rows.join(', ')} in the docs, ${exitCode} in src/errors.ts`);
  }
  for (const code of documented.keys()) if (!(code in codes)) problems.push(`${code}: documented, but not in src/errors.ts`);
  return problems;
}

/** The event names in the first cell of the rows of the tables headed `event`. */
const tabledEvents = (markdown: string): Set<string> => new Set(rowsUnder(markdown, 'event').flatMap(([first = '']) => codeSpans(first)));

/** The events the CLI logs itself, with pino, rather than through the event stream: `{ event: 'shutdown', ... }`. */
function cliOwnEvents(): string[] {
  const dir = join(ROOT, 'src/cli');
  const sources = readdirSync(dir).filter((name) => name.endsWith('.ts')).map((name) => readFileSync(join(dir, name), 'utf8'));
  return [...new Set(sources.flatMap((source) => [...source.matchAll(/\bevent: '([a-z-]+)'/g)].map((match) => match[1]!)))].sort();
}

const CLI_REFERENCE = 'docs/reference/cli.md';
const EVENTS_REFERENCE = 'docs/reference/events.md';

test('the checker notices a missing code, a wrong status and a stale one', () => {
  const codes = { ERR_A: { exitCode: 64 }, ERR_B: { exitCode: 69 }, ERR_C: { exitCode: 1 } };
  const markdown = '| code | status | meaning |\n| --- | --- | --- |\n| `ERR_A` | 64 | a |\n| `ERR_B`, `ERR_OLD` | 64 | b |\n\nprose\n';
  assert.deepEqual(codeProblems(markdown, codes), [
    'ERR_B: status 64 in the docs, 69 in src/errors.ts',
    'ERR_C: no table row',
    'ERR_OLD: documented, but not in src/errors.ts',
  ]);
});

test('every error code of src/errors.ts is in docs/reference/cli.md, with its exit status in its row', () => {
  const codesSection = section(read(CLI_REFERENCE), 'Exit statuses');
  assert.notEqual(codesSection, '', `${CLI_REFERENCE} has an "Exit statuses" section`);
  assert.deepEqual(codeProblems(codesSection, ERROR_CODES), []);
});

test('every event type is in docs/reference/events.md', () => {
  const documented = tabledEvents(read(EVENTS_REFERENCE));
  const missing = EVENT_TYPES.filter((type) => !documented.has(type));
  assert.deepEqual(missing, [], `event types with no table row in ${EVENTS_REFERENCE}`);
  const stale = [...documented].filter((name) => !EVENT_TYPES.includes(name as never));
  assert.deepEqual(stale, [], `rows in ${EVENTS_REFERENCE} for events that do not exist`);
});

test("the Log events table of docs/reference/cli.md lists every event type and the CLI's own lines, and nothing else", () => {
  const logEvents = section(read(CLI_REFERENCE), 'Log events');
  assert.notEqual(logEvents, '', `${CLI_REFERENCE} has a "Log events" section`);
  const documented = tabledEvents(logEvents);
  const own = cliOwnEvents();
  assert.ok(own.includes('shutdown'), `found the CLI's own log lines (${own.join(', ')})`);
  const expected = [...EVENT_TYPES, ...own];
  assert.deepEqual(expected.filter((type) => !documented.has(type)), [], 'events with no row in the Log events table');
  assert.deepEqual([...documented].filter((type) => !expected.includes(type)), [], 'rows for events that are neither in EVENT_TYPES nor logged by the CLI');
});
