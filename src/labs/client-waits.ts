/**
 * client-waits (the close-states write-up, experiment 3): the server closes first, and the
 * client holds its socket for a while before closing. During the hold: server FIN_WAIT_2,
 * client CLOSE_WAIT. After it: server TIME_WAIT.
 */
import { HOLD_MS, openDaytimeSession, startDaytimeServer } from './daytime-session.js';
import type { Lab } from './lab.js';

export const clientWaits: Lab = {
  name: 'client-waits',
  summary: 'the client holds the socket after reading: server FIN_WAIT_2, client CLOSE_WAIT',
  concept:
    'Textbook (RFC 793 §3.5): after the first FIN is acknowledged, the active closer waits in FIN_WAIT_2 for the peer\'s FIN, and ' +
    'the passive side sits in CLOSE_WAIT until its program calls close(). Only then does the active closer move to TIME_WAIT.',
  async run(ctx) {
    ctx.step('Start a daytime server; it writes the time and closes first.');
    const { port } = await startDaytimeServer(ctx);

    ctx.step(`Connect a client that reads the line, then holds the socket ${HOLD_MS / 1000} s before closing (lab-client daytime --hold ${HOLD_MS / 1000}).`);
    const session = await openDaytimeSession(ctx, port, { holdMs: HOLD_MS });

    ctx.step('During the hold, ask the kernel about both ends.');
    await ctx.expectState({ id: 'server-during-hold', end: 'server', ...session.ends.server, predicted: 'FIN_WAIT2' });
    await ctx.expectState({ id: 'client-during-hold', end: 'client', ...session.ends.client, predicted: 'CLOSE_WAIT' });

    ctx.step('The hold ends and the client closes. Ask again.');
    await ctx.within(session.finished, 'the client to close', HOLD_MS + 5000);
    await ctx.expectState({ id: 'server-after-hold', end: 'server', ...session.ends.server, predicted: 'TIME_WAIT' });
    await ctx.expectState({ id: 'client-after-hold', end: 'client', ...session.ends.client, predicted: 'none' });
  },
};
