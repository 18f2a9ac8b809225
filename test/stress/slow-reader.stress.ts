/**
 * A client offers 1 GiB and never reads. Backpressure must hold the line: once the kernel's
 * buffers on both sides are full, echo stops reading (socket.pause) and the client's writes stop
 * being accepted. The server's memory stays flat. Then the client reads, and every byte is there.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Random, seedFromEnvironment } from '../helpers/random.js';
import { GiB, mib, MiB, ms, report } from './helpers/figures.js';
import { checkEchoes, connectFrom, drained, loopbackSource, Pattern, streamPattern } from './helpers/load.js';
import { sampleMemory, startEchoServer } from './helpers/server-process.js';

const TOTAL = GiB;
const CHUNK = 64 * 1024;
/** The stall is declared once nothing more is accepted for this long. */
const STALL_PATIENCE_MS = 3000;
/** However the kernel behaves, the never-reading phase ends by then. */
const STALL_PHASE_LIMIT_MS = 30_000;
const MEMORY_TARGET = 64 * MiB;

test('1 GiB offered by a client that does not read: the server\'s memory stays flat; then every byte comes back', { timeout: 240_000 }, async (t) => {
  const seed = seedFromEnvironment('STRESS_SEED');
  const pattern = new Pattern(new Random(seed));
  const server = await startEchoServer([]);
  t.after(() => server.alive() && server.child.kill('SIGKILL'));

  // No warm-up stream before the baseline: its garbage would be collected (or not) during the stall
  // and blur the figure, which is meant to be the stall's alone.
  const baseline = server.stats().rssBytes;
  const memory = sampleMemory(server);

  // Phase 1: write, never read.
  const socket = await connectFrom(server.port, loopbackSource(11, 1));
  socket.pause();
  const result = checkEchoes(socket, pattern);
  const phaseStarted = performance.now();
  let lastProgress = phaseStarted;
  while (result.sent < TOTAL && performance.now() - phaseStarted < STALL_PHASE_LIMIT_MS) {
    const accepted = socket.write(pattern.slice(result.sent, CHUNK));
    result.sent += CHUNK;
    if (accepted) continue;
    const patience = Math.max(0, lastProgress + STALL_PATIENCE_MS - performance.now());
    const progressed = await Promise.race([drained(socket), new Promise<false>((resolve) => setTimeout(resolve, patience, false))]);
    if (!progressed) break;
    lastProgress = performance.now();
  }
  const stalledMs = performance.now() - phaseStarted;
  const offered = result.sent;
  // What left this process: written, minus what still waits in the client's own stream buffer.
  const inFlight = socket.bytesWritten - socket.writableLength;
  const stallPeak = memory.peakBytes();
  const stalled = offered < TOTAL;

  // Phase 2: read everything back, and send the rest of the 1 GiB at full speed.
  const fullSpeed = performance.now();
  socket.resume();
  await streamPattern(socket, pattern, TOTAL, { chunkSize: CHUNK, result });
  const fullSpeedMs = performance.now() - fullSpeed;
  const overallPeak = memory.stop();

  report(t, 'slow-reader', [
    ['seed (STRESS_SEED)', seed],
    ['offered while not reading', `${mib(offered)} in ${ms(stalledMs)}${stalled ? ', then the writes stalled' : ''}`],
    ['accepted by the kernels (in flight)', mib(inFlight)],
    ['server RSS before', mib(baseline)],
    ['server RSS peak while stalled (growth)', `${mib(stallPeak)} (+${mib(stallPeak - baseline)})`],
    ['then 1 GiB echoed at full speed in', ms(fullSpeedMs)],
    ['server RSS peak at full speed (growth)', `${mib(overallPeak)} (+${mib(overallPeak - baseline)})`],
    ['bytes sent / received / intact', `${result.sent} / ${result.received} / ${result.intact}`],
  ]);
  assert.ok(stalled, 'the writes stalled: backpressure reached the client');
  assert.ok(stallPeak - baseline < MEMORY_TARGET, `server RSS grew ${mib(stallPeak - baseline)} while stalled (target < ${mib(MEMORY_TARGET)})`);
  assert.equal(result.received, TOTAL, 'every byte came back');
  assert.ok(result.intact, 'in order and unchanged');
  const stopped = await server.stop('SIGTERM');
  assert.equal(stopped.code, 0, stopped.stderr);
});
