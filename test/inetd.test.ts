/**
 * inetd mode (--inetd): the socket on descriptor 0, and on 1 and 2 as well, the way inetd and
 * xinetd hand it over. First by hand (this test accepts a connection and starts lab-server with the
 * socket as its stdin, stdout and stderr), then with a real xinetd: a connection per process
 * (`wait = no`), a listening socket (`wait = yes`), and a UDP socket. The client must get the
 * protocol's bytes and nothing else: no log line may reach it.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ExitCode } from '../src/errors.js';
import type { LogLine } from './helpers/capture-log.js';
import { assertOneLineError, jsonLines, LAB_SERVER, run, scratchFolder } from './helpers/cli.js';
import { connect, echoRoundTrip, freePort, readAll, waitFor } from './helpers/servers.js';

const ASCTIME_LINE = /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\n$/;
/** Ample for starting Node on a loaded machine. */
const DEADLINE_MS = 15_000;

const readIfThere = (path: string): string => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
};

/** The log lines with this event. */
const events = (lines: LogLine[], event: string): LogLine[] => lines.filter((line) => line.event === event);

/**
 * What inetd does for a `nowait` service, by hand: accept a connection, start the server with the
 * socket as its descriptors 0, 1 and 2, and let go of our own copy. Then the client sends
 * `input` (if any), half-closes, and reads until the server closes.
 */
async function serveOneConnection(args: string[], input?: string): Promise<{ reply: string; code: number | null }> {
  // pauseOnConnect: this process must not read a byte meant for the server.
  const listener = net.createServer({ pauseOnConnect: true }).listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const connection = once(listener, 'connection') as Promise<[net.Socket]>;
  const client = await connect((listener.address() as net.AddressInfo).port);
  const [accepted] = await connection;
  listener.close();
  const server = spawn(process.execPath, [LAB_SERVER, ...args], { stdio: [accepted, accepted, accepted] });
  const exited = once(server, 'close', { signal: AbortSignal.timeout(DEADLINE_MS) }) as Promise<[number | null]>;
  // Closing our descriptor (without shutdown(2)): the connection now lives in the server alone.
  accepted.destroy();
  try {
    const reply = readAll(client, DEADLINE_MS);
    if (input === undefined) client.end();
    else client.end(input);
    const text = (await reply).toString();
    const [code] = await exited;
    return { reply: text, code };
  } finally {
    client.destroy();
    // A server that did not exit by itself is ended by its process id.
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  }
}

test('descriptors 0, 1 and 2 all the socket, as xinetd passes it: the client gets daytime\'s line and nothing else, and the server exits 0', async () => {
  // No --log-file, and stdout and stderr are the client's socket: the log has nowhere to go.
  const { reply, code } = await serveOneConnection(['daytime', '--inetd', '--log-level', 'debug']);
  assert.match(reply, ASCTIME_LINE);
  assert.equal(code, 0);
});

test('descriptors 0, 1 and 2 all the socket, with --log-file: the echo comes back alone, and the log is in the file', async (t) => {
  const logFile = join(scratchFolder(t), 'echo.log');
  const { reply, code } = await serveOneConnection(['echo', '--inetd', '--log-file', logFile, '--log-level', 'debug'], 'hello inetd\n');
  assert.equal(reply, 'hello inetd\n');
  assert.equal(code, 0);
  const lines = jsonLines(readFileSync(logFile, 'utf8'));
  assert.deepEqual(events(lines, 'handed-over').map(({ fd, by, role }) => ({ fd, by, role })), [{ fd: 0, by: 'inetd', role: 'connected' }]);
  assert.deepEqual(events(lines, 'message').map((line) => line.text), ['hello inetd']);
  assert.deepEqual(events(lines, 'closed').map((line) => [line.closedBy, line.bytesIn, line.bytesOut]), [['client', 12, 12]]);
  assert.equal(events(lines, 'listening').length, 0, 'no socket of its own');
});

