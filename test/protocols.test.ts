/** The small services over TCP: exact bytes from each RFC, and a registry that needs no framework change. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LabError } from '../src/errors.js';
import { defineProtocol } from '../src/framework/protocol.js';
import { chargen, chargenLine } from '../src/protocols/chargen.js';
import { discard } from '../src/protocols/discard.js';
import { protocols } from '../src/protocols/index.js';
import { loadQuotes, MAX_QUOTE_LENGTH, MAX_QUOTES_FILE_BYTES, qotd } from '../src/protocols/qotd.js';
import { decodeTime, encodeTime, rfc868Seconds, time } from '../src/protocols/time.js';
import { LAB_SERVER, run } from './helpers/cli.js';
import { connect, echoRoundTrip, readAll, startServer } from './helpers/servers.js';

test('chargen: 72 printable characters a line, CRLF, each line one character later, a ring of 95', async (t) => {
  const { server, port } = await startServer(chargen);
  t.after(() => server.close(0));
  const client = await connect(port);
  const lines = 200;
  const wanted = lines * 74;
  const received = await new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    client.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= wanted) resolve(Buffer.concat(chunks).subarray(0, wanted));
    });
  });
  client.destroy();
  const text = received.toString('latin1');
  assert.equal(text.slice(0, 74), ' !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefg\r\n');
  for (let n = 0; n < lines; n++) {
    const line = text.slice(n * 74, (n + 1) * 74);
    assert.equal(line, chargenLine(n), `line ${n}`);
    assert.equal(line.charCodeAt(0), 0x20 + (n % 95), `line ${n} starts one character later`);
  }
  assert.equal(chargenLine(95), chargenLine(0), 'the pattern repeats after 95 lines');
  assert.equal(chargenLine(94).slice(0, 3), '~ !', 'the ring wraps from ~ to space');
});

test('qotd: one quote under 512 characters of printable ASCII, then the server closes', async (t) => {
  const { server, port, closed } = await startServer(qotd, { settings: {} });
  t.after(() => server.close(0));
  const quote = (await readAll(await connect(port))).toString('latin1');
  assert.ok(quote.length > 0 && quote.length <= MAX_QUOTE_LENGTH, `${quote.length} characters`);
  assert.match(quote, /^[\x20-\x7e\r\n]+$/);
  assert.equal((await closed(1)).closedBy, 'server');
});

test('qotd --quotes: a fortune-style file; a quote that breaks RFC 865 is refused at startup', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qotd-'));
  const good = join(dir, 'good.txt');
  writeFileSync(good, 'First quote.\n%\nSecond\nquote.\n%\n\nThird, after a blank line.\n%');
  assert.deepEqual(loadQuotes(good), ['First quote.', 'Second\r\nquote.', 'Third, after a blank line.'], 'lines of a quote end in CRLF; a last % needs no newline');
  const longest = join(dir, 'longest.txt');
  writeFileSync(longest, 'x'.repeat(509));
  assert.equal(loadQuotes(longest)[0]!.length + 2, 511, '509 characters and CRLF: under 512');
  const long = join(dir, 'long.txt');
  writeFileSync(long, 'x'.repeat(510));
  assert.throws(() => loadQuotes(long), (error: unknown) => error instanceof LabError && /breaks RFC 865: 510 characters, but at most 509 fit/.test(error.message));
  const binary = join(dir, 'binary.txt');
  writeFileSync(binary, 'tab\there');
  assert.throws(() => loadQuotes(binary), /breaks RFC 865: use only printable ASCII/);
  assert.throws(() => loadQuotes(join(dir, 'missing.txt')), /cannot read --quotes/);
});

test('qotd --quotes: only a regular file of at most 1 MiB, checked before reading', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qotd-'));
  const largest = join(dir, 'largest.txt');
  writeFileSync(largest, `${'x'.repeat(125)}\n%\n`.repeat(MAX_QUOTES_FILE_BYTES / 128)); // 128 bytes a quote
  assert.equal(loadQuotes(largest).length, MAX_QUOTES_FILE_BYTES / 128, 'exactly the cap: read whole');
  const over = join(dir, 'over.txt');
  writeFileSync(over, 'x'.repeat(MAX_QUOTES_FILE_BYTES + 1));
  assert.throws(() => loadQuotes(over), /cannot use --quotes ".*over\.txt": it is 1048577 bytes, over the 1048576-byte \(1 MiB\) limit/);
  assert.throws(() => loadQuotes(dir), /it is a directory; give a text file of quotes/);
  assert.throws(() => loadQuotes('/dev/zero'), /cannot use --quotes "\/dev\/zero": it is a character device/, 'refused without reading a byte');
});

test('time: 32-bit big-endian seconds since 1900, from the injected clock; the server closes', async (t) => {
  const instant = new Date('2026-11-01T09:05:03Z');
  const { server, port } = await startServer(time, { now: () => instant });
  t.after(() => server.close(0));
  const bytes = await readAll(await connect(port));
  assert.equal(bytes.length, 4);
  const expected = Date.UTC(2026, 10, 1, 9, 5, 3) / 1000 + 2_208_988_800;
  assert.equal(bytes.readUInt32BE(), expected);
  assert.equal(bytes[0], expected >>> 24, 'most significant byte first: network byte order');
  assert.equal(decodeTime(bytes.readUInt32BE()).toISOString(), instant.toISOString());
});

test('time: the value wraps modulo 2^32 at 2036-02-07 06:28:16 UTC, without a crash', () => {
  assert.equal(rfc868Seconds(new Date('1900-01-01T00:00:00Z')), 0);
  assert.equal(rfc868Seconds(new Date('1970-01-01T00:00:00Z')), 2_208_988_800);
  assert.equal(rfc868Seconds(new Date('2036-02-07T06:28:15Z')), 2 ** 32 - 1);
  assert.equal(rfc868Seconds(new Date('2036-02-07T06:28:16Z')), 0);
  assert.equal(rfc868Seconds(new Date('2036-02-07T06:28:17Z')), 1);
  assert.deepEqual([...encodeTime(new Date('2036-02-07T06:28:17Z'))], [0, 0, 0, 1]);
  assert.equal(decodeTime(1).toISOString(), '2036-02-07T06:28:17.000Z', 'read back in the era after the wrap');
});

test('discard: reads everything, answers nothing, closes after the client', async (t) => {
  const { server, port, closed } = await startServer(discard);
  t.after(() => server.close(0));
  const reply = await echoRoundTrip(port, Buffer.alloc(4 * 1024 * 1024, 1));
  assert.equal(reply.length, 0);
  const report = await closed(1);
  assert.deepEqual([report.closedBy, report.bytesIn, report.bytesOut], ['client', 4 * 1024 * 1024, 0]);
});

test('the registry: every plugin is a command of lab-server, and `all` places it at base + its well-known port', async () => {
  const help = await run(LAB_SERVER, ['--help']);
  for (const protocol of protocols) {
    assert.match(help.stdout, new RegExp(`lab-server ${protocol.name} `), `${protocol.name} in --help`);
    const own = await run(LAB_SERVER, [protocol.name, '--help']);
    assert.equal(own.code, 0);
    assert.match(own.stdout.replace(/\s+/g, " "), new RegExp(`RFC ${protocol.rfc}\\b`));
  }
  const all = await run(LAB_SERVER, ['all', '--help']);
  for (const protocol of protocols) assert.match(all.stdout.replace(/\s+/g, " "), new RegExp(`${protocol.name} ${protocol.wellKnownPort}\\b`));
});

test('a new protocol needs nothing from the framework but the plugin interface', async (t) => {
  // A toy "reverse" protocol, defined here and never registered: the framework serves it as is.
  const reverse = defineProtocol({
    name: 'reverse',
    rfc: 0,
    summary: 'sends back each chunk reversed',
    wellKnownPort: 0,
    defaultPort: 0,
    closesFirst: false,
    options: {},
    createHandlers: () => ({
      tcp: ({ socket }) => {
        socket.on('data', (chunk: Buffer) => socket.write(Buffer.from(chunk).reverse()));
        socket.on('end', () => socket.end());
      },
    }),
  });
  const { server, port } = await startServer(reverse);
  t.after(() => server.close(0));
  assert.equal((await echoRoundTrip(port, Buffer.from('stressed'))).toString(), 'desserts');
});
