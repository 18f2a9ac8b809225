import assert from 'node:assert/strict';
import { test } from 'node:test';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitCode, LabError } from '../src/errors.js';
import { escapeForLog, escapeLines, escapeMessage, escapeText, quoted } from '../src/framework/escape.js';
import { LogObserver } from '../src/observers/log.js';
import { echo } from '../src/protocols/echo.js';
import { captureLog } from './helpers/capture-log.js';
import { assertOneLineError, LAB_CLIENT, LAB_SERVER, run } from './helpers/cli.js';
import { connect, startServer } from './helpers/servers.js';

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

/** Each class of invisible or reordering character, with examples from both ends of its range. */
const UNSAFE_CLASSES: Record<string, number[]> = {
  'bidirectional marks (Trojan Source)': [0x200e, 0x200f, 0x061c],
  'bidirectional embeddings and overrides': [0x202a, 0x202b, 0x202c, 0x202d, 0x202e],
  'bidirectional isolates': [0x2066, 0x2067, 0x2068, 0x2069],
  'zero-width space, non-joiner, joiner, word joiner': [0x200b, 0x200c, 0x200d, 0x2060],
  'soft hyphen': [0x00ad],
  'tag characters': [0xe0001, 0xe0020, 0xe0041, 0xe007f],
  'variation selectors': [0xfe00, 0xfe0f, 0xe0100, 0xe01ef],
  'interlinear annotations': [0xfff9, 0xfffa, 0xfffb],
  'Hangul fillers': [0x115f, 0x1160, 0x3164, 0xffa0],
  'line and paragraph separators, byte order mark': [0x2028, 0x2029, 0xfeff],
  'C1 controls': [0x80, 0x85, 0x9b, 0x9f],
};

for (const [name, codePoints] of Object.entries(UNSAFE_CLASSES)) {
  test(`escaped: ${name}`, () => {
    for (const codePoint of codePoints) {
      const character = String.fromCodePoint(codePoint);
      const expected = `a\\u{${codePoint.toString(16)}}b`;
      assert.equal(escapeText(`a${character}b`), expected, `U+${codePoint.toString(16)} in a string`);
      assert.equal(escape(`a${character}b`), expected, `U+${codePoint.toString(16)} in client bytes`);
      assert.equal(escapeMessage(`a${character}b`), expected, `U+${codePoint.toString(16)} in a message`);
    }
  });
}

test('printable text of every script passes as it is, emoji and right-to-left letters included', () => {
  for (const text of ['日本語 한국어 é ß', 'שלום עולם مرحبا', 'grinning 😀, a rare ideograph 𠀋']) {
    assert.equal(escapeText(text), text);
    assert.equal(escape(text), text);
  }
});

test('no character of Unicode that draws nothing or reorders text survives, by either path', () => {
  // Every code point but the surrogates (which UTF-8 cannot carry): bytes and string paths alike.
  const every: string[] = [];
  for (let codePoint = 0; codePoint <= 0x10ffff; codePoint++) if (codePoint < 0xd800 || codePoint > 0xdfff) every.push(String.fromCodePoint(codePoint));
  const text = every.join('');
  const invisible = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Default_Ignorable_Code_Point}]/u;
  assert.doesNotMatch(escapeText(text), invisible);
  assert.doesNotMatch(escapeForLog(Buffer.from(text)), invisible);
  assert.doesNotMatch(escapeMessage(text), invisible);
});

test('a lone surrogate in a string is escaped', () => {
  assert.equal(escapeText('a\ud800b\udfff'), 'a\\u{d800}b\\u{dfff}');
});

test('malformed bytes beside unsafe characters: each escaped its own way', () => {
  const bytes = Buffer.concat([Buffer.from('a\u202e'), Buffer.from([0xff]), Buffer.from('b\x1b\\'), Buffer.from([0xf5, 0x80, 0x80])]);
  assert.equal(escapeForLog(bytes), 'a\\u{202e}\\xffb\\x1b\\\\\\xf5\\x80\\x80');
});

