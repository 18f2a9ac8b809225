/**
 * Out of file descriptors: the server runs under `ulimit -n 64` and 200 clients arrive at once.
 * accept(2) fails with EMFILE; libuv then closes the waiting connections (it keeps a spare
 * descriptor for exactly this), the server logs the failures at a limited rate, and keeps
 * serving the clients it holds. When they leave, it serves newcomers again, by itself.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ms, report } from './helpers/figures.js';
import { attempt, formatTally, loopbackSource, tally, type Attempt } from './helpers/load.js';
import { fdsBackTo, startEchoServer } from './helpers/server-process.js';

const OPEN_FILES = 64;
const CLIENTS = 200;
const NEWCOMERS = 20;

test(`ulimit -n ${OPEN_FILES} and ${CLIENTS} clients: alive, excess turned away, serving again after they leave`, { timeout: 240_000 }, async (t) => {
  // --max-per-source high enough that only the descriptor limit turns anyone away.
  const server = await startEchoServer(['--max-per-source', '1000'], { openFiles: OPEN_FILES });
  t.after(() => server.alive() && server.child.kill('SIGKILL'));
  const baseline = server.stats().fds;

  const started = performance.now();
  const crowd = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => attempt(server.port, loopbackSource(15, i % 50), 5000)));
  const crowdMs = performance.now() - started;
  const peakFds = server.stats().fds;
  const aliveUnderLoad = server.alive();
  const acceptErrors = server.lines.filter((line) => line.event === 'accept-error');
  const refusals = server.lines.filter((line) => line.event === 'refused');
  const lowered = server.lines.find((line) => line.event === 'limit-lowered');
  // The clients leave; the server must notice and free their descriptors.
  for (const { socket } of crowd) socket.destroy();
  const fdsAfter = await fdsBackTo(server, baseline);

  const newcomers: Attempt[] = [];
  for (let i = 0; i < NEWCOMERS; i++) newcomers.push(await attempt(server.port, loopbackSource(15, 100 + i)));
  for (const { socket } of newcomers) socket.destroy();

  report(t, 'fd-exhaustion', [
    ['server ulimit -n', OPEN_FILES],
    ['server fds at start / at peak / after the crowd left', `${baseline} / ${peakFds} / ${fdsAfter}`],
    [`${CLIENTS} clients at once`, `${formatTally(tally(crowd.map((a) => a.outcome)))} (in ${ms(crowdMs)})`],
    ['--max-connections lowered to fit ulimit -n', lowered === undefined ? 'no' : `to ${String(lowered.maxConnections)}`],
    ['refusals logged (rate-limited), with their reason', `${refusals.length} lines, reasons ${[...new Set(refusals.map((line) => line.reason))].join(', ') || 'none'}`],
    ['accept errors logged (rate-limited)', `${acceptErrors.length} lines, codes ${[...new Set(acceptErrors.map((line) => line.code))].join(', ') || 'none'}`],
    ['server alive under the crowd', aliveUnderLoad],
    [`then ${NEWCOMERS} newcomers, one by one`, formatTally(tally(newcomers.map((a) => a.outcome)))],
  ]);
  assert.ok(aliveUnderLoad && server.alive(), 'the server stayed alive');
  assert.ok(crowd.some((a) => a.outcome === 'served'), 'some of the crowd was served');
  assert.ok(crowd.every((a) => a.outcome !== 'no-answer'), 'nobody was left hanging: each was served or turned away');
  // When accept(2) fails with EMFILE, libuv closes the waiting connections itself and reports
  // nothing (see docs/reliability.md), so the server keeps its connection limit below the
  // descriptor limit: the crowd is refused by that limit, with a logged reason.
  assert.ok(lowered !== undefined, 'the server lowered --max-connections to fit its descriptors, and said so');
  assert.ok(refusals.length > 0 && refusals.every((line) => line.reason === 'max-connections'), 'the turned-away clients were refused by the limit, and logged');
  assert.ok(acceptErrors.length < CLIENTS, 'accept errors, if any, are logged at a limited rate');
  assert.ok(fdsAfter <= baseline, `descriptors back to baseline: ${fdsAfter} vs ${baseline}`);
  assert.ok(newcomers.every((a) => a.outcome === 'served'), 'newcomers are served again');
  const stopped = await server.stop('SIGTERM');
  assert.equal(stopped.code, 0, stopped.stderr);
});
