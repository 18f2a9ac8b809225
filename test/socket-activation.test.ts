/**
 * systemd socket activation, for real: systemd-socket-activate(1) binds a loopback port, waits for
 * the first client, and execs lab-server with the socket on descriptor 3 (LISTEN_FDS=1,
 * LISTEN_PID=its own pid), as systemd does for a .socket unit. With --accept it accepts each
 * connection itself and starts one lab-server per connection, the inetd way (--inetd: on
 * descriptors 0 and 1). The tests check the bytes a real client gets and the log lines.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { test, type TestContext } from 'node:test';
import { systemdSockets } from '../src/cli/socket-activation.js';
import { ExitCode } from '../src/errors.js';
import type { LogLine } from './helpers/capture-log.js';
import { assertOneLineError, jsonLines, LAB_SERVER, run, start, type StartedProcess } from './helpers/cli.js';
import { connect, echoRoundTrip, freePort, readAll } from './helpers/servers.js';

const ACTIVATE = 'systemd-socket-activate';
const installed = (() => {
  try {
    execFileSync(ACTIVATE, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Skips a test, saying why, where systemd-socket-activate is missing. */
function needsActivate(t: TestContext): boolean {
  if (!installed) t.skip(`${ACTIVATE} is not installed (Debian: apt install systemd)`);
  return installed;
}

/**
 * `systemd-socket-activate <options> node lab-server.js <args>`, once it listens. It prints
 * "Listening on 127.0.0.1:P as 3." when its socket is ready; lab-server starts at the first client.
 */
async function activate(t: TestContext, options: string[], args: string[]): Promise<StartedProcess> {
  const activated = start(LAB_SERVER, args, { prefix: [ACTIVATE, ...options] });
  // Ended by its process id, whatever the test's outcome. Without --accept the same process is lab-server by then.
  t.after(() => void activated.child.kill('SIGKILL'));
  await activated.stderrLine(/^Listening on .* as 3\.$/);
  return activated;
}

/** The log lines with this event. */
const events = (lines: LogLine[], event: string): LogLine[] => lines.filter((line) => line.event === event);

test('TCP: lab-server echo serves the listening socket systemd passes on descriptor 3, and says where it came from', async (t) => {
  if (!needsActivate(t)) return;
  const port = await freePort();
  const activated = await activate(t, ['-l', `127.0.0.1:${port}`], ['echo', '--log-format', 'json']);
  // The first client makes systemd-socket-activate exec lab-server; it waits in the listen backlog meanwhile.
  assert.equal((await echoRoundTrip(port, Buffer.from('activated\n'))).toString(), 'activated\n');
  assert.equal((await echoRoundTrip(port, Buffer.from('and again\n'))).toString(), 'and again\n');
  await activated.stdoutLine(/"conn":2,"event":"closed"/);
  activated.child.kill('SIGTERM');
  const { code, stdout } = await activated.finished;
  assert.equal(code, 0, 'a graceful shutdown');
  const lines = jsonLines(stdout);
  const [handedOver] = events(lines, 'handed-over');
  assert.deepEqual(
    { fd: handedOver?.fd, by: handedOver?.by, role: handedOver?.role, socket: handedOver?.socket },
    { fd: 3, by: 'systemd', role: 'listening', socket: `127.0.0.1:${port}` },
  );
  const listening = events(lines, 'listening');
  assert.deepEqual(listening.map((line) => [line.port, line.inherited]), [[port, true]], 'one listener, the inherited one: nothing bound besides');
  assert.equal(events(lines, 'accepted').length, 2);
  assert.equal(events(lines, 'summary')[0]?.connections, 2);
});

test('UDP (--datagram): lab-server echo answers datagrams on the IPv4 socket systemd passes, the first one included', async (t) => {
  if (!needsActivate(t)) return;
  const port = await freePort('udp');
  const activated = await activate(t, ['--datagram', '-l', `127.0.0.1:${port}`], ['echo', '--log-format', 'json', '--log-level', 'debug']);
  const client = dgram.createSocket('udp4');
  t.after(() => client.close());
  // This first datagram starts lab-server: it waits in the socket's queue until lab-server reads it.
  client.send('ping', port, '127.0.0.1');
  const [reply, from] = (await once(client, 'message', { signal: AbortSignal.timeout(15_000) })) as [Buffer, dgram.RemoteInfo];
  assert.deepEqual([reply.toString(), from.port], ['ping', port]);
  client.send('pong', port, '127.0.0.1');
  const [second] = (await once(client, 'message', { signal: AbortSignal.timeout(10_000) })) as [Buffer];
  assert.equal(second.toString(), 'pong');
  activated.child.kill('SIGTERM');
  const { code, stdout } = await activated.finished;
  assert.equal(code, 0);
  const lines = jsonLines(stdout);
  assert.deepEqual(
    events(lines, 'handed-over').map(({ fd, by, role, socket }) => ({ fd, by, role, socket })),
    [{ fd: 3, by: 'systemd', role: 'datagram', socket: `127.0.0.1:${port}/udp` }],
  );
  assert.deepEqual(events(lines, 'listening').map((line) => [line.transport, line.port, line.inherited]), [['udp', port, true]]);
  assert.equal(events(lines, 'datagram').length, 2, 'both datagrams answered');
});

