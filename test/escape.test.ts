import assert from 'node:assert/strict';
import { test } from 'node:test';
import { escapeForLog, escapeText } from '../src/framework/escape.js';

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

test('escapeText: a plain ASCII string as it is; anything else as its UTF-8 bytes would be', () => {
  assert.equal(escapeText('Sun Nov  1 09:05:03 2026'), 'Sun Nov  1 09:05:03 2026');
  assert.equal(escapeText('a\x1b[2Jb é\\'), 'a\\x1b[2Jb é\\\\');
});
