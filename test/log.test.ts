/**
 * The log observer: events in, pino lines out, with its sampling and budgets. Time comes from the
 * events' own timestamps, so these tests set the clock instead of waiting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { pino } from 'pino';
import type { Endpoint } from '../src/framework/endpoint.js';
import { EventStream, type Clock } from '../src/framework/events.js';
import { LINES_REPORTED_PER_CONNECTION } from '../src/framework/messages.js';
import { LogObserver, type LogObserverOptions } from '../src/observers/log.js';
import { echo } from '../src/protocols/echo.js';
import { captureLog } from './helpers/capture-log.js';
import { echoRoundTrip, startServer } from './helpers/servers.js';

/** A stream on a clock the test sets, a log observer on it, and the lines it writes. */
function observe(options: LogObserverOptions = {}, level: pino.LevelWithSilent = 'info') {
  let nowMs = 0;
  const clock: Clock = { monotonicMs: () => nowMs, timeOrigin: 1_800_000_000_000 };
  const stream = new EventStream(clock);
  const log = captureLog(level);
  const observer = new LogObserver(stream, log.logger, options);
  return {
    stream,
    lines: log.lines,
    observer,
    tcp: stream.forService('echo', 'tcp'),
    udp: stream.forService('echo', 'udp'),
    at: (ms: number) => (nowMs = ms),
    of: (event: string) => log.events(event),
  };
}

const local: Endpoint = { address: '127.0.0.1', port: 5000 };
const client = (port: number): Endpoint => ({ address: '127.0.0.1', port });
const connection = (conn: number) => ({ conn, local, remote: client(40000 + conn) });
const closedFields = { closedBy: 'client' as const, how: 'fin' as const, bytesIn: 3, bytesOut: 3, durationMs: 1 };

test('the same lines as always: event names, fields and sentences, with the connection number on each', () => {
  const { tcp, lines } = observe();
  tcp.emit('listening', { local, inherited: false, rfc: 862 });
  tcp.emit('accepted', connection(1));
  tcp.emit('message', { ...connection(1), line: 1, text: 'hi', length: 2, truncated: false });
  tcp.emit('sent', { ...connection(1), text: 'Sun Nov  1 09:05:03 2026', bytes: 25 });
  tcp.emit('closed', { ...connection(1), ...closedFields });
  tcp.emit('kernel-state', { ...connection(1), closedBy: 'client', how: 'fin', state: null, remainingMs: null, explanation: 'nothing left' });
  const pair = '{127.0.0.1:5000, 127.0.0.1:40001}';
  assert.deepEqual(
    lines.map(({ level, event, msg, conn }) => ({ level, event, msg, conn })),
    [
      { level: 30, event: 'listening', conn: undefined, msg: 'echo (RFC 862) listening on 127.0.0.1:5000 (loopback: only this machine can connect; --host :: serves other machines too)' },
      { level: 30, event: 'accepted', conn: 1, msg: `accepted connection #1 ${pair}` },
      { level: 30, event: 'message', conn: 1, msg: '#1 message: hi' },
      { level: 30, event: 'sent', conn: 1, msg: '#1 sent: Sun Nov  1 09:05:03 2026' },
      { level: 30, event: 'closed', conn: 1, msg: 'closed connection #1: client closed first with FIN; 3 bytes in, 3 out, 1 ms' },
      { level: 30, event: 'kernel-state', conn: 1, msg: `kernel state of connection #1 ${pair}: nothing left` },
    ],
  );
  assert.deepEqual(lines[1], { level: 30, time: lines[1]!.time, conn: 1, event: 'accepted', local: '127.0.0.1:5000', remote: '127.0.0.1:40001', pair, msg: lines[1]!.msg });
  assert.deepEqual(lines[0]!.socket, '127.0.0.1:5000');
  const { closedBy, how, bytesIn, bytesOut, durationMs } = lines[4]!;
  assert.deepEqual({ pair: lines[4]!.pair, closedBy, how, bytesIn, bytesOut, durationMs }, { pair, ...closedFields });
});

