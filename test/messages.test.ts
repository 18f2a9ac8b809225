/** Finding lines in a byte stream, for echo's `message` events (src/framework/messages.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LINES_REPORTED_PER_CONNECTION, LineSplitter, PREVIEW_BYTES, type LinePreview } from '../src/framework/messages.js';

function split(chunks: (string | Buffer)[], end = true): LinePreview[] {
  const lines: LinePreview[] = [];
  const splitter = new LineSplitter((line) => lines.push(line));
  for (const chunk of chunks) splitter.push(Buffer.from(chunk));
  if (end) splitter.end();
  return lines;
}

test('lines split across chunks are joined; CRLF loses its CR; an unterminated last line comes at the end', () => {
  assert.deepEqual(split(['hel', 'lo\r\nwor', 'ld\nlast']), [
    { line: 1, text: 'hello', length: 6, truncated: false },
    { line: 2, text: 'world', length: 5, truncated: false },
    { line: 3, text: 'last', length: 4, truncated: false },
  ]);
  assert.deepEqual(split(['no newline yet'], false), [], 'a line is reported once it is whole');
});

test('100 MiB without a newline: counted, not kept; the preview is the first bytes, escaped', () => {
  const mebibyte = Buffer.alloc(1024 * 1024, 'a');
  const lines = split([Buffer.from('\x1b'), ...Array.from({ length: 100 }, () => mebibyte)]);
  assert.deepEqual(lines, [{ line: 1, text: `\\x1b${'a'.repeat(PREVIEW_BYTES - 1)}`, length: 100 * 1024 * 1024 + 1, truncated: true }]);
});

test(`after ${LINES_REPORTED_PER_CONNECTION} lines it stops looking, even in the middle of a chunk`, () => {
  const many = Array.from({ length: LINES_REPORTED_PER_CONNECTION + 5 }, (_, i) => `${i}\n`).join('');
  const lines = split([many, 'more\n', 'tail']);
  assert.equal(lines.length, LINES_REPORTED_PER_CONNECTION);
  assert.deepEqual(lines.at(-1), { line: LINES_REPORTED_PER_CONNECTION, text: String(LINES_REPORTED_PER_CONNECTION - 1), length: 2, truncated: false });
});
