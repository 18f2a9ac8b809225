/**
 * 1,000 clients reset their connections mid-stream (RST, as a crashed or impatient client
 * does) while 10 witnesses stream 8 MiB each. The resets are contained per connection: the
 * server does not crash, the witnesses lose nothing, and every descriptor comes back.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { forEachLimited } from '../helpers/echo-cases.js';
import { Random, seedFromEnvironment } from '../helpers/random.js';
import { mib, MiB, ms, report } from './helpers/figures.js';
import { attempt, connectFrom, formatTally, loopbackSource, Pattern, streamPattern, tally } from './helpers/load.js';
import { fdsBackTo, sampleMemory, startEchoServer } from './helpers/server-process.js';

const RESETTERS = 1000;
const RESETTING_AT_ONCE = 50;
const WITNESSES = 10;
const WITNESS_BYTES = 8 * MiB;

/** Connects, sends random data for a random while (reading or not), then resets the connection. */
async function resetMidStream(port: number, localAddress: string, random: Random): Promise<string> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  socket.on('error', () => {});
  const connected = await Promise.race([once(socket, 'connect').then(() => true), once(socket, 'close').then(() => false)]);
  if (!connected) return 'connect failed';
  if (random.chance(0.5)) socket.resume();
  else socket.pause();
  const bytes = random.logInt(0, 256 * 1024);
  for (let sent = 0; sent < bytes && !socket.destroyed; ) {
    const size = Math.min(bytes - sent, random.logInt(1, 32 * 1024));
    socket.write(random.bytes(size));
    sent += size;
    if (random.chance(0.3)) await sleep(random.int(0, 3));
  }
  if (random.chance(0.5)) await sleep(random.int(0, 10));
  if (socket.destroyed) return 'closed early';
  socket.resetAndDestroy();
  return 'reset';
}

test(`${RESETTERS} clients resetting mid-stream beside ${WITNESSES} witnesses: no crash, witnesses intact, descriptors back`, { timeout: 240_000 }, async (t) => {
  const seed = seedFromEnvironment('STRESS_SEED');
  const random = new Random(seed);
  const pattern = new Pattern(random);
  const server = await startEchoServer([]);
  t.after(() => server.alive() && server.child.kill('SIGKILL'));
  // One round trip first, so that the baseline includes whatever the first connection sets up.
  const startFds = server.stats().fds;
  (await attempt(server.port, loopbackSource(13, 0))).socket.destroy();
  const baselineFds = await fdsBackTo(server, startFds);
  const memory = sampleMemory(server);
  let peakFds = baselineFds;
  const fdSampler = setInterval(() => server.alive() && (peakFds = Math.max(peakFds, server.stats().fds)), 100);

  const started = performance.now();
  const witnesses = Promise.all(
    Array.from({ length: WITNESSES }, async (_, i) => streamPattern(await connectFrom(server.port, loopbackSource(13, 1 + i)), pattern, WITNESS_BYTES)),
  );
  const outcomes: string[] = [];
  await forEachLimited(
    Array.from({ length: RESETTERS }, () => random.fork()),
    RESETTING_AT_ONCE,
    async (resetterRandom, i) => void outcomes.push(await resetMidStream(server.port, loopbackSource(13, 20 + (i % 200)), resetterRandom)),
  );
  const results = await witnesses;
  const elapsed = performance.now() - started;
  clearInterval(fdSampler);
  const fdsAfter = await fdsBackTo(server, baselineFds);
  const peakRss = memory.stop();
  const probe = await attempt(server.port, loopbackSource(13, 250));
  probe.socket.destroy();

  report(t, 'resets', [
    ['seed (STRESS_SEED)', seed],
    ['resetting clients', formatTally(tally(outcomes))],
    ['witnesses intact', `${results.filter((r) => r.intact && r.received === WITNESS_BYTES).length} of ${WITNESSES} (${mib(WITNESS_BYTES)} each)`],
    ['all done in', ms(elapsed)],
    ['server fds before / peak / after', `${baselineFds} / ${peakFds} / ${fdsAfter}`],
    ['server RSS peak', mib(peakRss)],
    ['server alive, probe answered', `${server.alive()}, ${probe.outcome}`],
  ]);
  assert.ok(server.alive(), 'the server did not crash');
  for (const [i, result] of results.entries()) {
    assert.ok(result.intact, `witness ${i}: every byte as sent`);
    assert.equal(result.received, WITNESS_BYTES, `witness ${i}: every byte back`);
  }
  assert.ok(fdsAfter <= baselineFds, `descriptors back to baseline: ${fdsAfter} vs ${baselineFds}`);
  assert.equal(probe.outcome, 'served');
  const stopped = await server.stop('SIGTERM');
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.doesNotMatch(stopped.stderr, /\n\s+at /, 'no stack trace');
});
