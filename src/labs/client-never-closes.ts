/**
 * client-never-closes (the close-states write-up, experiment 1): the client exits without
 * calling close(). Exit closes every descriptor, so the kernel sends the client's FIN anyway,
 * and the server, which closed first, ends in TIME_WAIT.
 */
import { fileURLToPath } from 'node:url';
import { formatSocketPair } from '../framework/endpoint.js';
import { bothEnds, LAB_HOST } from './context.js';
import { startDaytimeServer } from './daytime-session.js';
import type { Lab } from './lab.js';

/** The project's own client program, run as a separate process so that it can exit. */
const LAB_CLIENT = fileURLToPath(new URL('../cli/lab-client.js', import.meta.url));

export const clientNeverCloses: Lab = {
  name: 'client-never-closes',
  summary: 'the client exits without close(): the kernel closes it; the server side ends in TIME_WAIT',
  concept:
    'Textbook: when a process exits, the kernel closes its open descriptors, and a TCP socket closed that way ' +
    'sends FIN just as close() would. Forgetting close() in a short program is harmless; in a long-running one it leaks.',
  async run(ctx) {
    ctx.step('Start a daytime server; it writes the time and closes first.');
    const { port, events } = await startDaytimeServer(ctx);
    const served = ctx.event(events, 'accepted', 'the server to accept the client');

    ctx.step(`Run the client as its own process: lab-client daytime ${LAB_HOST} --port ${port} --no-close`);
    ctx.say('It reads the line and exits without calling close().');
    const [outcome, conn] = await Promise.all([
      ctx.runProcess(process.execPath, [LAB_CLIENT, 'daytime', LAB_HOST, '--port', String(port), '--no-close']),
      served,
    ]);
    const ends = bothEnds(conn.remote, conn.local);
    ctx.say(`the client printed: ${outcome.stdout.trimEnd()}`);
    ctx.say(`socket pair: server ${formatSocketPair(conn.local, conn.remote)}`);
    ctx.expectFact('client-exit', 'the client process exit status', '0', String(outcome.code));

    ctx.step('The process is gone. Ask the kernel about both ends.');
    await ctx.expectState({ id: 'server', end: 'server', ...ends.server, predicted: 'TIME_WAIT' });
    await ctx.expectState({ id: 'client', end: 'client', ...ends.client, predicted: 'none' });
    ctx.say("Exit closed the client's socket: its FIN reached the server, which closed first, so the server holds TIME_WAIT.");
  },
};
