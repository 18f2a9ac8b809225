/**
 * End to end: the clients say what happened to the connection: who closed it, FIN or RST,
 * after how many bytes, with the socket pair; and a reply that is not what the protocol sends.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { ExitCode } from '../src/errors.js';
import { assertOneLineError, LAB_CLIENT, run, start, startServerProcess, type Finished } from './helpers/cli.js';

const LINE = 'Sun Nov  1 09:05:03 2026\n';

/** A server of our own, whose test decides what it does with its one connection. */
async function scriptedServer(): Promise<{ port: number; accepted: Promise<net.Socket>; close(): void }> {
  const server = net.createServer({ allowHalfOpen: true }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = (once(server, 'connection') as Promise<[net.Socket]>).then(([socket]) => socket);
  return { port: (server.address() as net.AddressInfo).port, accepted, close: () => server.close() };
}

/** The client's last stderr line: --verbose lines come before it. */
const lastLine = (result: Finished): string => result.stderr.trimEnd().split('\n').at(-1)!;

test('daytime: a reset after the whole line prints the line, then says so with the bytes and the socket pair (exit 0)', async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = start(LAB_CLIENT, ['daytime', '127.0.0.1', String(server.port), '--verbose']);
  // Only once the client has seen its connection complete does the server write and reset,
  // so that the reset cannot overtake the connect (see the next test).
  const [serverSide, connected] = await Promise.all([server.accepted, client.stderrLine(/^socket pair /)]);
  const [, clientPort] = /socket pair \{127\.0\.0\.1:(\d+),/.exec(connected)!;
  assert.equal(Number(clientPort), serverSide.remotePort, 'the pair the client reports is the one the server accepted');
  serverSide.write(LINE, () => serverSide.resetAndDestroy());
  const result = await client.finished;
  assert.equal(result.code, ExitCode.ok, result.stderr);
  assert.equal(result.stdout, LINE);
  assert.equal(lastLine(result), `lab-client: the server reset the connection (RST) after sending 25 bytes; socket pair {127.0.0.1:${clientPort}, 127.0.0.1:${server.port}}`);
  assert.doesNotMatch(result.stderr, /:0\b|\n\s+at /, 'no unknown port, no stack trace');
});

test('daytime against lab-server --close rst: the line and the reset, or a reset that beat the connect; never silence', async () => {
  const server = await startServerProcess(['daytime', '--close', 'rst']);
  const pair = new RegExp(`^lab-client: the server reset the connection \\(RST\\) after sending 25 bytes; socket pair \\{127\\.0\\.0\\.1:[1-9]\\d*, 127\\.0\\.0\\.1:${server.port}\\}$`);
  const early = new RegExp(
    `^lab-client: the server 127\\.0\\.0\\.1:${server.port} reset the connection \\(RST\\) right after the handshake, before we sent or read anything: ` +
      'it refused us \\(--deny, --allow or a connection limit\\?\\), or it replied and closed at once with RST \\(--close rst\\?\\) before we could read$',
  );
  // Which of the two happens is a race between the server's reset and the client's event loop.
  for (let i = 0; i < 5; i++) {
    const result = await run(LAB_CLIENT, ['daytime', '127.0.0.1', '--port', String(server.port)]);
    if (result.code === ExitCode.ok) {
      assert.match(result.stdout, /^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n$/);
      assert.match(result.stderr, new RegExp(pair.source.replace(/\$$/, '\\n$')), 'exactly one line');
    } else {
      assertOneLineError(result, ExitCode.unavailable, early);
      assert.equal(result.stdout, '');
    }
  }
  const closed = await server.event('closed');
  assert.equal(closed.how, 'rst');
  await server.stop();
});

test('daytime: a reset before the whole line is exit 69, and what came is shown escaped', async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  const client = start(LAB_CLIENT, ['daytime', '127.0.0.1', String(server.port), '-v']);
  const [serverSide, connected] = await Promise.all([server.accepted, client.stderrLine(/^socket pair /)]);
  const [, clientPort] = /socket pair \{127\.0\.0\.1:(\d+),/.exec(connected)!;
  serverSide.write('\x1b[2JSun Nov', () => serverSide.resetAndDestroy()); // half a line, and a terminal escape
  const result = await client.finished;
  assert.equal(result.code, ExitCode.unavailable, result.stderr);
  assert.equal(result.stdout, '', 'half a line is not printed as if it were the time');
  assert.equal(
    lastLine(result),
    `lab-client: the server reset the connection (RST) after sending 11 bytes; socket pair {127.0.0.1:${clientPort}, 127.0.0.1:${server.port}}, before a whole line: "\\x1b[2JSun Nov"`,
  );
  assert.doesNotMatch(result.stderr, /\x1b/, 'the escape reaches the terminal only as text');
});

test('time against a daytime server: one line saying what came instead (exit 65)', async () => {
  const server = await startServerProcess(['daytime']);
  const result = await run(LAB_CLIENT, ['time', `127.0.0.1:${server.port}`]);
  assertOneLineError(result, ExitCode.dataError, /^lab-client: expected 4 bytes, got 25: is this a time server\? it looks like text: "\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\\n"$/);
  await server.stop();
});

test('time: a server that sends its 4 bytes and never closes is read after a short silence', async () => {
  const server = await startServerProcess(['time', '--no-close']);
  const result = await run(LAB_CLIENT, ['time', '127.0.0.1', String(server.port), '--timeout', '5']);
  assert.equal(result.code, ExitCode.ok, result.stderr);
  assert.match(result.stdout, /^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} UTC \(\d+ seconds since 1900, bytes [0-9a-f]{8}\)\n$/);
  await server.stop();
});

