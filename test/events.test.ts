/**
 * The event stream of a real server on loopback: the exact sequence of events for each kind of
 * session, a protocol that throws, every lifecycle path, and each way to give a server a socket.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { openSync, closeSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { AccessControl } from '../src/framework/access-control.js';
import { DatagramServer } from '../src/framework/datagram-server.js';
import { EventRecorder } from '../src/framework/event-recorder.js';
import { EventStream, type ServerEvent } from '../src/framework/events.js';
import { defineProtocol } from '../src/framework/protocol.js';
import { createServer } from '../src/framework/server.js';
import { LogObserver } from '../src/observers/log.js';
import { chargen } from '../src/protocols/chargen.js';
import { daytime } from '../src/protocols/daytime.js';
import { echo } from '../src/protocols/echo.js';
import { captureLog } from './helpers/capture-log.js';
import { connect, echoRoundTrip, readAll, startServer } from './helpers/servers.js';
import { hasPython3 } from './helpers/programs.js';

/** An event without its timestamps, for comparing sequences. */
const withoutTime = ({ at: _at, time: _time, ...rest }: ServerEvent): Record<string, unknown> => rest;
const pairOf = (socket: net.Socket) => ({
  local: { address: '127.0.0.1', port: socket.remotePort! },
  remote: { address: '127.0.0.1', port: socket.localPort! },
});

test('an echo session, event by event: the socket pair in every event, the client closing first', async (t) => {
  const { server, port, events, closed } = await startServer(echo);
  t.after(() => server.close(0));
  const client = await connect(port);
  const pair = pairOf(client);
  const reply = readAll(client);
  client.end('hi\n');
  assert.equal((await reply).toString(), 'hi\n');
  await closed(1);
  const service = { protocol: 'echo', transport: 'tcp' };
  const conn = { ...service, conn: 1, ...pair };
  const durationMs = events.of('closed')[0]!.durationMs;
  assert.deepEqual(events.events.map(withoutTime), [
    { type: 'listening', ...service, local: { address: '127.0.0.1', port }, inherited: false, rfc: 862 },
    { type: 'accepted', ...conn },
    { type: 'state', ...conn, from: 'accepted', to: 'active' },
    { type: 'message', ...conn, line: 1, text: 'hi', length: 2, truncated: false },
    { type: 'state', ...conn, from: 'active', to: 'peer-closed' },
    { type: 'state', ...conn, from: 'peer-closed', to: 'closed' },
    { type: 'closed', ...conn, closedBy: 'client', how: 'fin', bytesIn: 3, bytesOut: 3, durationMs },
  ]);
  const [first, last] = [events.events[0]!, events.events.at(-1)!];
  assert.ok(last.at >= first.at && Math.abs(last.time - Date.now()) < 60_000, 'monotonic and wall-clock timestamps');
});

test('a daytime session, event by event: the server sends its line and closes first', async (t) => {
  const now = () => new Date('2026-11-01T09:05:03Z');
  const { server, port, events, closed } = await startServer(daytime, { now, settings: { utc: true, crlf: false } });
  t.after(() => server.close(0));
  const client = await connect(port);
  const pair = pairOf(client);
  assert.equal((await readAll(client)).toString(), 'Sun Nov  1 09:05:03 2026\n');
  client.end();
  await closed(1);
  const conn = { protocol: 'daytime', transport: 'tcp', conn: 1, ...pair };
  const durationMs = events.of('closed')[0]!.durationMs;
  assert.deepEqual(events.events.slice(1).map(withoutTime), [
    { type: 'accepted', ...conn },
    { type: 'state', ...conn, from: 'accepted', to: 'active' },
    { type: 'sent', ...conn, text: 'Sun Nov  1 09:05:03 2026', bytes: 25 },
    { type: 'state', ...conn, from: 'active', to: 'closing' },
    { type: 'state', ...conn, from: 'closing', to: 'closed' },
    { type: 'closed', ...conn, closedBy: 'server', how: 'fin', reason: 'protocol', bytesIn: 0, bytesOut: 25, durationMs },
  ]);
});

test('a refused connection: one refused event with the reason and the pair, and no connection', async (t) => {
  const { server, port, events } = await startServer(echo, { access: new AccessControl([], ['127.0.0.1']) });
  t.after(() => server.close(0));
  const client = net.connect({ host: '127.0.0.1', port });
  const [error] = (await once(client, 'error')) as [NodeJS.ErrnoException];
  assert.equal(error.code, 'ECONNRESET');
  const refused = await events.waitFor('refused');
  assert.deepEqual(events.events.slice(1).map(withoutTime), [
    { type: 'refused', protocol: 'echo', transport: 'tcp', local: { address: '127.0.0.1', port }, remote: refused.remote, reason: 'denied' },
  ]);
  assert.equal(refused.remote.address, '127.0.0.1');
  assert.ok(refused.remote.port > 0, 'the client port, captured at accept');
});