test('escapeMessage keeps the backslashes of JSON.stringify; quoted escapes them, and its quotes', () => {
  const argument = 'x\x1b]0;pwned\x07"\u202e\\';
  assert.equal(escapeMessage(`unknown ${JSON.stringify(argument)}`), 'unknown "x\\u001b]0;pwned\\u0007\\"\\u{202e}\\\\"');
  assert.equal(quoted(argument), '"x\\x1b]0;pwned\\x07\\"\\u{202e}\\\\"');
  assert.equal(escapeLines('Error: a\x9b\n    at f (x.js:1)'), 'Error: a\\u{9b}\n    at f (x.js:1)');
});

test('a LabError never carries a raw control character, whoever built its message', () => {
  const error = new LabError('ERR_QUOTES_FILE', 'cannot read --quotes "/tmp/\x1b]0;pwned\x07\u009b2J\u2066"');
  assert.equal(error.message, 'cannot read --quotes "/tmp/\\x1b]0;pwned\\x07\\u{9b}2J\\u{2066}"');
});

test('--resolve: a host name with ESC and a bidi override (a PTR record or /etc/hosts) is escaped in the event and the log', async () => {
  const hostile = 'evil\x1b]0;pwned\x07\u202eexample.com';
  const { server, port, events } = await startServer(echo, { resolvePeerNames: async () => ({ hostname: hostile }) });
  const log = captureLog('info');
  const observer = new LogObserver(server.events.stream, log.logger, { connectionsPerSecond: 0 });
  const client = await connect(port);
  try {
    const named = await events.waitFor('peer-name');
    assert.equal(named.host, 'evil\\x1b]0;pwned\\x07\\u{202e}example.com');
    const [line] = log.events('peer-name');
    assert.equal(line?.host, named.host);
    assert.doesNotMatch(JSON.stringify(log.lines), /\\u001b|\u202e/);
  } finally {
    client.end();
    await once(client, 'close');
    observer.stop();
    await server.close(0);
  }
});

test('argv and paths with ESC, C1 and bidi characters come back escaped in the one-line error, never raw', async () => {
  // Sets the terminal's title: with 7-bit controls (ESC ] ... BEL), which JSON.stringify already
  // escaped, and with the 8-bit ones (OSC U+009D ... ST U+009C), which it passed through raw.
  const osc = '\x1b]0;pwned\x07\u009d0;pwned\u009c';
  const cases: [program: string, args: string[], exitCode: number][] = [
    [LAB_SERVER, [`ech${osc}o`], ExitCode.usage],
    [LAB_SERVER, ['echo', '--port', `\x1b[2J\u009b2J`], ExitCode.usage],
    [LAB_SERVER, ['echo', '--log-level', `debug\u202e`], ExitCode.usage],
    [LAB_SERVER, ['echo', `--\x1b[31mred`], ExitCode.usage],
    [LAB_SERVER, ['qotd', '--port', '0', '--quotes', join(tmpdir(), `no-such-${osc}quotes.txt`)], ExitCode.usage],
    [LAB_SERVER, ['echo', '--port', '0', '--log-file', join(tmpdir(), `no-such-dir${osc}`, 'log')], ExitCode.cantCreate],
    [LAB_CLIENT, ['daytime', `[::1${osc}\u2066`], ExitCode.usage],
  ];
  await Promise.all(
    cases.map(async ([program, args, exitCode]) => {
      const result = await run(program, args);
      assertOneLineError(result, exitCode, /^lab-(server|client): /);
      assert.doesNotMatch(result.stderr.trimEnd(), /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u, `raw control characters in ${JSON.stringify(result.stderr)}`);
      assert.match(result.stderr, /\\(x1b|u001b|u\{9b\}|u\{9d\}|u\{202e\}|u\{2066\})/, `the escaped form is shown: ${result.stderr}`);
    }),
  );
});
