/**
 * 10,000 idle connections held open: what each costs the server (memory, one descriptor), and
 * whether a newcomer is still answered quickly. The descriptors must all come back on release.
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { test } from 'node:test';
import { forEachLimited } from '../helpers/echo-cases.js';
import { percentile, mib, ms, report } from './helpers/figures.js';
import { connectFrom, echoLatency, loopbackSource } from './helpers/load.js';
import { fdsBackTo, openFileLimits, pollFor, startEchoServer } from './helpers/server-process.js';

const TARGET = 10_000;
/** Descriptors either process needs besides the held connections (stdio, epoll, pipes, probes). */
const HEADROOM = 200;
/** 50 connections per source address, as a classroom behind a few NATs would open (the server allows more per source). */
const PER_SOURCE = 50;
/** Connections opened at once: well under the listen backlog, so no SYN is dropped and retried. */
const CONNECTING_AT_ONCE = 200;
const PROBES = 20;

test(`${TARGET} idle connections: memory and descriptors, and a probe still answered`, { timeout: 240_000 }, async (t) => {
  // Both processes need a descriptor per connection: this one for the client end, the server for its end.
  const ours = openFileLimits();
  const serverLimit = Math.min(30_000, ours.hard);
  const held = Math.max(0, Math.min(TARGET, ours.soft - HEADROOM, serverLimit - HEADROOM));
  const scaled = held < TARGET ? ` (scaled down from ${TARGET}: ulimit -n is ${ours.soft} soft, ${ours.hard} hard)` : '';

  const server = await startEchoServer(['--max-connections', String(held + PROBES + 10)], { openFiles: serverLimit });
  t.after(() => server.alive() && server.child.kill('SIGKILL'));
  const baseline = server.stats();

  const sockets: net.Socket[] = [];
  const started = performance.now();
  const indexes = Array.from({ length: held }, (_, i) => i);
  await forEachLimited(indexes, CONNECTING_AT_ONCE, async (i) => {
    const socket = await connectFrom(server.port, loopbackSource(10, Math.floor(i / PER_SOURCE)));
    socket.on('error', () => {});
    sockets.push(socket);
  });
  const openMs = performance.now() - started;
  // connect() returns when the kernel has finished the handshake; the server may not have accepted yet.
  const acceptedAll = await pollFor(() => (server.stats().fds >= baseline.fds + held ? true : undefined), 30_000);
  const holding = server.stats();

  const probe = await connectFrom(server.port, loopbackSource(10, 999));
  const latencies: number[] = [];
  for (let i = 0; i < PROBES; i++) latencies.push(await echoLatency(probe));
  probe.destroy();

  const releasing = performance.now();
  for (const socket of sockets) socket.destroy();
  const fdsAfter = await fdsBackTo(server, baseline.fds, 60_000);
  const releaseMs = performance.now() - releasing;
  const after = server.stats();

  report(t, 'idle-connections', [
    ['connections held', `${held}${scaled}`],
    ['time to open them', ms(openMs)],
    ['server RSS before', mib(baseline.rssBytes)],
    ['server RSS holding them', mib(holding.rssBytes)],
    ['server RSS per connection', `${((holding.rssBytes - baseline.rssBytes) / held / 1024).toFixed(1)} KiB`],
    ['server fds before / holding / after release', `${baseline.fds} / ${holding.fds} / ${fdsAfter}`],
    ['echo probe latency (median / max of 20)', `${ms(percentile(latencies, 0.5))} / ${ms(Math.max(...latencies))}`],
    ['time for every descriptor to come back', ms(releaseMs)],
    ['server RSS after release', mib(after.rssBytes)],
  ]);
  assert.ok(acceptedAll, `the server accepted all ${held} connections (fds ${holding.fds}, baseline ${baseline.fds})`);
  assert.ok(server.alive(), 'the server is alive');
  assert.ok(percentile(latencies, 0.5) < 1000, 'the probe is answered (within a generous second)');
  assert.ok(fdsAfter <= baseline.fds, `descriptors back to baseline: ${fdsAfter} vs ${baseline.fds}`);
  const stopped = await server.stop('SIGTERM');
  assert.equal(stopped.code, 0, stopped.stderr);
});
