/**
 * 100 echo sessions at once, each with its own random bytes, random chunking, random pauses and
 * a random half-close point. Every byte must come back to its own client, in order.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { firstDifference, playEchoCase, randomEchoCase } from '../helpers/echo-cases.js';
import { Random, seedFromEnvironment } from '../helpers/random.js';
import { mib, MiB, ms, report } from './helpers/figures.js';
import { loopbackSource } from './helpers/load.js';
import { startEchoServer } from './helpers/server-process.js';

const STREAMS = 100;
const MAX_STREAM_BYTES = 8 * MiB;

test(`${STREAMS} parallel streams with random chunking and half-close: every byte intact, in order`, { timeout: 240_000 }, async (t) => {
  const seed = seedFromEnvironment('STRESS_SEED');
  const random = new Random(seed);
  const server = await startEchoServer([]);
  t.after(() => server.alive() && server.child.kill('SIGKILL'));
  const before = server.stats();

  const sessions = Array.from({ length: STREAMS }, (_, i) => {
    const sessionRandom = random.fork();
    return { i, random: sessionRandom, echoCase: randomEchoCase(sessionRandom, MAX_STREAM_BYTES) };
  });
  const started = performance.now();
  const failures: string[] = [];
  await Promise.all(
    sessions.map(async ({ i, random: sessionRandom, echoCase }) => {
      // Two sessions per source address: under the default per-source limit.
      const reply = await playEchoCase(server.port, echoCase, sessionRandom, loopbackSource(12, Math.floor(i / 2)));
      if (!reply.equals(echoCase.data)) {
        failures.push(`stream ${i}: sent ${echoCase.data.length}, got ${reply.length}, first difference at ${firstDifference(reply, echoCase.data)}`);
      }
    }),
  );
  const elapsed = performance.now() - started;
  const bytes = sessions.reduce((sum, s) => sum + s.echoCase.data.length, 0);
  const chunks = sessions.reduce((sum, s) => sum + s.echoCase.chunks.length, 0);
  const halfCloses = sessions.map((s) => s.echoCase.halfClose).reduce<Record<string, number>>((counts, point) => ({ ...counts, [point]: (counts[point] ?? 0) + 1 }), {});

  report(t, 'parallel-streams', [
    ['seed (STRESS_SEED)', seed],
    ['streams / bytes / chunks written', `${STREAMS} / ${mib(bytes)} / ${chunks}`],
    ['half-close points', Object.entries(halfCloses).map(([point, count]) => `${point} ${count}`).join(', ')],
    ['all echoed in', ms(elapsed)],
    ['streams intact', `${STREAMS - failures.length} of ${STREAMS}`],
    ['server RSS before / after', `${mib(before.rssBytes)} / ${mib(server.stats().rssBytes)}`],
  ]);
  assert.deepEqual(failures, [], `STRESS_SEED=${seed}`);
  const stopped = await server.stop('SIGTERM');
  assert.equal(stopped.code, 0, stopped.stderr);
});
