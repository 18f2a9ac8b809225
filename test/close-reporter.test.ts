import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { platform } from 'node:os';
import test from 'node:test';
import { fetchDaytime } from '../src/clients/daytime.js';
import { LogCapture, type LogLine } from '../src/labs/log-capture.js';
import { daytime } from '../src/protocols/daytime.js';
import { echo } from '../src/protocols/echo.js';
import { createServer } from '../src/framework/server.js';
import { CloseReporter, kernelStateOf } from '../src/observers/kernel-states.js';
import { parseProcNetTcp } from '../src/tcp-states/parse.js';
import { readTcpSockets } from '../src/tcp-states/read.js';
import { startServerProcess } from './helpers/cli.js';

const linuxOnly = platform() === 'linux' ? false : 'kernel states need Linux /proc/net/tcp';
const DEADLINE_MS = 5000;

async function startWithReporter(protocol: typeof daytime, options: Partial<ConstructorParameters<typeof CloseReporter>[1]> = {}) {
  const log = new LogCapture('debug');
  const server = createServer({ protocol, host: '127.0.0.1', port: 0, logger: log.logger });
  const reporter = new CloseReporter(server, { logger: log.logger, ...options });
  const { port } = await server.listen();
  const stop = async (): Promise<void> => {
    await reporter.stop();
    await server.close(0);
  };
  return { server, port, log, stop };
}

const kernelState = (log: LogCapture): Promise<LogLine> => log.waitFor((line) => line.event === 'kernel-state', DEADLINE_MS);

test('daytime closes first: the report a moment later says TIME_WAIT, with the time left', { skip: linuxOnly }, async () => {
  const { port, log, stop } = await startWithReporter(daytime);
  try {
    let clientPort = 0;
    await fetchDaytime({ host: '127.0.0.1', port, timeoutMs: DEADLINE_MS, holdMs: 0, close: true, onLine: () => {}, onConnected: (local) => (clientPort = local.port) });
    const line = await kernelState(log);
    assert.equal(line.state, 'TIME_WAIT');
    assert.equal(line.closedBy, 'server');
    assert.equal(line.how, 'fin');
    assert.equal(line.conn, 1);
    assert.equal(line.pair, `{127.0.0.1:${port}, 127.0.0.1:${clientPort}}`);
    assert.ok(typeof line.remainingMs === 'number' && line.remainingMs > 0 && line.remainingMs <= 60_000);
    assert.equal(typeof line.explanation, 'string');
  } finally {
    await stop();
  }
});

test('the echo client closes first: nothing is left of the server side (state null)', { skip: linuxOnly }, async () => {
  const { port, log, stop } = await startWithReporter(echo);
  try {
    const client = net.connect({ host: '127.0.0.1', port });
    await once(client, 'connect');
    client.resume();
    client.end('bye\n');
    await once(client, 'close');
    const line = await kernelState(log);
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
  const { port, log, stop } = await startWithReporter(echo, {
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
    const accounted = (): number =>
      log.lines.filter((l) => l.event === 'kernel-state').length +
      log.lines.filter((l) => l.event === 'kernel-state-sampled').reduce((sum, l) => sum + Number(l.skipped), 0);
    await log.waitFor(() => accounted() === CLIENTS, DEADLINE_MS);
    const sampled = log.lines.filter((l) => l.event === 'kernel-state-sampled');
    assert.ok(sampled.length >= 1, 'the log says it sampled');
    assert.ok(reads < CLIENTS, `one read per batch, not per connection (${reads} reads)`);
    assert.ok(log.lines.filter((l) => l.event === 'kernel-state').length <= reads * 5);
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
    report: () => ({ closedBy, how, bytesIn: 0, bytesOut: 0, durationMs: 1 }),
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

test('many closes since the last read: the table is not read while it churns; reports resume when closes slow down', { skip: linuxOnly }, async () => {
  const CLIENTS = 12;
  let reads = 0;
  const { port, log, stop } = await startWithReporter(echo, {
    maxClosesBetweenReads: 5,
    // Long enough for all the clients' closes to land in one window, even on a busy machine.
    settleMs: 300,
    minReadIntervalMs: 10,
    read: () => {
      reads += 1;
      return readTcpSockets();
    },
  });
  const echoAndClose = async (): Promise<void> => {
    const client = net.connect({ host: '127.0.0.1', port });
    await once(client, 'connect');
    client.resume();
    client.end();
    await once(client, 'close');
  };
  try {
    await Promise.all(Array.from({ length: CLIENTS }, echoAndClose));
    const skipped = await log.waitFor((line) => line.event === 'kernel-state-skipped', DEADLINE_MS);
    assert.equal(skipped.reason, 'busy');
    assert.equal(skipped.connections, CLIENTS);
    assert.equal(skipped.closedSinceLastRead, CLIENTS);
    assert.match(String(skipped.msg), /12 connections closed since the last look/);
    assert.equal(reads, 0, 'the table was not read');

    await echoAndClose();
    const report = await kernelState(log);
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

test('a huge kernel table (a TIME_WAIT storm) is not printed: the log says why, and no connection is left unaccounted', { skip: linuxOnly }, async () => {
  let reads = 0;
  const storm = { sockets: 120_000, timeWait: 119_000 };
  const { port, log, stop } = await startWithReporter(daytime, {
    maxTableRows: 10_000,
    tableSize: async () => storm,
    read: () => {
      reads += 1;
      return readTcpSockets();
    },
  });
  try {
    await readUntilServerCloses(port);
    const skipped = await log.waitFor((line) => line.event === 'kernel-state-skipped', DEADLINE_MS);
    assert.equal(skipped.reason, 'table-size');
    assert.equal(skipped.connections, 1);
    assert.equal(skipped.tableSockets, storm.sockets);
    assert.equal(skipped.timeWait, storm.timeWait);
    assert.match(String(skipped.msg), /120000 TCP sockets \(119000 in TIME_WAIT\)/);
    assert.equal(reads, 0, 'the table was not read');
    assert.equal(log.lines.filter((l) => l.event === 'kernel-state').length, 0);
  } finally {
    await stop();
  }
});
