/**
 * --workers: the real CLI with worker processes on loopback. The primary admits, the workers serve;
 * the limits hold for the whole service, the log names the worker, and a dead worker is replaced.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { assertOneLineError, LAB_SERVER, run, startServerProcess, type RunningServer } from './helpers/cli.js';
import { waitFor } from './helpers/servers.js';

/** Connects, sends a line, and says whether it came back (served) or the connection was reset or closed first. */
async function echoOnce(port: number): Promise<{ socket: net.Socket; outcome: 'served' | 'refused' }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  // A refused connection is reset at once: sometimes before the client has seen its handshake end.
  socket.write('ping\n');
  const outcome = await new Promise<'served' | 'refused'>((resolve) => {
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
      if (received === 'ping\n') resolve('served');
    });
    socket.on('close', () => resolve('refused'));
  });
  return { socket, outcome };
}

/** Resolves once `count` workers have said they are ready (worker-started). */
const workersReady = (server: RunningServer, count = 2): Promise<true> =>
  waitFor(`${count} workers ready`, () => (server.lines.filter((line) => line.event === 'worker-started').length >= count ? true : undefined), 20_000);

const workersOf = (server: RunningServer, event: string): Set<unknown> => new Set(server.lines.filter((line) => line.event === event).map((line) => line.worker));

test('--workers 2: 100 connections from one address with --max-per-source 50: exactly 50 served, by both workers, under unique numbers', { timeout: 60_000 }, async (t) => {
  const server = await startServerProcess(['echo', '--host', '127.0.0.1', '--workers', '2', '--max-per-source', '50']);
  t.after(() => server.child.exitCode === null && server.child.kill('SIGKILL'));
  await workersReady(server);
  const attempts = await Promise.all(Array.from({ length: 100 }, () => echoOnce(server.port)));
  const served = attempts.filter(({ outcome }) => outcome === 'served');
  assert.equal(served.length, 50, 'the per-source limit holds across the workers, not per worker');
  for (const { socket } of attempts) socket.destroy();
  await waitFor('every close reported', () => (server.lines.filter((line) => line.event === 'closed').length >= 50 ? true : undefined), 20_000);
  const accepted = server.lines.filter((line) => line.event === 'accepted');
  assert.equal(accepted.length, 50);
  assert.deepEqual([...workersOf(server, 'accepted')].sort(), [1, 2], 'both workers were handed connections');
  assert.deepEqual([...workersOf(server, 'closed')].sort(), [1, 2], 'both workers served and closed some');
  assert.equal(new Set(accepted.map((line) => line.conn)).size, 50, 'connection numbers are unique across workers');
  assert.equal(server.lines.filter((line) => line.event === 'refused' && line.reason === 'max-per-source').length > 0, true);
  const { code } = await server.stop('SIGTERM');
  assert.equal(code, 0);
  const summary = server.lines.find((line) => line.event === 'summary');
  assert.equal(summary?.connections, 50, 'the summary adds the workers up');
  assert.equal(summary?.bytesIn, 50 * 5);
});

test('--workers 2: SIGTERM under load drains every worker and exits 0 within the deadline', { timeout: 60_000 }, async (t) => {
  const server = await startServerProcess(['echo', '--host', '127.0.0.1', '--workers', '2', '--shutdown-timeout', '2']);
  t.after(() => server.child.exitCode === null && server.child.kill('SIGKILL'));
  await server.event('worker-started');
  // Held connections (served, never closed by the client) and a stream of new ones while the signal comes.
  const held = await Promise.all(Array.from({ length: 20 }, () => echoOnce(server.port)));
  assert.ok(held.every(({ outcome }) => outcome === 'served'));
  let connecting = true;
  const load = (async () => {
    for (let i = 0; i < 200 && connecting; i++) {
      const socket = net.connect(server.port, '127.0.0.1').on('error', () => {});
      socket.resume(); // read to the end: 'close' comes after the server's FIN is read
      socket.end('x\n');
      await new Promise((resolve) => socket.on('close', resolve)); // served, or refused once the listener is closed
    }
  })();
  const started = performance.now();
  const { code } = await server.stop('SIGTERM');
  const tookMs = performance.now() - started;
  connecting = false;
  await load;
  assert.equal(code, 0);
  assert.ok(tookMs < 2000 + 3000, `exited ${Math.round(tookMs)} ms after SIGTERM; the drain deadline is 2 s`);
  const summary = server.lines.find((line) => line.event === 'summary');
  assert.ok(Number(summary?.forced) >= 20, `the held connections were closed at the deadline (forced: ${summary?.forced})`);
  for (const { socket } of held) socket.destroy();
});

