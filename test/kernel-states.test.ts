import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { platform } from 'node:os';
import test from 'node:test';
import { fetchDaytime } from '../src/clients/daytime.js';
import { EventRecorder } from '../src/framework/event-recorder.js';
import type { EventOf } from '../src/framework/events.js';
import { createServer } from '../src/framework/server.js';
import { KernelStateReporter, kernelStateOf, type KernelStateOptions } from '../src/observers/kernel-states.js';
import { daytime } from '../src/protocols/daytime.js';
import { echo } from '../src/protocols/echo.js';
import { parseProcNetTcp } from '../src/tcp-states/parse.js';
import { readTcpSockets } from '../src/tcp-states/read.js';
import { parseSs, parseSsDuration } from '../src/tcp-states/ss.js';
import { startServerProcess } from './helpers/cli.js';
import { waitFor } from './helpers/servers.js';

const linuxOnly = platform() === 'linux' ? false : 'kernel states need Linux /proc/net/tcp';
const DEADLINE_MS = 5000;
const hasSs = (() => {
  try {
    execFileSync('ss', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** A server on loopback with a reporter that, unless told otherwise, reads the kernel's table however big it is. */
async function startWithReporter(protocol: typeof daytime, options: KernelStateOptions = {}) {
  const server = createServer({ protocol });
  const events = new EventRecorder(server.events.stream);
  const reporter = new KernelStateReporter(server.events.stream, { maxTableRows: Infinity, ...options });
  const [local] = await server.listen({ host: '127.0.0.1', port: 0 });
  const port = local!.port;
  const stop = async (): Promise<void> => {
    await reporter.stop();
    await server.close(0);
  };
  return { server, port, events, stop };
}

const kernelState = (events: EventRecorder): Promise<EventOf<'kernel-state'>> => events.waitFor('kernel-state');

test('daytime closes first: the report a moment later says TIME_WAIT, with the time left', { skip: linuxOnly }, async () => {
  const { port, events, stop } = await startWithReporter(daytime);
  try {
    let clientPort = 0;
    await fetchDaytime({ host: '127.0.0.1', port, timeoutMs: DEADLINE_MS, holdMs: 0, close: true, onLine: () => {}, onConnected: (local) => (clientPort = local.port) });
    const line = await kernelState(events);
    assert.equal(line.state, 'TIME_WAIT');
    assert.equal(line.closedBy, 'server');
    assert.equal(line.how, 'fin');
    assert.equal(line.conn, 1);
    assert.deepEqual([line.local, line.remote], [{ address: '127.0.0.1', port }, { address: '127.0.0.1', port: clientPort }]);
    assert.ok(line.remainingMs !== null && line.remainingMs > 0 && line.remainingMs <= 60_000, `TIME_WAIT left: ${line.remainingMs} ms`);
    assert.match(line.explanation, /^TIME_WAIT \(\d+\.\d s left\): the server closed first/);
  } finally {
    await stop();
  }
});

test('the echo client closes first: nothing is left of the server side (state null)', { skip: linuxOnly }, async () => {
  const { port, events, stop } = await startWithReporter(echo);
  try {
    const client = net.connect({ host: '127.0.0.1', port });
    await once(client, 'connect');
    client.resume();
    client.end('bye\n');
    await once(client, 'close');
    const line = await kernelState(events);
    assert.equal(line.state, null);
    assert.equal(line.remainingMs, null);
    assert.equal(line.closedBy, 'client');
  } finally {
    await stop();
  }
});

test('under load: one read serves a whole batch, extra connections are counted as skipped, and the log says so', { skip: linuxOnly }, async () => {
  const CLIENTS = 12;
  let reads = 0;
  const { port, events, stop } = await startWithReporter(echo, {
    maxReportsPerRead: 5,
    read: () => {
      reads += 1;
      return readTcpSockets();
    },
  });
  try {
    const clients = await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        const client = net.connect({ host: '127.0.0.1', port });
        await once(client, 'connect');
        return client;
      }),
    );
    for (const client of clients) {
      client.resume();
      client.end();
    }
    await Promise.all(clients.map((client) => once(client, 'close')));
    const accounted = (): number => events.of('kernel-state').length + events.of('kernel-state-sampled').reduce((sum, e) => sum + e.skipped, 0);
    await waitFor('every closed connection reported or counted as skipped', () => (accounted() === CLIENTS ? true : undefined), DEADLINE_MS);
    assert.ok(events.of('kernel-state-sampled').length >= 1, 'the reporter says it sampled');
    assert.ok(reads < CLIENTS, `one read per batch, not per connection (${reads} reads)`);
    assert.ok(events.of('kernel-state').length <= reads * 5);
  } finally {
    await stop();
  }
});

test('kernelStateOf: the server end of the pair, found through IPv4-mapped addresses', () => {
  const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
  const entries = parseProcNetTcp(`${header}\n   0: 0100007F:000D 0100007F:9C40 06 00000000:00000000 03:00000BB8 00000000     0        0 0 3 0000000000000000\n`, 4);
  const conn = (closedBy: 'server' | 'client', how: 'fin' | 'rst' = 'fin') => ({
    local: { address: '::ffff:127.0.0.1', port: 13 },
    remote: { address: '::ffff:127.0.0.1', port: 40000 },
    closedBy,
    how,
  });
  assert.deepEqual({ ...kernelStateOf(entries, conn('server')), explanation: undefined }, { state: 'TIME_WAIT', remainingMs: 30000, explanation: undefined });
  assert.equal(kernelStateOf([], conn('client')).state, null);
  assert.notEqual(kernelStateOf([], conn('client')).explanation, kernelStateOf([], conn('server', 'rst')).explanation);
});

/** A daytime client that, like daytime.c's read loop, reads until the server's FIN and only then closes. */
async function readUntilServerCloses(port: number): Promise<void> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.resume();
  await once(socket, 'end');
  socket.end();
  await once(socket, 'close');
}