test('a refused client says what it had sent and that the server reset it (exit 69)', async () => {
  const server = await startServerProcess(['echo', '--deny', '127.0.0.1']);
  const result = await run(LAB_CLIENT, ['echo', '127.0.0.1', String(server.port)], { input: 'hello\n' });
  const after = new RegExp(
    `^lab-client: the server reset the connection \\(RST\\) after we sent [06] bytes and 0 came back; socket pair \\{127\\.0\\.0\\.1:[1-9]\\d*, 127\\.0\\.0\\.1:${server.port}\\}: ` +
      'it refused us \\(--deny, --allow or a connection limit\\?\\) or aborted the connection$',
  );
  const early = /^lab-client: the server 127\.0\.0\.1:\d+ reset the connection \(RST\) right after the handshake, before we sent or read anything: it refused us/;
  assertOneLineError(result, ExitCode.unavailable, new RegExp(`${after.source}|${early.source}`));
  assert.equal((await server.event('refused')).reason, 'denied');
  await server.stop();
});

test('echo: a server that closes first is reported, like telnet\'s "Connection closed by foreign host." (exit 69)', async () => {
  const server = await startServerProcess(['echo', '--idle-timeout', '0.2']);
  const client = start(LAB_CLIENT, ['echo', '127.0.0.1', String(server.port)]);
  client.child.stdin!.write('hello\n'); // and the input stays open: the user has not pressed Ctrl-D
  const result = await client.finished;
  client.child.stdin!.destroy();
  assertOneLineError(result, ExitCode.unavailable, /^lab-client: the server closed the connection \(FIN\) before our input ended; we sent 6 bytes and 6 came back$/);
  assert.equal(result.stdout, 'hello\n');
  await server.stop();
});

/** `script` (util-linux) runs a command on a pseudo-terminal: the way to test what a person typing sees. */
const noScript = spawnSync('script', ['--version']).status === 0 ? false : 'needs script(1) from util-linux, to run the client on a terminal';

test('echo on a terminal: after Ctrl-D, says the server closed after our FIN, as telnet would', { skip: noScript }, async () => {
  const server = await startServerProcess(['echo']);
  const command = [process.execPath, LAB_CLIENT, 'echo', '127.0.0.1', String(server.port)].map((word) => `'${word}'`).join(' ');
  const terminal = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let seen = '';
  terminal.stdout.on('data', (chunk: Buffer) => (seen += chunk.toString()));
  const closed = once(terminal, 'close') as Promise<[number]>;
  /** Resolves once the terminal has shown text that matches; rejects if the client exits first. */
  const output = (pattern: RegExp): Promise<void> =>
    new Promise((resolve, reject) => {
      const look = (): void => {
        if (!pattern.test(seen)) return;
        terminal.stdout.off('data', look);
        resolve();
      };
      terminal.stdout.on('data', look);
      look();
      void closed.then(() => reject(new Error(`the client exited before showing ${pattern}: ${seen}`)));
    });
  await output(/Ctrl-D sends FIN and ends\./);
  terminal.stdin.write('hello\n');
  await output(/hello\r?\n(.|\n)*hello\r?\n/); // the terminal echoes what was typed, then the server does
  terminal.stdin.write('\x04'); // Ctrl-D: end of input
  const [code] = await closed;
  assert.equal(code, ExitCode.ok, seen);
  assert.match(seen, /the server closed the connection \(FIN\) after our FIN; we sent 6 bytes and all 6 came back intact\r?\n/);
  await server.stop();
});

test('qotd on a terminal: what the server sent is shown escaped, never obeyed', { skip: noScript }, async (t) => {
  const server = await scriptedServer();
  t.after(() => server.close());
  void server.accepted.then((socket) => socket.end('\x1b[2J\x1b]0;owned\x07Hello\r\n'));
  const command = [process.execPath, LAB_CLIENT, 'qotd', '127.0.0.1', String(server.port)].map((word) => `'${word}'`).join(' ');
  const terminal = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let seen = '';
  terminal.stdout.on('data', (chunk: Buffer) => (seen += chunk.toString()));
  const [code] = (await once(terminal, 'close')) as [number];
  assert.equal(code, ExitCode.ok, seen);
  assert.equal(seen.replace(/\r\n/g, '\n'), '\\x1b[2J\\x1b]0;owned\\x07Hello\n');
});

test('discard: says how many bytes it sent, and that the server read them all', async () => {
  const server = await startServerProcess(['discard']);
  const result = await run(LAB_CLIENT, ['discard', '127.0.0.1', String(server.port)], { input: 'twenty-four bytes here!\n' });
  assert.equal(result.code, ExitCode.ok, result.stderr);
  assert.equal(result.stderr, 'sent 24 bytes; the server closed the connection (FIN) after our FIN, so it read them all\n');
  await server.stop();
});