test('a UDP datagram: one datagram event with both ends and the sizes', async (t) => {
  const server = new DatagramServer({ protocol: echo, ownPorts: new Set() });
  const events = new EventRecorder(server.events.stream);
  const [local] = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = dgram.createSocket('udp4');
  t.after(() => Promise.all([server.close(), new Promise((resolve) => client.close(() => resolve(undefined)))]));
  client.send('ping', local!.port, '127.0.0.1');
  const [reply, from] = (await once(client, 'message')) as [Buffer, dgram.RemoteInfo];
  assert.equal(reply.toString(), 'ping');
  assert.equal(from.port, local!.port);
  const service = { protocol: 'echo', transport: 'udp' };
  assert.deepEqual(events.events.map(withoutTime), [
    { type: 'listening', ...service, local: { address: '127.0.0.1', port: local!.port }, inherited: false, rfc: 862 },
    { type: 'datagram', ...service, local: { address: '127.0.0.1', port: local!.port }, remote: { address: '127.0.0.1', port: client.address().port }, bytesIn: 4, bytesOut: 4 },
  ]);
});

test('a connection the log did not sample still has its socket pair in its closed event', async (t) => {
  const stream = new EventStream();
  const log = captureLog('info');
  new LogObserver(stream, log.logger, { connectionsPerSecond: 1 });
  const { server, port, events, closed } = await startServer(echo, { events: stream });
  t.after(() => server.close(0));
  const clients = [await connect(port), await connect(port), await connect(port)];
  const third = pairOf(clients[2]!);
  for (const client of clients) client.end();
  await Promise.all([closed(1), closed(2)]);
  const { local, remote } = await closed(3);
  assert.deepEqual({ local, remote }, third);
  assert.equal(log.lines.filter((line) => line.conn === 3).length, 0, 'connection 3 was over the log budget (a burst of 2)');
  assert.equal(log.events('closed').length, 2);
  assert.equal(events.of('closed').length, 3);
});

/** A protocol that fails on "boom": in a socket listener (TCP) or in its handler (UDP). */
const fragile = defineProtocol({
  name: 'fragile',
  rfc: 0,
  summary: 'echo that throws on "boom"',
  wellKnownPort: 0,
  defaultPort: 0,
  closesFirst: false,
  options: {},
  createHandlers: () => ({
    tcp: ({ socket }) => {
      socket.on('data', (chunk: Buffer) => {
        if (chunk.includes('boom')) throw new Error('boom');
        socket.write(chunk);
      });
      socket.on('end', () => socket.end());
    },
    udp: (request) => {
      if (request.toString() === 'boom') throw new Error('boom');
      return request;
    },
  }),
});

/** Like fragile, but throws as soon as it is handed the connection. */
const brokenAtStart = defineProtocol({ ...fragile, name: 'broken', createHandlers: () => ({ tcp: () => { throw new Error('at start'); } }) });

test('a protocol whose TCP handler throws loses that connection (reset), and the server serves the others', async (t) => {
  const { server, port, events, closed } = await startServer(fragile);
  t.after(() => server.close(0));
  const bystander = await connect(port);
  const victim = await connect(port);
  const reset = once(victim, 'error');
  victim.write('boom');
  const [error] = (await reset) as [NodeJS.ErrnoException];
  assert.equal(error.code, 'ECONNRESET');
  const failure = await events.waitFor('protocol-error');
  assert.deepEqual([failure.conn, failure.message], [2, 'boom']);
  const { closedBy, how, reason } = await closed(2);
  assert.deepEqual({ closedBy, how, reason }, { closedBy: 'server', how: 'rst', reason: 'protocol-error' });
  const echoed = readAll(bystander);
  bystander.end('still here\n');
  assert.equal((await echoed).toString(), 'still here\n', 'an open connection is undisturbed');
  assert.equal((await echoRoundTrip(port, Buffer.from('and new ones\n'))).toString(), 'and new ones\n', 'new connections are served');

  const broken = await startServer(brokenAtStart);
  t.after(() => broken.server.close(0));
  const client = net.connect({ host: '127.0.0.1', port: broken.port });
  // The reset may come before connect() even completes; either way the client sees it, then 'close'.
  await new Promise((resolve) => client.on('error', () => {}).on('close', resolve));
  assert.equal((await broken.events.waitFor('protocol-error')).message, 'at start');
  assert.equal((await broken.closed(1)).reason, 'protocol-error');
});