/** An echo client that connects, closes first, and waits for the server's close. */
async function echoAndClose(port: number): Promise<void> {
  const client = net.connect({ host: '127.0.0.1', port });
  await once(client, 'connect');
  client.resume();
  client.end();
  await once(client, 'close');
}

test('many closes since the last read: the table is not read while it churns; reports resume when closes slow down', { skip: linuxOnly }, async () => {
  const CLIENTS = 12;
  let reads = 0;
  const { port, events, stop } = await startWithReporter(echo, {
    maxClosesBetweenReads: 5,
    // Long enough for all the clients' closes to land in one window, even on a busy machine.
    settleMs: 300,
    minReadIntervalMs: 10,
    read: () => {
      reads += 1;
      return readTcpSockets();
    },
  });
  try {
    await Promise.all(Array.from({ length: CLIENTS }, () => echoAndClose(port)));
    const skipped = await events.waitFor('kernel-state-skipped');
    assert.deepEqual(skipped.reason === 'busy' && [skipped.connections, skipped.closedSinceLastRead], [CLIENTS, CLIENTS]);
    assert.equal(reads, 0, 'the table was not read');

    await echoAndClose(port);
    const report = await kernelState(events);
    assert.equal(report.state, null, 'the client closed first: nothing left of the server side');
    assert.equal(reads, 1);
  } finally {
    await stop();
  }
});

test('lab-server daytime logs the kernel state after each close; --no-kernel-states turns it off', { skip: linuxOnly }, async () => {
  const server = await startServerProcess(['daytime', '--host', '127.0.0.1']);
  try {
    await readUntilServerCloses(server.port);
    const line = await server.event('kernel-state');
    assert.equal(line.state, 'TIME_WAIT');
    assert.equal(line.closedBy, 'server');
    assert.equal(line.conn, 1);
  } finally {
    await server.stop();
  }
  const quiet = await startServerProcess(['daytime', '--host', '127.0.0.1', '--no-kernel-states']);
  try {
    await readUntilServerCloses(quiet.port);
    await quiet.event('closed');
  } finally {
    const { code } = await quiet.stop();
    assert.equal(code, 0);
    assert.equal(quiet.lines.filter((l) => l.event === 'kernel-state').length, 0);
  }
});