test('--workers 2: a killed worker is logged and replaced; its connections are reported closed; the listener never goes away', { timeout: 60_000 }, async (t) => {
  const server = await startServerProcess(['echo', '--host', '127.0.0.1', '--workers', '2']);
  t.after(() => server.child.exitCode === null && server.child.kill('SIGKILL'));
  await workersReady(server);
  // Round-robin over the workers that are ready: connect until each worker holds some.
  const held: { socket: net.Socket; worker: unknown }[] = [];
  // The log line may come after the echo: the log is another pipe.
  const workerOf = (socket: net.Socket): Promise<unknown> =>
    waitFor('its accepted line', () => server.lines.find((line) => line.event === 'accepted' && line.remote === `127.0.0.1:${socket.localPort}`)?.worker, 10_000);
  while (new Set(held.map(({ worker }) => worker)).size < 2 && held.length < 20) {
    const { socket } = await echoOnce(server.port);
    held.push({ socket, worker: await workerOf(socket) });
  }
  const victim = held[0]!.worker;
  const onVictim = held.filter(({ worker }) => worker === victim);
  const survivors = held.filter(({ worker }) => worker !== victim);
  assert.ok(survivors.length > 0, 'both workers hold connections');
  const started = server.lines.find((line) => line.event === 'worker-started' && line.worker === victim);
  const closedByDeath = Promise.all(onVictim.map(({ socket }) => once(socket, 'close')));
  process.kill(Number(started?.workerPid), 'SIGKILL');
  const exited = await server.event('worker-exited');
  assert.equal(exited.worker, victim);
  assert.equal(exited.signal, 'SIGKILL');
  assert.equal(exited.lost, onVictim.length);
  await closedByDeath; // the kernel closed the dead worker's connections
  await workersReady(server, 3); // the replacement
  const lost = server.lines.filter((line) => line.event === 'closed' && line.reason === 'worker-exited');
  assert.equal(lost.length, onVictim.length, 'the lost connections are reported closed');
  // Served throughout: new connections, and the other worker's held ones.
  for (let i = 0; i < 4; i++) {
    const { socket, outcome } = await echoOnce(server.port);
    assert.equal(outcome, 'served');
    socket.destroy();
  }
  for (const { socket } of survivors) {
    socket.write('still\n');
    const [echoed] = (await once(socket, 'data')) as [Buffer];
    assert.equal(echoed.toString(), 'still\n');
    socket.destroy();
  }
  assert.equal((await server.stop('SIGTERM')).code, 0);
});

test('--workers 2: /metrics in the primary counts every worker\'s connections', { timeout: 60_000 }, async (t) => {
  const server = await startServerProcess(['echo', '--host', '127.0.0.1', '--workers', '2', '--metrics', '0']);
  t.after(() => server.child.exitCode === null && server.child.kill('SIGKILL'));
  const url = String((await server.event('metrics')).url);
  await workersReady(server);
  for (let i = 0; i < 10; i++) (await echoOnce(server.port)).socket.end();
  await waitFor('ten closes', () => (server.lines.filter((line) => line.event === 'closed').length === 10 ? true : undefined), 20_000);
  assert.deepEqual([...workersOf(server, 'closed')].sort(), [1, 2]);
  const scrape = await (await fetch(url)).text();
  const value = (series: string): number => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(scrape)?.[1]);
  assert.equal(value('lab_server_connections_accepted_total{protocol="echo",transport="tcp"}'), 10);
  assert.equal(value('lab_server_connections_closed_total{protocol="echo",transport="tcp",closed_by="client",how="fin"}'), 10);
  assert.equal(value('lab_server_received_bytes_total{protocol="echo",transport="tcp"}'), 50);
  assert.equal(value('lab_server_connections_open{protocol="echo",transport="tcp"}'), 0);
  assert.equal((await server.stop('SIGTERM')).code, 0);
});

