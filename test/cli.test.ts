/** End to end: the real lab-server and lab-client programs, as a user runs them. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { ExitCode } from '../src/errors.js';
import { protocols } from '../src/protocols/index.js';
import { assertOneLineError, LAB_CLIENT, LAB_SERVER, run, startServerProcess } from './helpers/cli.js';
import { connect } from './helpers/servers.js';

const ASCTIME_LINE = /^(Sun|Mon|Tue|Wed|Thu|Fri|Sat) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123]\d [0-2]\d:[0-5]\d:[0-6]\d \d{4}\n$/;

test('daytime: lab-client prints the server\'s line; SIGINT exits 0 with a summary', async () => {
  const server = await startServerProcess(['daytime']);
  const client = await run(LAB_CLIENT, ['daytime', '127.0.0.1', '--port', String(server.port)]);
  assert.equal(client.code, 0, client.stderr);
  assert.match(client.stdout, ASCTIME_LINE);
  assert.equal(client.stderr, '', 'an orderly close is not news');
  const closed = await server.event('closed');
  assert.equal(closed.closedBy, 'server');
  const stopped = await server.stop('SIGINT');
  assert.equal(stopped.code, 0, stopped.stderr);
  const summary = await server.event('summary');
  assert.equal(summary.connections, 1);
  assert.equal(summary.bytesOut, 25);
});

test('echo: piped input comes back unchanged, exit 0; the log has the socket pair and the messages', async () => {
  const server = await startServerProcess(['echo']);
  const input = 'hello\nworld\n';
  const client = await run(LAB_CLIENT, ['echo', 'localhost', '--port', String(server.port), '--verbose'], { input });
  assert.equal(client.code, 0, client.stderr);
  assert.equal(client.stdout, input);
  const pair = /\{127\.0\.0\.1:(\d+), 127\.0\.0\.1:(\d+)\}/.exec(client.stderr);
  assert.ok(pair, `--verbose shows the client's socket pair: ${client.stderr}`);
  assert.equal(Number(pair[2]), server.port);

  const accepted = await server.event('accepted');
  assert.equal(accepted.pair, `{127.0.0.1:${server.port}, 127.0.0.1:${pair[1]}}`, 'the server sees the same pair, from its side');
  await server.event('closed');
  assert.deepEqual(server.lines.filter((l) => l.event === 'message').map((l) => l.text), ['hello', 'world']);
  assert.equal((await server.stop('SIGTERM')).code, 0);
});

test('echo: 2 MiB of random binary through the client, byte for byte', async () => {
  const server = await startServerProcess(['echo']);
  const input = randomBytes(2 * 1024 * 1024);
  const client = await run(LAB_CLIENT, ['echo', '127.0.0.1', '--port', String(server.port)], { input });
  assert.equal(client.code, 0, client.stderr);
  assert.equal(client.stdoutBytes.length, input.length);
  assert.ok(client.stdoutBytes.equals(input));
  assert.equal(client.stderr, '', 'piped input: nothing said when all goes well');
  await server.stop();
});

/** Copies stdin to stdout 16 KiB at a time, resting 5 ms after each: a consumer slower than loopback. */
const SLOW_READER = `
import sys, time
while chunk := sys.stdin.buffer.read1(16384):
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
    time.sleep(0.005)
`;

test('echo: a reader slower than the server still gets every byte; the client flushes stdout before it exits', async () => {
  const server = await startServerProcess(['echo']);
  const input = randomBytes(2 * 1024 * 1024);
  // lab-client echo < input | slow-reader: the pipe stays full, so the client's last writes are
  // still queued in its memory when the echo is complete and it is about to exit.
  const pipeline = 'set -o pipefail; "$0" "$1" echo 127.0.0.1 --port "$2" | python3 -c "$3"';
  const child = spawn('bash', ['-c', pipeline, process.execPath, LAB_CLIENT, String(server.port), SLOW_READER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const received: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => received.push(chunk));
  child.stdin.end(input);
  const [code] = (await once(child, 'close')) as [number | null];
  assert.equal(code, 0);
  assert.equal(Buffer.concat(received).length, input.length);
  assert.ok(Buffer.concat(received).equals(input));
  await server.stop();
});

/** Runs `lab-client echo` with input "abc\n" against a server that answers each chunk with `answer(chunk)`. */
async function echoAgainstLiar(t: TestContext, answer: (chunk: Buffer) => Buffer | string) {
  const liar = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('data', (chunk: Buffer) => socket.write(answer(chunk)));
    socket.on('end', () => socket.end());
  });
  liar.listen(0, '127.0.0.1');
  t.after(() => liar.close());
  await once(liar, 'listening');
  const { port } = liar.address() as { port: number };
  return run(LAB_CLIENT, ['echo', '127.0.0.1', '--port', String(port)], { input: 'abc\n' });
}

test('echo client: an echo that differs from the input exits 65', async (t) => {
  const result = await echoAgainstLiar(t, (chunk) => chunk.toString().toUpperCase());
  assertOneLineError(result, ExitCode.dataError, /^lab-client: the echo differs from what was sent at byte 0$/);
});

test('echo client: what a server sends instead of the echo (a terminal escape) is not printed, only what matched', async (t) => {
  const result = await echoAgainstLiar(t, (chunk) => Buffer.concat([chunk.subarray(0, 2), Buffer.from('\x1b]0;pwned\x07')]));
  assertOneLineError(result, ExitCode.dataError, /^lab-client: the echo differs from what was sent at byte 2$/);
  assert.equal(result.stdout, 'ab');
});