test('a huge kernel table (a TIME_WAIT storm) is not printed: ss picks out our port, and without ss the report says why', { skip: linuxOnly }, async () => {
  let reads = 0;
  const storm = { sockets: 120_000, timeWait: 119_000 };
  const readProc = () => {
    reads += 1;
    return readTcpSockets();
  };
  const withSs = await startWithReporter(daytime, { maxTableRows: 10_000, tableSize: async () => storm, read: readProc });
  try {
    await readUntilServerCloses(withSs.port);
    if (hasSs) assert.equal((await withSs.events.waitFor('kernel-state')).state, 'TIME_WAIT', 'read through ss');
    else assert.equal((await withSs.events.waitFor('kernel-state-skipped')).reason, 'table-size', 'no ss on this machine');
  } finally {
    await withSs.stop();
  }
  const withoutSs = await startWithReporter(daytime, { maxTableRows: 10_000, tableSize: async () => storm, read: readProc, readFiltered: async () => undefined });
  try {
    await readUntilServerCloses(withoutSs.port);
    const skipped = await withoutSs.events.waitFor('kernel-state-skipped');
    assert.deepEqual(skipped.reason === 'table-size' && [skipped.connections, skipped.tableSockets, skipped.timeWait], [1, storm.sockets, storm.timeWait]);
    assert.equal(withoutSs.events.of('kernel-state').length, 0);
  } finally {
    await withoutSs.stop();
  }
  assert.equal(reads, 0, '/proc/net/tcp was never printed whole');
});

test('ss rows: states, both families, the wildcard, queues and the TIME_WAIT timer', () => {
  const rows = parseSs(
    [
      'LISTEN    0      511        127.0.0.1:5000       0.0.0.0:*',
      'LISTEN    0      511            [::1]:5000          [::]:*',
      'TIME-WAIT 0      0          127.0.0.1:5000     127.0.0.1:40312 timer:(timewait,59sec,0)',
      'ESTAB     3      0   [::ffff:127.0.0.1]:5000 [::ffff:127.0.0.1]:40314',
      'FIN-WAIT-2 0     0          127.0.0.1:40316    127.0.0.1:5000 timer:(timewait,5.123ms,0)',
    ].join('\n'),
  );
  assert.deepEqual(
    rows.map((r) => [r.state, r.family, `${r.local.address}:${r.local.port}`, `${r.remote.address}:${r.remote.port}`, r.rxQueue, r.timer.kind, r.timer.remainingMs]),
    [
      ['LISTEN', 4, '127.0.0.1:5000', '0.0.0.0:0', 0, 'none', 0],
      ['LISTEN', 6, '::1:5000', ':::0', 0, 'none', 0],
      ['TIME_WAIT', 4, '127.0.0.1:5000', '127.0.0.1:40312', 0, 'time-wait', 59_000],
      ['ESTABLISHED', 6, '::ffff:127.0.0.1:5000', '::ffff:127.0.0.1:40314', 3, 'none', 0],
      ['FIN_WAIT2', 4, '127.0.0.1:40316', '127.0.0.1:5000', 0, 'time-wait', 5123],
    ],
  );
  assert.deepEqual(['340ms', '59sec', '1min30sec', '5.123ms'].map(parseSsDuration), [340, 59_000, 90_000, 5123]);
});

test('after a slow read (a storm), the next report still comes within seconds, not 50 times the read later', { skip: linuxOnly }, async () => {
  const READ_COST_MS = 200;
  const { port, events, stop } = await startWithReporter(echo, {
    minReadIntervalMs: 10,
    // 50 × 200 ms would be 10 s; the cap is what keeps the reports coming.
    maxReadSpacingMs: 1000,
    read: async () => {
      await new Promise((resolve) => setTimeout(resolve, READ_COST_MS));
      return readTcpSockets();
    },
  });
  try {
    await echoAndClose(port);
    await kernelState(events);
    const closedAt = performance.now();
    await echoAndClose(port);
    await events.waitFor('kernel-state', (e) => e.conn === 2, 8000);
    const waitedMs = performance.now() - closedAt;
    assert.ok(waitedMs < 5000, `the second report came ${Math.round(waitedMs)} ms after its close`);
  } finally {
    await stop();
  }
});
