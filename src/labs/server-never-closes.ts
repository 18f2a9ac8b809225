/**
 * server-never-closes (the close-states write-up, experiment 2): the server writes the time
 * but never calls close(). The client reads, closes first, and waits in FIN_WAIT_2 for a FIN
 * that never comes; the server's end sits in CLOSE_WAIT.
 *
 * Linux does not let the client's side wait for ever: its descriptor is closed, so the
 * FIN_WAIT_2 socket is an orphan, and the kernel drops it after net.ipv4.tcp_fin_timeout
 * (tcp_rcv_state_process in net/ipv4/tcp_input.c hands it to the TIME_WAIT timer for that long). The server's
 * CLOSE_WAIT socket still belongs to an open descriptor: it lasts as long as the program keeps it.
 */
import { readFile } from 'node:fs/promises';
import { formatRemaining } from '../tcp-states/table.js';
import { describeHolder } from './context.js';
import { openDaytimeSession, startDaytimeServer } from './daytime-session.js';
import type { Lab } from './lab.js';

/** How long an orphaned FIN_WAIT_2 socket may wait for the peer's FIN, in seconds (tcp(7)). */
const FIN_TIMEOUT_FILE = '/proc/sys/net/ipv4/tcp_fin_timeout';

export const serverNeverCloses: Lab = {
  name: 'server-never-closes',
  summary: 'the server never closes: client FIN_WAIT_2, server CLOSE_WAIT',
  concept:
    'Textbook: CLOSE_WAIT means "the peer has closed, and this program has not called close() yet". A server with ' +
    'CLOSE_WAIT sockets piling up is leaking descriptors. The active closer waits in FIN_WAIT_2; Linux gives up on ' +
    'an orphaned one (its program has closed it) after net.ipv4.tcp_fin_timeout.',
  async run(ctx) {
    ctx.step('Start a daytime server that writes the time and never closes (lab-server daytime --no-close).');
    const { port, stop } = await startDaytimeServer(ctx, { closePolicy: { mode: 'never', delayMs: 0 } });

    ctx.step('Connect the daytime client: it reads the line, then closes first.');
    const session = await openDaytimeSession(ctx, port);
    await ctx.within(session.finished, 'the client to close');

    ctx.step('Ask the kernel about both ends.');
    await ctx.expectState({ id: 'client', end: 'client', ...session.ends.client, predicted: 'FIN_WAIT2' });
    await ctx.expectState({ id: 'server', end: 'server', ...session.ends.server, predicted: 'CLOSE_WAIT' });
    await ctx.expectKernel('server-descriptor', "server's CLOSE_WAIT socket held by", session.ends.server.local, session.ends.server.remote, 'an open descriptor', describeHolder);
    await ctx.expectKernel('client-descriptor', "client's FIN_WAIT2 socket held by", session.ends.client.local, session.ends.client.remote, 'no descriptor (orphan)', describeHolder);

    const finTimeoutS = Number((await readFile(FIN_TIMEOUT_FILE, 'utf8')).trim());
    ctx.say(`${FIN_TIMEOUT_FILE}: ${finTimeoutS} s. The orphan's timer must not run longer:`);
    const withinFinTimeout = `timer ≤ ${finTimeoutS} s`;
    await ctx.expectKernel('client-fin-timeout', "client's FIN_WAIT2 timer", session.ends.client.local, session.ends.client.remote, withinFinTimeout, (entry) =>
      entry === undefined || entry.timer.kind === 'none'
        ? 'no timer'
        : entry.timer.remainingMs <= finTimeoutS * 1000 ? withinFinTimeout : `timer ${formatRemaining(entry.timer.remainingMs)}`,
    );

    ctx.step('Stop the server, as Ctrl-C would: its close() finally sends FIN.');
    await stop();
    await ctx.expectState({ id: 'client-after-stop', end: 'client', ...session.ends.client, predicted: 'TIME_WAIT' });
    await ctx.expectState({ id: 'server-after-stop', end: 'server', ...session.ends.server, predicted: 'none' });
    ctx.say('The client closed first, so once both FINs are through, the TIME_WAIT is on its side.');
  },
};
