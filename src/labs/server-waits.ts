/**
 * server-waits (the close-states write-up, experiment 4): the server writes the time, then
 * waits before closing; the client reads and closes first. During the wait: client FIN_WAIT_2,
 * server CLOSE_WAIT. After it: client TIME_WAIT.
 */
import { HOLD_MS, openDaytimeSession, startDaytimeServer } from './daytime-session.js';
import type { Lab } from './lab.js';

export const serverWaits: Lab = {
  name: 'server-waits',
  summary: 'the server delays its close and the client closes first: client FIN_WAIT_2, server CLOSE_WAIT',
  concept:
    'Textbook: whoever closes first is the active closer, whatever the protocol meant. Here the client closes ' +
    'first, so the roles of client-waits swap: the client waits in FIN_WAIT_2 and later holds TIME_WAIT.',
  async run(ctx) {
    ctx.step(`Start a daytime server that waits ${HOLD_MS / 1000} s after writing before it closes (lab-server daytime --close-delay ${HOLD_MS / 1000}).`);
    const { port } = await startDaytimeServer(ctx, { closePolicy: { mode: 'fin', delayMs: HOLD_MS } });

    ctx.step('Connect the daytime client: it reads the line and closes at once, first.');
    const session = await openDaytimeSession(ctx, port);
    await ctx.within(session.finished, 'the client to close');

    ctx.step("While the server waits, ask the kernel about both ends.");
    await ctx.expectState({ id: 'client-during-delay', end: 'client', ...session.ends.client, predicted: 'FIN_WAIT2' });
    await ctx.expectState({ id: 'server-during-delay', end: 'server', ...session.ends.server, predicted: 'CLOSE_WAIT' });

    ctx.step('The server closes when its delay is over. Ask again (polling until it has).');
    await ctx.expectState({ id: 'client-after-delay', end: 'client', ...session.ends.client, predicted: 'TIME_WAIT' });
    await ctx.expectState({ id: 'server-after-delay', end: 'server', ...session.ends.server, predicted: 'none' });
  },
};