test('--accept --inetd: one lab-server per connection, on descriptors 0 and 1; the log goes to stderr, not to the client', async (t) => {
  if (!needsActivate(t)) return;
  const port = await freePort();
  const activated = await activate(t, ['--accept', '--inetd', '-l', `127.0.0.1:${port}`], ['echo', '--inetd', '--log-format', 'json']);
  for (const text of ['first connection\n', 'second connection\n']) {
    // The whole reply is the echo: a log line on stdout would have come to the client too.
    assert.equal((await echoRoundTrip(port, Buffer.from(text))).toString(), text);
    // That connection's lab-server exits 0 once it is closed, and systemd-socket-activate says so.
    const closed = JSON.parse(await activated.stderrLine(new RegExp(`"event":"closed".*"bytesIn":${text.length},`))) as LogLine;
    await activated.stderrLine(new RegExp(`^Child ${closed.pid} died with code 0$`));
  }
  activated.child.kill('SIGTERM');
  const { stderr } = await activated.finished;
  const lines = jsonLines(stderr);
  const handedOver = events(lines, 'handed-over');
  assert.deepEqual(
    handedOver.map(({ fd, by, role }) => ({ fd, by, role })),
    [{ fd: 0, by: 'inetd', role: 'connected' }, { fd: 0, by: 'inetd', role: 'connected' }],
  );
  assert.notEqual(handedOver[0]?.pid, handedOver[1]?.pid, 'two processes');
  assert.deepEqual(events(lines, 'closed').map((line) => [line.closedBy, line.bytesIn, line.bytesOut]), [['client', 17, 17], ['client', 18, 18]]);
});

test('--accept without --inetd: the connection on descriptor 3 (LISTEN_FDS=1), served and the process exits', async (t) => {
  if (!needsActivate(t)) return;
  const port = await freePort();
  const activated = await activate(t, ['--accept', '-l', `127.0.0.1:${port}`], ['daytime', '--log-format', 'json']);
  const line = (await readAll(await connect(port))).toString();
  assert.match(line, /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\n$/, 'one asctime line, and nothing else');
  await activated.stderrLine(/^Child \d+ died with code 0$/);
  activated.child.kill('SIGTERM');
  const lines = jsonLines((await activated.finished).stdout);
  assert.deepEqual(events(lines, 'handed-over').map(({ fd, by, role }) => ({ fd, by, role })), [{ fd: 3, by: 'systemd', role: 'connected' }]);
  assert.equal(events(lines, 'closed')[0]?.closedBy, 'server', 'daytime closes first');
});

test('FileDescriptorName= picks the protocol: lab-server all serves an echo socket and a daytime socket', async (t) => {
  if (!needsActivate(t)) return;
  const [echoPort, daytimePort] = [await freePort(), await freePort()];
  const options = ['-l', `127.0.0.1:${echoPort}`, '-l', `127.0.0.1:${daytimePort}`, '--fdname=echo:daytime'];
  const activated = await activate(t, options, ['all', '--systemd', '--log-format', 'json']);
  assert.equal((await echoRoundTrip(echoPort, Buffer.from('named\n'))).toString(), 'named\n');
  assert.match((await readAll(await connect(daytimePort))).toString(), /^[A-Z][a-z]{2} [A-Z][a-z]{2} .* \d{4}\n$/);
  activated.child.kill('SIGTERM');
  const { code, stdout } = await activated.finished;
  assert.equal(code, 0);
  const handedOver = events(jsonLines(stdout), 'handed-over');
  assert.deepEqual(
    handedOver.map(({ fd, protocol, name }) => ({ fd, protocol, name })),
    [{ fd: 3, protocol: 'echo', name: 'echo' }, { fd: 4, protocol: 'daytime', name: 'daytime' }],
  );
});

test('--systemd without socket activation: one line, exit 69 (also when LISTEN_PID is another process)', async () => {
  assertOneLineError(await run(LAB_SERVER, ['echo', '--systemd']), ExitCode.unavailable, /^lab-server: --systemd: no sockets from systemd \(LISTEN_PID and LISTEN_FDS are not set\)/);
  const inherited = await run(LAB_SERVER, ['daytime', '--systemd'], { prefix: ['env', 'LISTEN_PID=1', 'LISTEN_FDS=1'] });
  assertOneLineError(inherited, ExitCode.unavailable, /^lab-server: --systemd: no sockets from systemd \(LISTEN_PID="1" is not this process \(\d+\)\)/);
});

test('the environment is read as sd_listen_fds(3) reads it, and removed whatever it said', () => {
  const env = (variables: Record<string, string>): NodeJS.ProcessEnv => ({ PATH: '/bin', ...variables });
  const ours = env({ LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'echo:daytime' });
  assert.deepEqual(systemdSockets(ours, 42), [
    { fd: 3, by: 'systemd', name: 'echo' },
    { fd: 4, by: 'systemd', name: 'daytime' },
  ]);
  assert.deepEqual(ours, { PATH: '/bin' }, 'LISTEN_* removed, so that children do not inherit them');
  assert.deepEqual(systemdSockets(env({ LISTEN_PID: '42', LISTEN_FDS: '1' }), 42), [{ fd: 3, by: 'systemd' }], 'no names: none given');
  const theirs = env({ LISTEN_PID: '41', LISTEN_FDS: '1' });
  assert.deepEqual(systemdSockets(theirs, 42), [], 'for another process: not ours to take');
  assert.deepEqual(theirs, { PATH: '/bin' }, 'and still removed');
  assert.deepEqual(systemdSockets(env({}), 42), []);
  assert.throws(() => systemdSockets(env({ LISTEN_PID: '42', LISTEN_FDS: 'two' }), 42), { code: 'ERR_NOT_ACTIVATED', message: /^LISTEN_FDS="two" is not a number of descriptors/ });
  assert.throws(() => systemdSockets(env({ LISTEN_PID: '42', LISTEN_FDS: '0' }), 42), { code: 'ERR_NOT_ACTIVATED' });
  assert.throws(() => systemdSockets(env({ LISTEN_PID: '42', LISTEN_FDS: '2', LISTEN_FDNAMES: 'echo' }), 42), { code: 'ERR_NOT_ACTIVATED', message: /1 name\(s\) for LISTEN_FDS=2/ });
});
