/**
 * UDP reflection spread over many sources: each of 2,000 loopback addresses (standing in for
 * forged ones) sends chargen one datagram. The per-peer budget would answer every one of them,
 * each a first datagram with a full burst; the service-wide budget caps the replies and bytes
 * they earn together.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { test } from 'node:test';
import { startServerProcess } from '../helpers/cli.js';
import { ms, report } from './helpers/figures.js';
import { loopbackSource } from './helpers/load.js';
import { pollFor } from './helpers/server-process.js';

const SOURCES = 2000;
/** Sent this many at a time, then waited for: more at once would overflow the server's receive buffer. */
const BATCH = 50;
/** The defaults: 200 replies and 64 KiB a second, after a burst of twice that. */
const SERVICE_REPLIES_PER_SECOND = 200;
const SERVICE_BYTES_PER_SECOND = 64 * 1024;

test('2,000 source addresses, one chargen datagram each: the service-wide budget caps replies and bytes', { timeout: 240_000 }, async (t) => {
  const server = await startServerProcess(['chargen', '--udp-only', '--host', '127.0.0.1']);
  t.after(() => server.child.exitCode === null && server.child.kill('SIGKILL'));
  const sockets: dgram.Socket[] = [];
  let replies = 0;
  let replyBytes = 0;
  const started = performance.now();
  for (let sent = 0; sent < SOURCES; sent += BATCH) {
    const batch = await Promise.all(
      Array.from({ length: BATCH }, async (_, i) => {
        const socket = dgram.createSocket('udp4');
        socket.bind(0, loopbackSource(50, sent + i));
        await once(socket, 'listening');
        socket.on('message', (reply) => {
          replies += 1;
          replyBytes += reply.length;
        });
        return socket;
      }),
    );
    sockets.push(...batch);
    for (const socket of batch) socket.send('x', server.port, '127.0.0.1');
  }
  // Every reply is on its way after the last datagram is read; give them a moment to land.
  const lastCount = { replies: -1 };
  await pollFor(() => (replies === lastCount.replies ? true : ((lastCount.replies = replies), undefined)), 5000, 300);
  const elapsedMs = performance.now() - started;
  for (const socket of sockets) socket.close();
  const finished = await server.stop('SIGTERM');
  const summary = server.lines.find((line) => line.event === 'summary');
  const reasons = new Set(server.lines.filter((line) => line.event === 'udp-dropped').map((line) => line.reason));

  const seconds = elapsedMs / 1000;
  report(t, 'udp-reflection', [
    ['sources, one chargen datagram each', `${SOURCES} (127.50.x.y), in ${ms(elapsedMs)}`],
    ['datagrams received / answered / dropped (server summary)', `${summary?.received} / ${summary?.answered} / ${summary?.dropped}`],
    ['replies and bytes that reached the sources', `${replies}, ${replyBytes} bytes (${(replyBytes / SOURCES).toFixed(0)} bytes per 1-byte request)`],
    ['drop reasons logged', [...reasons].join(', ')],
  ]);
  assert.equal(finished.code, 0);
  assert.ok(replies <= 2 * SERVICE_REPLIES_PER_SECOND + SERVICE_REPLIES_PER_SECOND * seconds, `${replies} replies in ${ms(elapsedMs)}`);
  assert.ok(replyBytes <= 2 * SERVICE_BYTES_PER_SECOND + SERVICE_BYTES_PER_SECOND * seconds, `${replyBytes} bytes in ${ms(elapsedMs)}`);
  assert.ok(reasons.has('service-over-budget'), 'the drops say why');
});
