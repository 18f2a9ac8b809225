/**
 * Slowloris with the default limits: 17 addresses open 64 connections each and send nothing,
 * more than --max-connections (1024) holds, and under the per-source limit (256). A newcomer must
 * still get in: once the silent connections have stalled --evict-stalled-after (10 s), the server
 * resets the one stalled longest to make room. Before, everyone else was locked out for as long as
 * the silent connections stayed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { forEachLimited } from '../helpers/echo-cases.js';
import { ms, report } from './helpers/figures.js';
import { attempt, connectFrom, formatTally, loopbackSource, tally } from './helpers/load.js';
import { openFileLimits, startEchoServer } from './helpers/server-process.js';
import type net from 'node:net';

const ADDRESSES = 17;
const PER_ADDRESS = 64;
/** The default --evict-stalled-after is 10 s; a newcomer should be in soon after. Bounded at this. */
const KNOCK_FOR_MS = 40_000;
const KNOCK_EVERY_MS = 500;

test('17 addresses × 64 silent connections: a newcomer still gets in, within seconds', { timeout: 240_000 }, async (t) => {
  const needed = ADDRESSES * PER_ADDRESS + 100;
  if (openFileLimits().soft < needed) return t.skip(`needs ulimit -n ${needed} (npm run test:stress raises it)`);
  const server = await startEchoServer([]);
  t.after(() => server.alive() && server.child.kill('SIGKILL'));

  const silent: net.Socket[] = [];
  const opened: string[] = [];
  const started = performance.now();
  await forEachLimited(Array.from({ length: ADDRESSES * PER_ADDRESS }, (_, i) => i), 50, async (i) => {
    try {
      const socket = await connectFrom(server.port, loopbackSource(60, i % ADDRESSES));
      socket.on('error', () => {}); // the server resets some: the extras, and those it evicts
      silent.push(socket);
      opened.push('connected');
    } catch {
      opened.push('failed');
    }
  });
  t.after(() => silent.forEach((socket) => socket.destroy()));
  const filledMs = performance.now() - started;

  let outcome = 'none';
  let knocks = 0;
  const knockStart = performance.now();
  while (outcome !== 'served' && performance.now() - knockStart < KNOCK_FOR_MS) {
    knocks += 1;
    const knock = await attempt(server.port, loopbackSource(61, 0), 2000);
    knock.socket.destroy();
    outcome = knock.outcome;
    if (outcome !== 'served') await sleep(KNOCK_EVERY_MS);
  }
  const inAfterMs = performance.now() - started;
  const evicted = server.lines.filter((line) => line.event === 'evicted');

  report(t, 'slowloris', [
    ['silent connections (those over 1024 reset at once)', `${ADDRESSES} addresses × ${PER_ADDRESS} (${formatTally(tally(opened))}) in ${ms(filledMs)}`],
    ['a newcomer from another address', `${outcome} after ${ms(inAfterMs)} (knock ${knocks}, every ${KNOCK_EVERY_MS} ms)`],
    ['evicted lines logged', `${evicted.length}, stalled ${evicted[0]?.stalledMs} ms`],
  ]);
  assert.equal(outcome, 'served', 'the newcomer got in');
  assert.ok(server.alive());
});
