/** The echo protocol over real loopback sockets: bytes intact, memory bounded, no crash. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { lookupService } from 'node:dns/promises';
import { once } from 'node:events';
import { test } from 'node:test';
import { LINES_REPORTED_PER_CONNECTION, PREVIEW_BYTES } from '../src/framework/messages.js';
import { echo } from '../src/protocols/echo.js';
import { connect, echoRoundTrip, readAll, startServer, waitFor } from './helpers/servers.js';

const MiB = 1024 * 1024;
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

test('10 MiB of random bytes come back intact, for each of 4 concurrent clients', async (t) => {
  const { server, port } = await startServer(echo);
  t.after(() => server.close(0));
  const inputs = Array.from({ length: 4 }, () => randomBytes(10 * MiB));
  const outputs = await Promise.all(inputs.map((input) => echoRoundTrip(port, input)));
  outputs.forEach((output, i) => {
    assert.equal(output.length, inputs[i]!.length);
    assert.equal(sha256(output), sha256(inputs[i]!));
  });
});

test('a client that half-closes: accepted → active → peer-closed → closed, client first', async (t) => {
  const { server, port, states, closed } = await startServer(echo);
  t.after(() => server.close(0));
  assert.equal((await echoRoundTrip(port, Buffer.from('hello\n'))).toString(), 'hello\n');
  const { closedBy, how, bytesIn, bytesOut } = await closed(1);
  assert.deepEqual(states(1), ['accepted', 'active', 'peer-closed', 'closed']);
  assert.deepEqual({ closedBy, how, bytesIn, bytesOut }, { closedBy: 'client', how: 'fin', bytesIn: 6, bytesOut: 6 });
});

test('each line is a "message" event, escaped and truncated, split and joined across chunks', async (t) => {
  const { server, port, events, closed } = await startServer(echo);
  t.after(() => server.close(0));
  const long = 'x'.repeat(500);
  const client = await connect(port);
  let echoedBytes = 0;
  client.on('data', (chunk: Buffer) => (echoedBytes += chunk.length));
  // Sent in pieces that split lines, each echoed before the next is sent, so that the server
  // reads them in separate chunks: TCP is a byte stream, and the lines are found again.
  let sentBytes = 0;
  for (const piece of ['hi th', 'ere\r\n\x1b[31m', `red\n${long}`, '\nunterminated']) {
    client.write(piece);
    sentBytes += piece.length;
    await waitFor('the echo of the piece', () => (echoedBytes >= sentBytes ? true : undefined));
  }
  client.end();
  await closed(1);
  const messages = events.of('message').map(({ line, text, length, truncated }) => ({ line, text, length, truncated }));
  assert.deepEqual(messages, [
    { line: 1, text: 'hi there', length: 9, truncated: false },
    { line: 2, text: '\\x1b[31mred', length: 8, truncated: false },
    { line: 3, text: 'x'.repeat(80), length: 500, truncated: true },
    { line: 4, text: 'unterminated', length: 12, truncated: false },
  ]);
});

test(`only the first ${LINES_REPORTED_PER_CONNECTION} lines of a connection become events; the echo loses nothing`, async (t) => {
  const { server, port, events, closed } = await startServer(echo);
  t.after(() => server.close(0));
  const input = Buffer.from(Array.from({ length: 500 }, (_, l) => `line ${l}\n`).join(''));
  assert.ok((await echoRoundTrip(port, input)).equals(input));
  await closed(1);
  const lines = events.of('message').map((e) => e.text);
  assert.deepEqual(lines, Array.from({ length: LINES_REPORTED_PER_CONNECTION }, (_, l) => `line ${l}`));
});

test('a client that never reads: the server stops reading too, and loses nothing', async (t) => {
  const { server, port } = await startServer(echo);
  t.after(() => server.close(0));
  const client = await connect(port);
  client.pause(); // never read: the kernel buffers fill, then TCP flow control stops the server's writes
  const input = randomBytes(64 * MiB);
  client.write(input);
  const [conn] = server.connections;
  assert.ok(conn, 'the server holds the connection');
  // No event says "the buffers are full", so wait until the server has stopped reading.
  let lastRead = -1;
  let unchangedChecks = 0;
  await waitFor('the server to stop reading', () => {
    unchangedChecks = conn!.socket.bytesRead === lastRead ? unchangedChecks + 1 : 0;
    lastRead = conn!.socket.bytesRead;
    return unchangedChecks >= 10 ? true : undefined;
  }, 20_000, 50);
  assert.ok(conn!.socket.isPaused(), 'the server paused reading');
  assert.ok(conn!.socket.writableLength <= 1 * MiB, `the server holds ${conn!.socket.writableLength} bytes in user space`);
  assert.ok(conn!.socket.bytesRead < 48 * MiB, `the server read only what the kernel's buffers hold (${conn!.socket.bytesRead} bytes)`);
  assert.ok(client.writableLength > 0, 'the client could not send everything: it is held back too');

  const echoed = readAll(client);
  client.resume();
  client.end();
  assert.equal(sha256(await echoed), sha256(input), 'everything came back once the client read');
});

test('a client that resets mid-stream disturbs nobody else', async (t) => {
  const { server, port, closed } = await startServer(echo);
  t.after(() => server.close(0));
  const rude = await connect(port);
  rude.write(randomBytes(MiB));
  await waitFor('the server to read some bytes', () => ([...server.connections][0]?.socket.bytesRead ?? 0) > 0 || undefined);
  rude.resetAndDestroy(); // SO_LINGER 0 then close: RST instead of FIN
  const { closedBy, how } = await closed(1);
  assert.deepEqual({ closedBy, how }, { closedBy: 'client', how: 'rst' });
  assert.equal((await echoRoundTrip(port, Buffer.from('still there?\n'))).toString(), 'still there?\n');
  assert.equal(server.connections.size, 0);
});

test('a client process killed mid-stream (SIGKILL) leaves the server serving', async (t) => {
  const { server, port, closed } = await startServer(echo);
  t.after(() => server.close(0));
  const writer = `const s = require('net').connect(${port}, '127.0.0.1', () => {
    setInterval(() => s.write(Buffer.alloc(65536, 7)), 1); process.stdout.write('connected\\n'); });`;
  const child = spawn(process.execPath, ['-e', writer], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(child.stdout, 'data');
  await waitFor('data from the child', () => ([...server.connections][0]?.socket.bytesRead ?? 0) > 0 || undefined);
  child.kill('SIGKILL');
  await closed(1); // the kernel closed the dead process's socket for it
  assert.equal((await echoRoundTrip(port, Buffer.from('ok\n'))).toString(), 'ok\n');
});

test('binary junk and a 100 MiB line without a newline: echoed intact, events stay small and clean', async (t) => {
  const { server, port, events, closed } = await startServer(echo);
  t.after(() => server.close(0));
  const junk = Buffer.concat([randomBytes(MiB), Buffer.from('\n')]);
  const huge = Buffer.alloc(100 * MiB, 'a');
  const [junkEcho, hugeEcho, bystander] = await Promise.all([
    echoRoundTrip(port, junk),
    echoRoundTrip(port, huge),
    echoRoundTrip(port, Buffer.from('me too\n')),
  ]);
  assert.equal(sha256(junkEcho), sha256(junk));
  assert.equal(hugeEcho.length, huge.length);
  assert.ok(hugeEcho.equals(huge));
  assert.equal(bystander.toString(), 'me too\n');
  await Promise.all([closed(1), closed(2), closed(3)]);
  const messages = events.of('message');
  assert.ok(messages.some((m) => m.length === 100 * MiB && m.truncated), 'the huge line is reported by its length');
  for (const { text } of messages) {
    assert.ok(text.length <= PREVIEW_BYTES * 4, 'each text is capped'); // 80 bytes, at most 4 escape characters each
    assert.doesNotMatch(text, /[\u0000-\u001f\u007f-\u009f]/, 'no control character gets into an event');
  }
});

test('--resolve: a peer-name event with the host name, or null and the error code, without delaying service', async (t) => {
  const { server, port, events, closed } = await startServer(echo, { resolvePeerNames: true });
  t.after(() => server.close(0));
  assert.equal((await echoRoundTrip(port, Buffer.from('who am i\n'))).toString(), 'who am i\n');
  await closed(1);
  const named = await events.waitFor('peer-name');
  const { remote } = events.of('accepted')[0]!;
  assert.equal(named.remote.port, remote.port, 'about the connection it resolved');
  // What this machine's resolver says about the same address and port (getnameinfo(3)).
  const expected = await lookupService(remote.address, remote.port).then(({ hostname }) => ({ host: hostname }), (error: NodeJS.ErrnoException) => ({ host: null, code: error.code }));
  assert.deepEqual(named.host === null ? { host: null, code: named.code } : { host: named.host }, expected);
});
