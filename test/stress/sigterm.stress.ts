/**
 * SIGTERM under load: the server closes its listening socket at once (a new connect is refused),
 * lets the streams under way run until the shutdown deadline, closes what is left, and exits 0.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Random, seedFromEnvironment } from '../helpers/random.js';
import { GiB, mib, ms, report } from './helpers/figures.js';
import { attempt, connectFrom, loopbackSource, Pattern, streamPattern, type Attempt } from './helpers/load.js';
import { startEchoServer } from './helpers/server-process.js';

const SHUTDOWN_SECONDS = 3;
const STREAMS = 20;
/** More than can be sent before the deadline: the streams are still busy when it comes. */
const STREAM_BYTES = 64 * GiB;
const LOAD_BEFORE_SIGNAL_MS = 1000;
/** Exit expected by the deadline; allowed this much more for a loaded machine. */
const EXIT_MARGIN_MS = 3000;

test('SIGTERM under load: stops accepting at once, exits 0 within the shutdown deadline', { timeout: 240_000 }, async (t) => {
  const seed = seedFromEnvironment('STRESS_SEED');
  const pattern = new Pattern(new Random(seed));
  const server = await startEchoServer(['--shutdown-timeout', String(SHUTDOWN_SECONDS)]);
  t.after(() => server.alive() && server.child.kill('SIGKILL'));
  const exited = once(server.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;

  const streams = await Promise.all(Array.from({ length: STREAMS }, (_, i) => connectFrom(server.port, loopbackSource(16, i))));
  const results = Promise.all(streams.map((socket) => streamPattern(socket, pattern, STREAM_BYTES)));
  await sleep(LOAD_BEFORE_SIGNAL_MS);

  const signalled = performance.now();
  server.child.kill('SIGTERM');
  // Knock until the door is shut: connections accepted before the signal was handled are drained like the others.
  const knocks: Attempt[] = [];
  for (let i = 0; i < 200; i++) {
    const knock = await attempt(server.port, loopbackSource(16, 100), 1000);
    knock.socket.destroy();
    knocks.push(knock);
    if (knock.outcome === 'connection-refused') break;
  }
  const shutAfterMs = performance.now() - signalled;
  await server.event('shutdown');
  const afterShutdownLine = await attempt(server.port, loopbackSource(16, 101), 1000);
  afterShutdownLine.socket.destroy();
  const [code, signal] = await exited;
  const exitMs = performance.now() - signalled;
  const streamed = await results;
  const summary = await server.event('summary');

  report(t, 'sigterm', [
    ['load', `${STREAMS} echo streams, ${ms(LOAD_BEFORE_SIGNAL_MS)} before the signal`],
    ['new connections refused after', `${ms(shutAfterMs)} (${knocks.length - 1} accepted before the signal was handled)`],
    ["connect after the 'shutdown' log line", afterShutdownLine.outcome],
    ['exit status / time after SIGTERM', `${code ?? signal} / ${ms(exitMs)} (deadline ${SHUTDOWN_SECONDS} s)`],
    ['connections closed at the deadline', String(summary.forced)],
    ['bytes echoed to the streams, all intact', `${mib(streamed.reduce((sum, r) => sum + r.received, 0))}, ${streamed.every((r) => r.intact)}`],
  ]);
  assert.equal(afterShutdownLine.outcome, 'connection-refused', 'no longer accepting once shutting down');
  assert.equal(knocks.at(-1)?.outcome, 'connection-refused', 'the listening socket was closed');
  assert.equal(code, 0, `exit status 0 (signal ${signal})`);
  assert.ok(exitMs < SHUTDOWN_SECONDS * 1000 + EXIT_MARGIN_MS, `exited ${ms(exitMs)} after SIGTERM`);
  assert.ok(streamed.every((r) => r.intact), 'what the streams received was intact');
});
