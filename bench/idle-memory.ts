/**
 * Idle memory, two rows:
 * - idle-rss: a started server serving nobody, its resident memory (what loading the program cost);
 * - idle-memory: memory per connection with 10,000 held open (server RSS before and after).
 *
 * A class of 200 that leaves telnet sessions open, or a scanner, holds many idle connections;
 * each costs the server its socket object, buffers, and whatever lab-server adds on top
 * (a Connection, a child logger, the echo handler's closures and line buffer).
 *
 * Each client says one line and waits for its echo, so we know the server has accepted and is
 * serving it; then all 10,000 sit silent while we read the server's RSS.
 * Kernel socket buffers are not in RSS: this is the process's own memory.
 */
import { once } from 'node:events';
import { connectMany } from './load-tools.js';
import { rssBytes } from './proc-stats.js';
import type { LoadContext, Measurement, Scenario } from './scenario.js';
import { sleep } from './stats.js';

export const IDLE_CONNECTIONS = 10_000;
/** Concurrent handshakes: below the server's listen backlog of 511. */
const PARALLEL_CONNECTS = 200;
const TIME_LIMIT_MS = 60_000;
/** Time for the server to finish its work (logging, garbage collection) before a reading. */
const SETTLE_MS = 1000;

/** The server's RSS once it has finished its startup work (and a first garbage collection). */
async function settledRss(serverPid: number): Promise<number> {
  await sleep(SETTLE_MS);
  return rssBytes(serverPid);
}

async function idleMemory(ctx: LoadContext): Promise<Measurement> {
  const deadline = performance.now() + TIME_LIMIT_MS;
  const before = await settledRss(ctx.serverPid);
  const sockets = await connectMany(ctx.port, IDLE_CONNECTIONS, PARALLEL_CONNECTS, deadline);
  if (sockets.length < IDLE_CONNECTIONS) throw new Error(`only ${sockets.length} of ${IDLE_CONNECTIONS} connections opened in time`);
  await Promise.all(
    sockets.map(async (socket) => {
      const echoed = once(socket, 'data');
      socket.write('hello\n');
      await echoed;
    }),
  );
  const after = await settledRss(ctx.serverPid);
  for (const socket of sockets) socket.destroy();
  return {
    value: (after - before) / IDLE_CONNECTIONS / 1024,
    details: { rssBeforeMB: before / 1e6, rssAfterMB: after / 1e6 },
  };
}

export const idleConnections: Scenario = {
  name: 'idle-memory',
  summary: `echo, ${IDLE_CONNECTIONS.toLocaleString('en')} idle connections held: server RSS growth per connection`,
  protocol: 'echo',
  labServerFlags: ['--max-connections', String(IDLE_CONNECTIONS + 100), '--max-per-source', String(IDLE_CONNECTIONS + 100)],
  metric: { name: 'memory per connection', unit: 'KiB' },
  target: { kind: 'max-ratio', value: 1.5 },
  runs: { full: 2, quick: 1 },
  timed: false,
  load: idleMemory,
};

export const idleRss: Scenario = {
  name: 'idle-rss',
  summary: `echo, a started server serving nobody, ${SETTLE_MS / 1000} s after listening: resident memory`,
  protocol: 'echo',
  metric: { name: 'RSS', unit: 'MB' },
  runs: { full: 3, quick: 1 },
  timed: false,
  load: async ({ serverPid }) => ({ value: (await settledRss(serverPid)) / 1e6 }),
};
