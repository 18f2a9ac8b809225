/**
 * rst: an abortive close. With SO_LINGER set to zero, close() sends RST instead of FIN: no
 * FIN exchange, so no TIME_WAIT on either side, and the peer's next read fails with ECONNRESET.
 */
import net from 'node:net';
import { formatSocketPair } from '../framework/endpoint.js';
import { bothEnds, LAB_HOST } from './context.js';
import { startDaytimeServer } from './daytime-session.js';
import type { Lab } from './lab.js';

export const rst: Lab = {
  name: 'rst',
  summary: 'abortive close (SO_LINGER 0): RST, no TIME_WAIT, the client sees ECONNRESET',
  concept:
    'Textbook: close() with SO_LINGER {on, 0 s} discards unsent data and sends RST. Both ends are gone at once, ' +
    'nothing waits in TIME_WAIT, and the peer learns of it as an error, ECONNRESET, not as an orderly end of file.',
  async run(ctx) {
    ctx.step('Start a daytime server that closes with RST (lab-server daytime --close rst).');
    const { port, events } = await startDaytimeServer(ctx, { closePolicy: { mode: 'rst', delayMs: 0 } });

    ctx.step("Connect a plain socket and read, as daytime.c's read() loop does.");
    const served = ctx.event(events, 'accepted', 'the server to accept the client');
    const socket = net.connect({ host: LAB_HOST, port });
    ctx.defer(() => socket.destroy());
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    // The reset can come so soon that Node reports it from connect() rather than from a read.
    const failed = ctx.until<[NodeJS.ErrnoException]>(socket, 'error', 'the client to see the reset');
    const [conn, [error]] = await Promise.all([served, failed]);
    const ends = bothEnds(conn.remote, conn.local);
    ctx.say(`socket pair: server ${formatSocketPair(conn.local, conn.remote)}`);
    ctx.say(`the client's socket failed: ${error.message} (${Buffer.concat(received).length} bytes had arrived; a reset discards what was not yet read)`);
    ctx.expectFact('client-error', "the client's error", 'ECONNRESET', error.code ?? 'no error');

    ctx.step('Ask the kernel about both ends.');
    await ctx.expectState({ id: 'server', end: 'server', ...ends.server, predicted: 'none' });
    await ctx.expectState({ id: 'client', end: 'client', ...ends.client, predicted: 'none' });
  },
};