test('--inetd without a TCP or UDP socket on descriptor 0: one line, exit 69', async () => {
  // /dev/null: not a socket at all.
  const devNull = await run(LAB_SERVER, ['echo', '--inetd'], { prefix: ['sh', '-c', 'exec "$0" "$@" </dev/null'] });
  assertOneLineError(devNull, ExitCode.unavailable, /^lab-server: --inetd: descriptor 0 \(standard input\) is a character device \(a terminal, or \/dev\/null\), not a socket: run it from inetd, xinetd or a systemd unit with StandardInput=socket$/);
  // Node's 'pipe' is a UNIX-domain socket pair: a socket, but not one lab-server can serve.
  const unixSocket = await run(LAB_SERVER, ['echo', '--inetd']);
  assertOneLineError(unixSocket, ExitCode.unavailable, /^lab-server: descriptor 0 is a socket, but not a TCP or UDP socket of this network namespace \(a UNIX-domain socket\? PrivateNetwork=yes\?\)/);
});

test('--log-file in a folder that does not exist: one line, exit 73', async (t) => {
  const missing = join(scratchFolder(t), 'no-such-folder', 'lab.log');
  assertOneLineError(await run(LAB_SERVER, ['echo', '--port', '0', '--log-file', missing]), ExitCode.cantCreate, /^lab-server: cannot open --log-file ".*" for appending: its folder does not exist$/);
});