test('a protocol whose UDP handler throws loses that datagram, and answers the next', async (t) => {
  const server = new DatagramServer({ protocol: fragile, ownPorts: new Set() });
  const events = new EventRecorder(server.events.stream);
  const [local] = await server.listen({ host: '127.0.0.1', port: 0 });
  const client = dgram.createSocket('udp4');
  t.after(() => Promise.all([server.close(), new Promise((resolve) => client.close(() => resolve(undefined)))]));
  client.send('boom', local!.port, '127.0.0.1');
  assert.equal((await events.waitFor('protocol-error')).message, 'boom');
  assert.equal((await events.waitFor('udp-dropped')).reason, 'protocol-error');
  client.send('fine', local!.port, '127.0.0.1');
  const [reply] = (await once(client, 'message')) as [Buffer];
  assert.equal(reply.toString(), 'fine');
  assert.deepEqual(server.summary(), { received: 2, answered: 1, dropped: 1 });
});

/** Keeps the connection open after the client's FIN: the passive side never closes by itself. */
const lingering = defineProtocol({ ...fragile, name: 'lingering', createHandlers: () => ({ tcp: ({ socket }) => void socket.resume() }) });

test('lifecycle: peer-closed → closing when the server ends a connection whose client has half-closed', async (t) => {
  const { server, port, events, states, closed } = await startServer(lingering);
  const client = await connect(port);
  client.end();
  await events.waitFor('state', (e) => e.to === 'peer-closed');
  await server.close(0);
  t.after(() => client.destroy());
  // The client still closed first (its FIN); the server's ending is the transition to closing.
  assert.equal((await closed(1)).closedBy, 'client');
  assert.deepEqual(states(1), ['accepted', 'active', 'peer-closed', 'closing', 'closed']);
});

test('lifecycle: accepted → closing when the server shuts down while a connection waits its turn (--iterative)', async (t) => {
  const { server, port, events, states, closed } = await startServer(echo, { iterative: true });
  const first = await connect(port);
  const second = await connect(port);
  t.after(() => [first, second].forEach((socket) => socket.destroy()));
  assert.equal((await events.waitFor('queued')).behind, 1);
  await server.close(0);
  await closed(2);
  assert.deepEqual(states(2), ['accepted', 'closing', 'closed']);
  assert.deepEqual(states(1), ['accepted', 'active', 'closing', 'closed']);
});

test('lifecycle: active → closed when the client resets', async (t) => {
  const { server, port, states, closed } = await startServer(echo);
  t.after(() => server.close(0));
  const client = await connect(port);
  client.resetAndDestroy();
  assert.equal((await closed(1)).how, 'rst');
  assert.deepEqual(states(1), ['accepted', 'active', 'closed']);
});

test("--idle-timeout counts the client's silence: a chargen client that only reads is timed out", async (t) => {
  const { server, port, events, closed } = await startServer(chargen, { idleTimeoutMs: 300 });
  t.after(() => server.close(0));
  const client = await connect(port);
  client.resume(); // reads everything, sends nothing
  const { reason, closedBy } = await closed(1);
  assert.deepEqual({ reason, closedBy }, { reason: 'idle-timeout', closedBy: 'server' });
  assert.equal((await events.waitFor('idle-timeout')).idleTimeoutMs, 300);
  client.destroy();
});

test('shutdown reaches the protocols: chargen ends its stream, so its connections finish before the deadline', async () => {
  const { server, port, closed } = await startServer(chargen);
  const client = await connect(port);
  client.resume();
  client.on('end', () => client.end()); // the server's FIN: close our side too
  const summary = await server.close(10_000);
  assert.equal(summary.forced, 0, 'closed by the protocol, not by the deadline');
  const { closedBy, reason } = await closed(1);
  assert.deepEqual({ closedBy, reason }, { closedBy: 'server', reason: 'protocol' });
});

test('listening without a host: both loopback addresses, same port, and nothing else', async (t) => {
  const server = createServer({ protocol: echo });
  const ends = await server.listen({ port: 0 });
  t.after(() => server.close(0));
  const addresses = ends.map((end) => end.address);
  assert.equal(addresses[0], '127.0.0.1');
  // ::1 is there unless this machine has no IPv6 on loopback.
  assert.ok(addresses.length === 1 || addresses[1] === '::1', addresses.join(', '));
  assert.equal(new Set(ends.map((end) => end.port)).size, 1);
  for (const end of ends) assert.equal((await echoRoundTrip2(end.address, end.port)).toString(), 'hi\n');
});

