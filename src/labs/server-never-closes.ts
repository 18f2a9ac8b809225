/**
 * server-never-closes (the close-states write-up, experiment 2): the server writes the time
 * but never calls close(). The client reads, closes first, and waits in FIN_WAIT_2 for a FIN
 * that never comes; the server's end sits in CLOSE_WAIT.
 */
import { openDaytimeSession, startDaytimeServer } from './daytime-session.js';
import type { Lab } from './lab.js';

export const serverNeverCloses: Lab = {
  name: 'server-never-closes',
  summary: 'the server never closes: client FIN_WAIT_2, server CLOSE_WAIT',
  concept:
    'Textbook: CLOSE_WAIT means "the peer has closed, and this program has not called close() yet". A server with ' +
    'CLOSE_WAIT sockets piling up is leaking descriptors. The active closer waits in FIN_WAIT_2 (Linux gives up on an ' +
    'orphaned one after tcp_fin_timeout, 60 s).',
  async run(ctx) {
    ctx.step('Start a daytime server that writes the time and never closes (lab-server daytime --no-close).');
    const { port, stop } = await startDaytimeServer(ctx, { closePolicy: { mode: 'never', delayMs: 0 } });

    ctx.step('Connect the daytime client: it reads the line, then closes first.');
    const session = await openDaytimeSession(ctx, port);
    await ctx.within(session.finished, 'the client to close');

    ctx.step('Ask the kernel about both ends.');
    await ctx.expectState({ id: 'client', end: 'client', ...session.ends.client, predicted: 'FIN_WAIT2' });
    await ctx.expectState({ id: 'server', end: 'server', ...session.ends.server, predicted: 'CLOSE_WAIT' });

    ctx.step('Stop the server, as Ctrl-C would: its close() finally sends FIN.');
    await stop();
    await ctx.expectState({ id: 'client-after-stop', end: 'client', ...session.ends.client, predicted: 'TIME_WAIT' });
    await ctx.expectState({ id: 'server-after-stop', end: 'server', ...session.ends.server, predicted: 'none' });
    ctx.say('The client closed first, so once both FINs are through, the TIME_WAIT is on its side.');
  },
};
