/** Connection limits and access control: the offender is refused, everyone else is served. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AccessControl, parseCidr } from '../src/framework/access-control.js';
import { EventStream } from '../src/framework/events.js';
import { echo } from '../src/protocols/echo.js';
import { DEFAULT_EVICT_STALLED_AFTER_MS } from '../src/framework/server.js';
import { DEFAULT_MAX_SEND_QUEUE_BYTES } from '../src/framework/send-queue.js';
import { startServer, type TestServer } from './helpers/servers.js';

/**
 * Connects from a given local address (all of 127.0.0.0/8 is loopback on Linux), sends a
 * line and waits: 'served' when the echo comes back, 'refused' when the server resets the
 * connection (possibly before connect() even reports success: the RST is that quick).
 */
async function attempt(localAddress: string, port: number): Promise<{ socket: net.Socket; outcome: 'refused' | 'served' }> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  socket.write('ping\n');
  const outcome = await new Promise<'refused' | 'served'>((resolve, reject) => {
    socket.once('data', () => resolve('served'));
    socket.once('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? resolve('refused') : reject(error)));
  });
  return { socket, outcome };
}

async function connectFrom(localAddress: string, port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  socket.on('error', () => {}); // it may be evicted: a reset
  await once(socket, 'connect');
  return socket;
}

const outcomeOf = async (localAddress: string, port: number): Promise<string> => {
  const { socket, outcome } = await attempt(localAddress, port);
  socket.destroy();
  return outcome;
};