test('--workers 2: when full, the workers evict their stalled connections to make room (--evict-stalled-after)', { timeout: 60_000 }, async (t) => {
  const server = await startServerProcess(['echo', '--host', '127.0.0.1', '--workers', '2', '--max-connections', '4', '--max-per-source', '4', '--evict-stalled-after', '1']);
  t.after(() => server.child.exitCode === null && server.child.kill('SIGKILL'));
  // Four silent connections fill the server (served: each echoed one line, then went quiet).
  const silent = await Promise.all(Array.from({ length: 4 }, () => echoOnce(server.port)));
  assert.ok(silent.every(({ outcome }) => outcome === 'served'));
  // A newcomer, once they have been silent long enough, gets in: at once, or at its next try.
  const newcomer = await waitFor('a newcomer served', async () => {
    const attempt = await echoOnce(server.port);
    if (attempt.outcome === 'served') return attempt.socket;
    attempt.socket.destroy();
    return undefined;
  }, 20_000, 200);
  const evicted = await server.event('evicted');
  assert.ok(Number(evicted.stalledMs) >= 1000);
  assert.ok([1, 2].includes(Number(evicted.worker)), 'the eviction was a worker\'s');
  newcomer.destroy();
  for (const { socket } of silent) socket.destroy();
  assert.equal((await server.stop('SIGTERM')).code, 0);
});

test('--workers 2 behind a proxy: a worker reads the PROXY header, the primary admits the client it names; bytes after the header arrive', { timeout: 60_000 }, async (t) => {
  const server = await startServerProcess(['echo', '--host', '127.0.0.1', '--workers', '2', '--proxy-protocol', 'v1', '--proxy-from', '127.0.0.1', '--max-per-source', '1']);
  t.after(() => server.child.exitCode === null && server.child.kill('SIGKILL'));
  const through = async (bytes: string): Promise<{ socket: net.Socket; received: Promise<string> }> => {
    const socket = net.connect(server.port, '127.0.0.1').on('error', () => {});
    socket.write(bytes); // the header and the client's first line in one segment, as a proxy may send them
    const received = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('close', () => resolve(text));
      socket.on('data', () => text.endsWith('\n') && resolve(text));
    });
    return { socket, received };
  };
  const first = await through('PROXY TCP4 10.9.8.7 127.0.0.1 5555 7\r\nhello\n');
  assert.equal(await first.received, 'hello\n');
  const accepted = await server.event('accepted');
  assert.equal(accepted.remote, '10.9.8.7:5555', "the client's address, from the header");
  assert.ok([1, 2].includes(Number(accepted.worker)));
  // The same client again, while its first connection is open: --max-per-source 1, counted by the primary.
  const second = await through('PROXY TCP4 10.9.8.7 127.0.0.1 5556 7\r\nagain\n');
  assert.equal(await second.received, '');
  const refused = await server.event('refused');
  assert.equal(refused.reason, 'max-per-source');
  // Not a header at all: refused, with the reason, by the primary.
  const bad = await through('GET / HTTP/1.0\r\n\r\n');
  assert.equal(await bad.received, '');
  await waitFor('the malformed refusal', () => server.lines.find((line) => line.event === 'refused' && line.reason === 'proxy-malformed'));
  first.socket.destroy();
  assert.equal((await server.stop('SIGTERM')).code, 0);
});

test('--workers: bad values and combinations are usage errors (exit 64)', { timeout: 30_000 }, async () => {
  assertOneLineError(await run(LAB_SERVER, ['echo', '--workers', '0']), 64, /invalid --workers "0": give a number of worker processes from 1 to 256, or auto/);
  assertOneLineError(await run(LAB_SERVER, ['echo', '--workers', 'many']), 64, /invalid --workers "many"/);
  assertOneLineError(await run(LAB_SERVER, ['echo', '--workers', '2', '--iterative']), 64, /--workers with --iterative/);
});