test('graceful shutdown: open connections get the deadline, then are closed; exit 0', async () => {
  const server = await startServerProcess(['echo', '--shutdown-timeout', '0.2']);
  const idle = await connect(server.port);
  await server.event('accepted');
  const stopped = await server.stop('SIGINT');
  assert.equal(stopped.code, 0);
  const summary = await server.event('summary');
  assert.equal(summary.forced, 1);
  idle.destroy();
});

test('a second signal forces the exit', async () => {
  const server = await startServerProcess(['echo', '--shutdown-timeout', '60']);
  const idle = await connect(server.port);
  await server.event('accepted');
  server.child.kill('SIGINT');
  await server.event('draining');
  const stopped = await server.stop('SIGINT');
  assert.equal(stopped.code, 130, '128 + SIGINT');
  idle.destroy();
});

test('bad ports are refused before any socket is made (exit 64), and no socket file appears', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'lab-server-'));
  for (const port of ['abc', '-1', '65536', '0x51', ' 1313']) {
    const result = await run(LAB_SERVER, ['echo', `--port=${port}`], { cwd });
    assertOneLineError(result, ExitCode.usage, new RegExp(`^lab-server: invalid port "${port}": give a whole number from 0 to 65535`));
  }
  assert.deepEqual(readdirSync(cwd), [], 'listen("abc") would have made a UNIX socket file here');
});

test('an unknown protocol lists the available ones (exit 64)', async () => {
  const names = protocols.map((p) => p.name).join(', ');
  assertOneLineError(await run(LAB_SERVER, ['gopher']), ExitCode.usage, new RegExp(`^lab-server: unknown protocol "gopher": choose one of ${names} \\(see lab-server --help\\)$`));
  assertOneLineError(await run(LAB_SERVER, []), ExitCode.usage, /^lab-server: name a protocol/);
  assertOneLineError(await run(LAB_SERVER, ['echo', '--bogus']), ExitCode.usage, /^lab-server: unknown option --bogus \(see lab-server echo --help\)$/);
});

test('a port in use says so and what to do (exit 69)', async (t) => {
  const squatter = createServer().listen(0, '127.0.0.1');
  t.after(() => squatter.close());
  await new Promise((resolve) => squatter.once('listening', resolve));
  const { port } = squatter.address() as { port: number };
  const result = await run(LAB_SERVER, ['echo', '--host', '127.0.0.1', '--port', String(port)]);
  assertOneLineError(result, ExitCode.unavailable, /^lab-server: cannot listen on 127\.0\.0\.1 port \d+: the address is already in use.*--port 0/);
});

const unprivilegedPortStart = (): number => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'));
  } catch {
    return 1024;
  }
};

// As root, drop only the capability that allows binding low ports; the files stay readable.
const withoutBindPrivilege = process.getuid?.() === 0 ? ['setpriv', '--bounding-set=-net_bind_service', '--inh-caps=-net_bind_service', '--'] : [];
const privilegedPortSkip = unprivilegedPortStart() <= 13 ? 'this machine lets anyone bind port 13' : process.platform !== 'linux' && 'uses setpriv';

test('a privileged port without permission gives one line and exit 77', { skip: privilegedPortSkip }, async () => {
  const result = await run(LAB_SERVER, ['daytime'], { prefix: withoutBindPrivilege });
  assertOneLineError(result, ExitCode.noPermission, /^lab-server: cannot listen on port 13: ports below \d+ need root; try --port 1313$/);
});

test('lab-client: nothing listening (69) and an unknown host (68)', async () => {
  const closedPort = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
  assertOneLineError(await run(LAB_CLIENT, ['daytime', '127.0.0.1', '--port', String(closedPort)]), ExitCode.unavailable, /^lab-client: cannot connect to 127\.0\.0\.1 port \d+: 127\.0\.0\.1:\d+ refused/);
  assertOneLineError(await run(LAB_CLIENT, ['daytime', 'no-such-host.invalid']), ExitCode.noHost, /^lab-client: cannot resolve "no-such-host\.invalid"/);
  assertOneLineError(await run(LAB_CLIENT, ['daytime', '--port', 'x']), ExitCode.usage, /^lab-client: invalid port "x": give the server's port, a whole number from 1 to 65535$/);
  assertOneLineError(await run(LAB_CLIENT, ['finger']), ExitCode.usage, /^lab-client: unknown command "finger": choose one of /);
});

test('--version prints the package version, for both programs', async () => {
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const program of [LAB_SERVER, LAB_CLIENT]) {
    const result = await run(program, ['--version']);
    assert.equal(result.code, 0);
    assert.equal(result.stdout, `${version}\n`);
  }
});

test('lab-server echo with its default flags serves 100 concurrent connections from one address, and only on loopback', async () => {
  const server = await startServerProcess(['echo']);
  try {
    assert.deepEqual(server.lines.filter((l) => l.event === 'listening').map((l) => l.address).slice(0, 1), ['127.0.0.1'], 'loopback, not every interface');
    const clients = await Promise.all(Array.from({ length: 100 }, () => connect(server.port)));
    const echoes = await Promise.all(
      clients.map(async (client, i) => {
        const echoed = once(client, 'data', { signal: AbortSignal.timeout(10_000) });
        client.write(`${i}\n`);
        return String(((await echoed) as [Buffer])[0]);
      }),
    );
    assert.deepEqual(echoes, clients.map((_, i) => `${i}\n`), 'every one echoed: none refused');
    assert.equal(server.lines.filter((l) => l.event === 'refused').length, 0);
    for (const client of clients) client.destroy();
  } finally {
    assert.equal((await server.stop()).code, 0);
  }
});