test('subnets: IPv4, IPv6, single addresses; bad ones are usage errors', () => {
  assert.deepEqual(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
  assert.deepEqual(parseCidr('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
  for (const bad of ['10.0.0.0/33', 'foo', '1.2.3.4/8/9', '::1/129', '10.0.0.0/', '1.2.3.4/x']) assert.throws(() => parseCidr(bad), /invalid address or subnet/);
});

test('access rules: deny wins; allow rules, when present, admit only their subnets', () => {
  const rules = new AccessControl(['127.0.0.0/8', 'fd00::/8'], ['127.0.0.9']);
  assert.equal(rules.permits('127.0.0.1'), true);
  assert.equal(rules.permits('::ffff:127.0.0.1'), true, 'IPv4-mapped is matched as IPv4');
  assert.equal(rules.permits('127.0.0.9'), false);
  assert.equal(rules.permits('fd00::5'), true);
  assert.equal(rules.permits('192.0.2.1'), false);
  assert.equal(new AccessControl([], ['::1']).permits('192.0.2.1'), true, 'no allow rules: all but the denied');
});

/** Resolves once the server has closed its end of `socket`'s connection (ask before destroying it: then its port is gone). */
function serverClosed(events: TestServer['events'], socket: net.Socket): Promise<unknown> {
  const clientPort = socket.localPort;
  return events.waitFor('closed', (e) => e.remote.port === clientPort);
}

test('--rate: a burst is served, then new connections are reset until tokens come back; a denied one spends none', async (t) => {
  // The server's clock is the event stream's: driven by hand here, so no test waits a second.
  let nowMs = 0;
  const stream = new EventStream({ monotonicMs: () => nowMs, timeOrigin: 0 });
  const { server, port, events } = await startServer(echo, { events: stream, access: new AccessControl([], ['127.0.0.9']), limits: { rate: { perSecond: 1, burst: 2 } } });
  t.after(() => server.close(0));
  assert.equal(await outcomeOf('127.0.0.9', port), 'refused', 'denied first: it must not spend a token');
  assert.deepEqual([await outcomeOf('127.0.0.1', port), await outcomeOf('127.0.0.2', port)], ['served', 'served'], 'the burst');
  assert.equal(await outcomeOf('127.0.0.3', port), 'refused', 'over the rate, from any address');
  nowMs += 1000; // one second: one token back
  assert.equal(await outcomeOf('127.0.0.1', port), 'served');
  assert.equal(await outcomeOf('127.0.0.1', port), 'refused');
  assert.deepEqual(events.of('refused').map((e) => [e.reason, e.limit]), [['denied', undefined], ['rate', 1], ['rate', 1]]);
});

test('--max-per-source: the third connection from one address is reset; another address is served', async (t) => {
  const { server, port, events } = await startServer(echo, { limits: { maxPerSource: 2 } });
  t.after(() => server.close(0));
  const first = await attempt('127.0.0.1', port);
  const second = await attempt('127.0.0.1', port);
  assert.deepEqual([first.outcome, second.outcome], ['served', 'served']);
  assert.equal(await outcomeOf('127.0.0.1', port), 'refused');
  assert.equal(await outcomeOf('127.0.0.2', port), 'served', 'another address is unaffected');
  assert.deepEqual(events.of('refused').map((e) => [e.reason, e.limit, e.remote.address]), [['max-per-source', 2, '127.0.0.1']]);
  const firstClosed = serverClosed(events, first.socket);
  first.socket.destroy();
  await firstClosed;
  assert.equal(await outcomeOf('127.0.0.1', port), 'served', 'a freed slot is usable again');
  second.socket.destroy();
});

test('--max-per-source counts sources that were connected before counting started, and again after an idle spell', async (t) => {
  // The server asks who each client is only once as many connections are open as the limit.
  const { server, port, events } = await startServer(echo, { limits: { maxPerSource: 3 } });
  t.after(() => server.close(0));
  for (let round = 1; round <= 2; round++) {
    const held = [await attempt('127.0.0.1', port), await attempt('127.0.0.1', port), await attempt('127.0.0.2', port)];
    assert.deepEqual(held.map((h) => h.outcome), ['served', 'served', 'served'], `round ${round}`);
    const third = await attempt('127.0.0.1', port); // 127.0.0.1 had 2 of its 3
    assert.equal(third.outcome, 'served', `round ${round}: below the limit for this address`);
    assert.equal(await outcomeOf('127.0.0.1', port), 'refused', `round ${round}: a fourth from 127.0.0.1`);
    assert.equal(await outcomeOf('127.0.0.2', port), 'served', `round ${round}: 127.0.0.2 had only one`);
    const allClosed = Promise.all([...held, third].map(({ socket }) => serverClosed(events, socket)));
    for (const { socket } of [...held, third]) socket.destroy();
    await allClosed;
  }
});

test('--max-connections: refused beyond the limit, from any address', async (t) => {
  const { server, port, events } = await startServer(echo, { limits: { maxConnections: 2 } });
  t.after(() => server.close(0));
  const open = [await attempt('127.0.0.1', port), await attempt('127.0.0.2', port)];
  assert.deepEqual(open.map((o) => o.outcome), ['served', 'served']);
  assert.equal(await outcomeOf('127.0.0.3', port), 'refused');
  assert.deepEqual(events.of('refused').map((e) => [e.reason, e.limit]), [['max-connections', 2]]);
  for (const { socket } of open) socket.destroy();
});

test('a full server makes room from the connection stalled longest (slowloris), never from a busy one', async (t) => {
  const { server, port, events } = await startServer(echo, { limits: { maxConnections: 3, evictStalledAfterMs: 400 } });
  const busy = await attempt('127.0.0.1', port);
  const pings = setInterval(() => busy.socket.write('ping\n'), 50);
  const silent = [await connectFrom('127.0.0.2', port), await connectFrom('127.0.0.3', port)];
  t.after(() => {
    clearInterval(pings);
    for (const socket of [busy.socket, ...silent]) socket.destroy();
    return server.close(0);
  });
  assert.equal(await outcomeOf('127.0.0.4', port), 'refused', 'full, and nobody stalled long enough yet');
  const evicted = events.waitFor('evicted');
  // No event says when a connection has stalled long enough: knock every 50 ms until let in (for 5 s at most).
  let outcome = 'refused';
  for (let knocks = 0; outcome === 'refused' && knocks < 100; knocks++) {
    await sleep(50);
    outcome = await outcomeOf('127.0.0.5', port);
  }
  assert.equal(outcome, 'served');
  const { conn, stalledMs } = await evicted;
  assert.equal(conn, 2, 'the connection silent for longest');
  assert.ok(stalledMs >= 400);
  assert.equal((await events.waitFor('closed', (e) => e.conn === 2)).reason, 'evicted');
  assert.ok(!events.of('closed').some((e) => e.conn === 1), 'the busy connection was left alone');
});

test('--allow/--deny: refused addresses get RST, allowed ones are served', async (t) => {
  const { server, port, events } = await startServer(echo, { access: new AccessControl(['127.0.0.0/8'], ['127.0.0.5']) });
  t.after(() => server.close(0));
  assert.equal(await outcomeOf('127.0.0.5', port), 'refused');
  assert.equal(await outcomeOf('127.0.0.6', port), 'served');
  assert.deepEqual(events.of('refused').map((e) => [e.reason, e.remote.address]), [['denied', '127.0.0.5']]);
});

test('the per-source default is a quarter of --max-connections', async (t) => {
  const { server } = await startServer(echo, { limits: { maxConnections: 40 } });
  t.after(() => server.close(0));
  assert.deepEqual(server.limits, { maxConnections: 40, maxPerSource: 10, evictStalledAfterMs: DEFAULT_EVICT_STALLED_AFTER_MS, maxSendQueueBytes: DEFAULT_MAX_SEND_QUEUE_BYTES });
});

test('100 concurrent connections from one address are all served with the default limits', async (t) => {
  const { server, port, events } = await startServer(echo);
  t.after(() => server.close(0));
  const held = await Promise.all(Array.from({ length: 100 }, () => attempt('127.0.0.1', port)));
  assert.deepEqual(new Set(held.map((h) => h.outcome)), new Set(['served']));
  assert.equal(server.connections.size, 100);
  assert.equal(events.of('refused').length, 0);
  for (const { socket } of held) socket.destroy();
});