const xinetd = (() => {
  try {
    return execFileSync('sh', ['-c', 'command -v xinetd'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
})();

test('a real xinetd: daytime one process per connection (wait = no), echo over a listening socket (wait = yes) and over UDP', async (t) => {
  if (xinetd === undefined) {
    t.skip('xinetd is not installed (Debian: apt-get install xinetd)');
    return;
  }
  const dir = scratchFolder(t);
  // As an installed lab-server is run: `server = /usr/local/bin/lab-server`, `server_args = daytime --inetd`.
  const server = join(dir, 'lab-server');
  writeFileSync(server, `#!/bin/sh\nexec '${process.execPath}' '${LAB_SERVER}' "$@"\n`);
  chmodSync(server, 0o755);
  const [daytimePort, echoPort, udpPort] = [await freePort(), await freePort(), await freePort('udp')];
  const service = (name: string, socketType: 'stream' | 'dgram', wait: boolean, port: number, serverArgs: string): string => `
service ${name}
{
    type        = UNLISTED
    socket_type = ${socketType}
    protocol    = ${socketType === 'stream' ? 'tcp' : 'udp'}
    wait        = ${wait ? 'yes' : 'no'}
    user        = ${userInfo().username}
    bind        = 127.0.0.1
    port        = ${port}
    server      = ${server}
    server_args = ${serverArgs}
}`;
  const config = join(dir, 'xinetd.conf');
  writeFileSync(
    config,
    `defaults\n{\n    log_type       = FILE ${join(dir, 'services.log')}\n    log_on_success = PID EXIT\n}\n` +
      service('lab-daytime', 'stream', false, daytimePort, 'daytime --inetd') +
      service('lab-echo', 'stream', true, echoPort, `echo --inetd --log-file ${join(dir, 'echo.log')}`) +
      service('lab-echo-udp', 'dgram', true, udpPort, `echo --inetd --log-file ${join(dir, 'echo-udp.log')} --log-level debug`) +
      '\n',
  );
  const daemon = spawn(xinetd, ['-dontfork', '-f', config, '-filelog', join(dir, 'xinetd.log')], { stdio: 'ignore' });
  /** The servers of a service (or of all) that xinetd started and has not seen exit: its log's START lines without an EXIT line. */
  const serverPids = (service = '[\\w-]+'): number[] => {
    const log = readIfThere(join(dir, 'services.log'));
    const pids = (what: string): number[] => [...log.matchAll(new RegExp(`${what}: ${service} (?:status=\\S+ )?pid=(\\d+)`, 'g'))].map((match) => Number(match[1]));
    const exited = new Set(pids('EXIT'));
    return pids('START').filter((pid) => !exited.has(pid));
  };
  t.after(() => {
    // By process id, whatever the outcome: the servers still running (wait-mode ones run until told), then xinetd.
    for (const pid of serverPids()) killIfAlive(pid);
    daemon.kill('SIGKILL');
  });
  await waitFor('xinetd to start working', () => readIfThere(join(dir, 'xinetd.log')).match(/Started working: 3 available services/) ?? undefined, DEADLINE_MS);

  // wait = no: a lab-server per connection, with the connection on 0, 1 and 2; it logs nowhere.
  const line = (await readAll(await connect(daytimePort), DEADLINE_MS)).toString();
  assert.match(line, ASCTIME_LINE, 'the date and nothing else');
  await waitFor('xinetd to log the daytime server exiting 0', () => /EXIT: lab-daytime status=0/.exec(readIfThere(join(dir, 'services.log'))) ?? undefined, DEADLINE_MS);

  // wait = yes, TCP: lab-server gets the listening socket on 0, and accepts every later connection itself.
  assert.equal((await echoRoundTrip(echoPort, Buffer.from('first\n'))).toString(), 'first\n');
  assert.equal((await echoRoundTrip(echoPort, Buffer.from('second\n'))).toString(), 'second\n');
  const echoLog = jsonLines(readIfThere(join(dir, 'echo.log')));
  assert.deepEqual(events(echoLog, 'handed-over').map(({ fd, by, role, socket }) => ({ fd, by, role, socket })), [{ fd: 0, by: 'inetd', role: 'listening', socket: `127.0.0.1:${echoPort}` }]);
  assert.equal(events(echoLog, 'accepted').length, 2, 'both connections, one process');
  const echoPid = await waitFor("xinetd's START line for lab-echo", () => serverPids('lab-echo')[0], DEADLINE_MS);
  assert.equal(echoLog[0]!.pid, echoPid, 'the process xinetd started serves both');

  // wait = yes, UDP: lab-server gets the UDP socket on 0, and answers the datagram that made xinetd start it.
  const client = dgram.createSocket('udp4');
  t.after(() => client.close());
  client.send('over udp', udpPort, '127.0.0.1');
  const [reply] = (await once(client, 'message', { signal: AbortSignal.timeout(DEADLINE_MS) })) as [Buffer];
  assert.equal(reply.toString(), 'over udp');
  // The reply may overtake the log line that reports it: wait for that line.
  const udpLog = await waitFor('the datagram in the log', () => {
    const lines = jsonLines(readIfThere(join(dir, 'echo-udp.log')));
    return events(lines, 'datagram').length > 0 ? lines : undefined;
  }, DEADLINE_MS);
  assert.deepEqual(events(udpLog, 'handed-over').map(({ fd, by, role, socket }) => ({ fd, by, role, socket })), [{ fd: 0, by: 'inetd', role: 'datagram', socket: `127.0.0.1:${udpPort}/udp` }]);
  assert.deepEqual(events(udpLog, 'datagram').map((line) => [line.bytesIn, line.bytesOut]), [[8, 8]]);

  // A wait-mode server runs until told to stop: SIGTERM, a graceful exit 0, which xinetd logs.
  for (const name of ['lab-echo', 'lab-echo-udp']) {
    for (const pid of serverPids(name)) process.kill(pid, 'SIGTERM');
    await waitFor(`xinetd to log ${name} exiting 0`, () => new RegExp(`EXIT: ${name} status=0`).exec(readIfThere(join(dir, 'services.log'))) ?? undefined, DEADLINE_MS);
  }
  process.kill(daemon.pid!, 'SIGTERM');
  await once(daemon, 'close', { signal: AbortSignal.timeout(DEADLINE_MS) });
});

function killIfAlive(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
