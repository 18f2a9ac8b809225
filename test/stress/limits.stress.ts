/**
 * Over the limits: with --max-per-source 10 and --max-connections 40, connections beyond either
 * are refused at once (RST), and everyone within the limits keeps being served, including a
 * stream under way while the refusals happen.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forEachLimited } from '../helpers/echo-cases.js';
import { Random, seedFromEnvironment } from '../helpers/random.js';
import { MiB, ms, percentile, report } from './helpers/figures.js';
import { attempt, connectFrom, echoLatency, formatTally, loopbackSource, Pattern, streamPattern, tally, type Attempt } from './helpers/load.js';
import { startEchoServer } from './helpers/server-process.js';

const MAX_PER_SOURCE = 10;
const MAX_CONNECTIONS = 40;
const EXTRAS = 100;
const EXTRAS_AT_ONCE = 10;
const WITNESS_BYTES = 32 * MiB;

/** `count` attempts from `source`, `EXTRAS_AT_ONCE` at a time; the sockets are closed after. */
async function attempts(port: number, source: string, count: number): Promise<Attempt[]> {
  const made: Attempt[] = [];
  await forEachLimited(Array.from({ length: count }), EXTRAS_AT_ONCE, async () => void made.push(await attempt(port, source)));
  for (const { socket } of made) socket.destroy();
  return made;
}

const describeRefusals = (made: Attempt[]): string => {
  const times = made.map((a) => a.ms);
  return `${formatTally(tally(made.map((a) => a.outcome)))}; time to refusal median ${ms(percentile(times, 0.5))}, p95 ${ms(percentile(times, 0.95))}, max ${ms(Math.max(...times))}`;
};

test('over the per-source and global limits: extras refused at once, everyone else unaffected', { timeout: 240_000 }, async (t) => {
  const seed = seedFromEnvironment('STRESS_SEED');
  const server = await startEchoServer(['--max-per-source', String(MAX_PER_SOURCE), '--max-connections', String(MAX_CONNECTIONS)]);
  t.after(() => server.alive() && server.child.kill('SIGKILL'));

  // A stream that runs through all that follows, from its own address, and stays open until the end.
  let refusalsDone = (): void => {};
  const endWhen = new Promise<void>((resolve) => (refusalsDone = resolve));
  const witnessSocket = await connectFrom(server.port, loopbackSource(14, 100));
  const witness = streamPattern(witnessSocket, new Pattern(new Random(seed)), WITNESS_BYTES, { chunkSize: 16 * 1024, endWhen });
  // One source uses its whole share.
  const crowd = await Promise.all(Array.from({ length: MAX_PER_SOURCE }, () => attempt(server.port, loopbackSource(14, 0))));
  assert.ok(crowd.every((a) => a.outcome === 'served'), 'the first 10 from one address are served');

  const perSourceExtras = await attempts(server.port, loopbackSource(14, 0), EXTRAS);
  const neighbour = await attempt(server.port, loopbackSource(14, 1));

  // Fill the server: 40 in all, counting the crowd, the witness and the neighbour.
  const fill: Attempt[] = [neighbour];
  for (let source = 2; fill.length < MAX_CONNECTIONS - MAX_PER_SOURCE - 1; source++) {
    const room = Math.min(MAX_PER_SOURCE, MAX_CONNECTIONS - MAX_PER_SOURCE - 1 - fill.length);
    fill.push(...(await Promise.all(Array.from({ length: room }, () => attempt(server.port, loopbackSource(14, source))))));
  }
  const globalExtras = await attempts(server.port, loopbackSource(14, 50), EXTRAS);

  // Everyone admitted is still served, and quickly.
  const admitted = [...crowd, ...fill];
  const latencies = await Promise.all(admitted.map((a) => echoLatency(a.socket)));
  refusalsDone();
  const streamed = await witness;
  // A freed slot is usable again.
  for (const { socket } of admitted) socket.destroy();
  const afterwards = await attempt(server.port, loopbackSource(14, 50));
  afterwards.socket.destroy();
  const refusalLogs = server.lines.filter((line) => line.event === 'refused');

  report(t, 'limits', [
    ['limits', `--max-per-source ${MAX_PER_SOURCE} --max-connections ${MAX_CONNECTIONS}`],
    [`${EXTRAS} extras from a full source`, describeRefusals(perSourceExtras)],
    ['another source meanwhile', neighbour.outcome],
    [`${EXTRAS} extras from a new source, server full`, describeRefusals(globalExtras)],
    [`echo latency of the ${admitted.length} admitted, after (median / max)`, `${ms(percentile(latencies, 0.5))} / ${ms(Math.max(...latencies))}`],
    ['witness stream through it all', `${streamed.received} of ${WITNESS_BYTES} bytes, intact ${streamed.intact}`],
    ['refusals logged (rate-limited)', `${refusalLogs.length} lines for ${2 * EXTRAS} refusals`],
    ['after the crowd left, a newcomer is', afterwards.outcome],
  ]);
  assert.ok(perSourceExtras.every((a) => a.outcome === 'reset'), 'every extra from the full source was reset');
  assert.ok(globalExtras.every((a) => a.outcome === 'reset'), 'every extra beyond the global limit was reset');
  assert.equal(neighbour.outcome, 'served', 'another source is unaffected by the per-source limit');
  assert.equal(fill.filter((a) => a.outcome === 'served').length, fill.length, 'everyone within the limits was served');
  assert.ok(streamed.intact && streamed.received === WITNESS_BYTES, 'the witness stream is intact');
  assert.ok(refusalLogs.length < 2 * EXTRAS, 'refusal logging is rate-limited');
  assert.equal(afterwards.outcome, 'served');
  const stopped = await server.stop('SIGTERM');
  assert.equal(stopped.code, 0, stopped.stderr);
});
