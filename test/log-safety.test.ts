import assert from 'node:assert/strict';
import { test } from 'node:test';
import { escapeForLog, LinePreview, type LoggedLine } from '../src/framework/escape.js';

const escape = (bytes: number[] | string): string => escapeForLog(typeof bytes === 'string' ? Buffer.from(bytes) : Buffer.from(bytes));

test('printable ASCII and non-ASCII letters pass through', () => {
  assert.equal(escape('hello, world'), 'hello, world');
  assert.equal(escape('こんにちは é'), 'こんにちは é');
});

test('C0 controls, DEL and backslash are escaped', () => {
  assert.equal(escape('a\tb\r\n'), 'a\\tb\\r\\n');
  assert.equal(escape([0x00, 0x07, 0x1b, 0x7f]), '\\x00\\x07\\x1b\\x7f');
  assert.equal(escape('back\\slash'), 'back\\\\slash');
});

test('a terminal escape sequence loses its ESC, so a terminal shows it as text', () => {
  assert.equal(escape('\x1b[2J\x1b]0;pwned\x07'), '\\x1b[2J\\x1b]0;pwned\\x07');
});

test('C1 controls (U+0080–U+009F, e.g. the 8-bit CSI) are escaped', () => {
  assert.equal(escape([0xc2, 0x9b, 0x32, 0x4a]), '\\u{9b}2J');
});

test('bidirectional overrides and line separators are escaped', () => {
  assert.equal(escape('a\u202eb\u2028c\u2066d'), 'a\\u{202e}b\\u{2028}c\\u{2066}d');
});

test('bytes that are not UTF-8 are escaped one by one', () => {
  assert.equal(escape([0xff, 0xfe, 0x41]), '\\xff\\xfeA'); // never valid
  assert.equal(escape([0xe3, 0x81]), '\\xe3\\x81'); // a truncated sequence
  assert.equal(escape([0xc0, 0xaf]), '\\xc0\\xaf'); // an overlong "/"
  assert.equal(escape([0xed, 0xa0, 0x80]), '\\xed\\xa0\\x80'); // a UTF-16 surrogate
});

test('no byte value survives unescaped as a control character', () => {
  const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const text = escapeForLog(everyByte);
  assert.doesNotMatch(text, /[\u0000-\u001f\u007f-\u009f]/);
});

function collect(preview: LinePreview, chunks: Buffer[]): LoggedLine[] {
  const lines: LoggedLine[] = [];
  for (const chunk of chunks) preview.push(chunk, (line) => lines.push(line));
  preview.flush((line) => lines.push(line));
  return lines;
}

test('LinePreview joins lines split across chunks and drops the CR of CRLF', () => {
  const lines = collect(new LinePreview(80), [Buffer.from('hel'), Buffer.from('lo\r\nwor'), Buffer.from('ld\nlast')]);
  assert.deepEqual(lines, [
    { text: 'hello', length: 6, truncated: false },
    { text: 'world', length: 5, truncated: false },
    { text: 'last', length: 4, truncated: false },
  ]);
});

test('LinePreview keeps only the start of a 100 MiB line, and counts the rest', () => {
  const mebibyte = Buffer.alloc(1024 * 1024, 'a');
  const preview = new LinePreview(16);
  const lines: LoggedLine[] = [];
  for (let i = 0; i < 100; i++) preview.push(mebibyte, (line) => lines.push(line));
  assert.equal(lines.length, 0, 'no newline, so no line yet');
  preview.flush((line) => lines.push(line));
  assert.deepEqual(lines, [{ text: 'a'.repeat(16), length: 100 * 1024 * 1024, truncated: true }]);
});

test('LinePreview.skip drops the line in progress and resumes at the next whole line', () => {
  const preview = new LinePreview(80);
  const lines: LoggedLine[] = [];
  preview.push(Buffer.from('first\nsecond half-'), (line) => lines.push(line));
  preview.skip(); // the logger's budget is spent: stop looking
  const examined = preview.push(Buffer.from('seen later\nthird\n'), (line) => lines.push(line));
  assert.equal(examined, 'seen later\nthird\n'.length);
  preview.flush((line) => lines.push(line));
  assert.deepEqual(lines.map((line) => line.text), ['first', 'third'], 'the partly seen line is never logged as if whole');
});