async function echoRoundTrip2(host: string, port: number): Promise<Buffer> {
  const socket = await connect(port, host);
  const reply = readAll(socket);
  socket.end('hi\n');
  return reply;
}

test('listening on a net.Server that is already listening (a handle from elsewhere)', async (t) => {
  const handle = net.createServer();
  handle.listen(0, '127.0.0.1');
  await once(handle, 'listening');
  const server = createServer({ protocol: echo });
  const events = new EventRecorder(server.events.stream);
  const [local] = await server.listen({ handle });
  t.after(() => server.close(0));
  assert.equal((await events.waitFor('listening')).inherited, true);
  assert.equal((await echoRoundTrip(local!.port, Buffer.from('adopted\n'))).toString(), 'adopted\n');
});


test('listening on an inherited descriptor (fd 3, as systemd passes it), in a child process', { skip: !hasPython3 && 'needs python3 to open the socket and exec node' }, async (t) => {
  const serverModule = new URL('../src/framework/server.js', import.meta.url).href;
  const echoModule = new URL('../src/protocols/echo.js', import.meta.url).href;
  const script = `
    const { createServer } = await import(${JSON.stringify(serverModule)});
    const { echo } = await import(${JSON.stringify(echoModule)});
    const server = createServer({ protocol: echo });
    const [local] = await server.listen({ fd: 3 });
    console.log(JSON.stringify(local));`;
  // As systemd does: socket(), bind(), listen() in the parent, the socket on fd 3, then exec.
  const launcher = `
import os, socket, sys
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
os.dup2(s.fileno(), 3); os.set_inheritable(3, True)
os.execv(sys.argv[1], [sys.argv[1], '--input-type=module', '-e', sys.argv[2]])`;
  const child = spawn('python3', ['-c', launcher, process.execPath, script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill());
  const [line] = (await once(child.stdout!, 'data', { signal: AbortSignal.timeout(10_000) })) as [Buffer];
  const local = JSON.parse(line.toString()) as { address: string; port: number };
  assert.equal(local.address, '127.0.0.1');
  assert.equal((await echoRoundTrip(local.port, Buffer.from('inherited\n'))).toString(), 'inherited\n');
});

test('a descriptor that is not a socket: one clear error (ERR_BAD_DESCRIPTOR), for TCP and UDP', async () => {
  const fd = openSync('/dev/null', 'r');
  try {
    await assert.rejects(createServer({ protocol: echo }).listen({ fd }), { code: 'ERR_BAD_DESCRIPTOR', message: new RegExp(`^descriptor ${fd} is not a listening TCP socket`) });
    await assert.rejects(new DatagramServer({ protocol: echo, ownPorts: new Set() }).listen({ fd }), { code: 'ERR_BAD_DESCRIPTOR', message: new RegExp(`^descriptor ${fd} is not a bound UDP socket`) });
  } finally {
    closeSync(fd);
  }
});

test('an event nobody listens to is not built: wants() is false until someone subscribes to that type', () => {
  const stream = new EventStream();
  assert.equal(stream.wants('message'), false);
  const unsubscribe = stream.on('closed', () => {});
  assert.deepEqual([stream.wants('closed'), stream.wants('message')], [true, false]);
  unsubscribe();
  assert.equal(stream.wants('closed'), false);
});

test('an observer that throws does not stop the other observers, and its error is thrown again from the event loop', () => {
  const stream = new EventStream();
  const seen: string[] = [];
  stream.on('draining', () => {
    throw new Error('observer bug');
  });
  stream.on('draining', (event) => void seen.push(event.type));
  const deferred: (() => void)[] = [];
  const queue = globalThis.queueMicrotask;
  globalThis.queueMicrotask = (callback) => void deferred.push(callback);
  try {
    stream.forService('echo', 'tcp').emit('draining', { open: 1, deadlineMs: 0 });
  } finally {
    globalThis.queueMicrotask = queue;
  }
  assert.deepEqual(seen, ['draining'], 'the next observer still saw the event');
  assert.equal(deferred.length, 1);
  assert.throws(() => deferred[0]!(), /observer bug/, 'the bug is not swallowed');
});

test('--iterative: a waiting client that resets leaves the queue at once, not at its turn', async (t) => {
  const { server, port, events, states, closed } = await startServer(echo, { iterative: true });
  const first = await connect(port);
  const second = await connect(port);
  t.after(async () => {
    first.destroy();
    await server.close(0);
  });
  await events.waitFor('queued');
  second.resetAndDestroy();
  // The first client is still being served: only a check of the queue can notice the reset.
  assert.equal((await closed(2)).how, 'rst');
  assert.deepEqual(states(2), ['accepted', 'closed']);
  assert.equal(server.connections.size, 1);
});