test('connections are sampled whole at accept: a burst of twice the rate, then the rate; the next logged one counts the rest', () => {
  const { tcp, at, of, observer } = observe({ connectionsPerSecond: 5 });
  for (let id = 1; id <= 30; id++) tcp.emit('accepted', connection(id));
  for (let id = 1; id <= 30; id++) tcp.emit('closed', { ...connection(id), ...closedFields });
  assert.deepEqual(of('accepted').map((line) => line.conn), Array.from({ length: 10 }, (_, i) => i + 1));
  assert.deepEqual(of('closed').map((line) => line.conn), of('accepted').map((line) => line.conn), 'a connection is logged whole or not at all');
  assert.equal(observer.isLogged(5), true);
  assert.equal(observer.isLogged(25), false, 'so observers that follow the log (kernel states) skip it too');
  at(1000); // five more tokens
  tcp.emit('accepted', connection(31));
  const last = of('accepted').at(-1)!;
  assert.deepEqual([last.conn, last.unlogged], [31, 20]);
  assert.match(last.msg, /\(20 connections before it were served but not logged: over 5 a second\)$/);
});

test('--connection-logs 0 logs every connection', () => {
  const { tcp, of } = observe({ connectionsPerSecond: 0 });
  for (let id = 1; id <= 500; id++) tcp.emit('accepted', connection(id));
  assert.equal(of('accepted').length, 500);
});

test('refusals, accept errors, protocol errors and UDP drops: 20 at once, then 5 a second, and the next line says how many were held back', () => {
  const { tcp, udp, at, of } = observe();
  for (let i = 0; i < 40; i++) tcp.emit('refused', { local, remote: client(50000 + i), reason: 'max-per-source', limit: 8 });
  for (let i = 0; i < 30; i++) udp.emit('udp-dropped', { local, remote: client(60000), reason: 'over-budget', bytesIn: 4 });
  assert.equal(of('refused').length, 20);
  assert.equal(of('udp-dropped').length, 20);
  assert.match(of('refused')[0]!.msg, /^refused \{127\.0\.0\.1:5000, 127\.0\.0\.1:50000\}: this address already has 8 connections \(--max-per-source\)$/);
  assert.match(of('udp-dropped')[0]!.msg, /--udp-burst/, 'a drop says which flag to raise');
  at(200); // one token at 5 a second
  tcp.emit('refused', { local, remote: client(50100), reason: 'denied' });
  const last = of('refused').at(-1)!;
  assert.equal(last.skipped, 20);
  assert.match(last.msg, /\(20 earlier refusals not logged\)$/);
});

test(`an echo connection logs its first ${LINES_REPORTED_PER_CONNECTION} lines, and the last of them says so`, async (t) => {
  const { stream, of } = observe({}, 'info');
  const { server, port, closed } = await startServer(echo, { events: stream });
  t.after(() => server.close(0));
  const input = Buffer.from(Array.from({ length: 50 }, (_, i) => `line ${i}\n`).join(''));
  assert.ok((await echoRoundTrip(port, input)).equals(input));
  await closed(1);
  const messages = of('message');
  assert.equal(messages.length, LINES_REPORTED_PER_CONNECTION);
  assert.match(messages.at(-1)!.msg, new RegExp(`^#1 message: line ${LINES_REPORTED_PER_CONNECTION - 1} \\(the first ${LINES_REPORTED_PER_CONNECTION} lines of a connection are logged; later ones are not\\)$`));
});

test('a level that hides an event type does not even subscribe to it', () => {
  const info = observe({}, 'info');
  assert.deepEqual([info.stream.wants('state'), info.stream.wants('accepted')], [false, true]);
  const warn = observe({}, 'warn');
  assert.deepEqual([warn.stream.wants('accepted'), warn.stream.wants('message'), warn.stream.wants('refused')], [false, false, true]);
  const debug = observe({}, 'debug');
  assert.equal(debug.stream.wants('state'), true);
});

test('several services share one log: each line names its service', () => {
  const { stream, lines } = observe({ tagServices: true });
  stream.forService('daytime', 'tcp').emit('listening', { local, inherited: false, rfc: 867 });
  stream.forService('echo', 'udp').emit('listening', { local, inherited: false, rfc: 862 });
  assert.deepEqual(lines.map((line) => [line.service, line.socket]), [['daytime', '127.0.0.1:5000'], ['echo', '127.0.0.1:5000/udp']]);
});
