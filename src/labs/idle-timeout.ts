/**
 * idle-timeout: an inactivity timer, as Berkeley socket timeouts (SO_RCVTIMEO) are. It
 * restarts with every byte, so a chatty client stays connected however long it stays, and a
 * silent one is disconnected once the timer runs out.
 */
import { echo } from '../protocols/echo.js';
import { connectEchoPeer } from './echo-clients.js';
import type { Lab } from './lab.js';

/** Short, so the lab is quick; `lab-server echo --idle-timeout <s>` sets it by hand. */
const IDLE_TIMEOUT_MS = 1000;
/** The chatty client writes this often: well inside the timer. */
const CHAT_INTERVAL_MS = 200;
/** Echoes the chatty client waits for before the silent one arrives: together longer than the timer. */
const CHAT_LINES_BEFORE_SILENT = 8;

export const idleTimeout: Lab = {
  name: 'idle-timeout',
  summary: 'a silent client is disconnected after the inactivity timer, a chatty one is not',
  concept:
    'Textbook: in Berkeley-derived systems SO_RCVTIMEO and SO_SNDTIMEO are inactivity timers, not deadlines for ' +
    'the whole exchange: each byte restarts them. A server uses one to drop clients that went quiet.',
  async run(ctx) {
    ctx.step(`Start an echo server with a ${IDLE_TIMEOUT_MS / 1000} s idle timer (lab-server echo --idle-timeout ${IDLE_TIMEOUT_MS / 1000}).`);
    const { port } = await ctx.startServer({ protocol: echo, idleTimeoutMs: IDLE_TIMEOUT_MS });

    ctx.step(`A chatty client connects and sends a line every ${CHAT_INTERVAL_MS} ms.`);
    const chatty = await connectEchoPeer(ctx, port);
    const chattySince = performance.now();
    const ticker = setInterval(() => chatty.socket.write('tick\n'), CHAT_INTERVAL_MS);
    ctx.defer(() => clearInterval(ticker));
    for (let line = 1; line <= CHAT_LINES_BEFORE_SILENT; line++) await chatty.nextEcho(`echo ${line} of the chatty client`);
    ctx.say(`${CHAT_LINES_BEFORE_SILENT} echoes came back in ${Math.round(performance.now() - chattySince)} ms: longer than the timer, and still connected.`);

    ctx.step('A silent client connects and sends nothing.');
    const silent = await connectEchoPeer(ctx, port);
    const silentSince = performance.now();
    await ctx.until(silent.socket, 'end', 'the server to close the silent client', IDLE_TIMEOUT_MS + 5000);
    const silentFor = Math.round(performance.now() - silentSince);
    ctx.say(`the server closed the silent client after ${silentFor} ms`);
    ctx.expectFact('silent-closed', 'silent client closed by the server', `after ≥ ${IDLE_TIMEOUT_MS} ms`, silentFor >= IDLE_TIMEOUT_MS - 10 ? `after ≥ ${IDLE_TIMEOUT_MS} ms` : `after only ${silentFor} ms`);
    // The server closed first, so its end of the silent connection holds TIME_WAIT.
    await ctx.expectState({ id: 'silent-server', end: 'server', ...silent.ends.server, predicted: 'TIME_WAIT' });

    ctx.step('Meanwhile, the chatty client.');
    ctx.say(`connected for ${Math.round(performance.now() - chattySince)} ms, over ${Math.floor((performance.now() - chattySince) / IDLE_TIMEOUT_MS)}× the timer`);
    await ctx.expectState({ id: 'chatty-server', end: 'server', ...chatty.ends.server, predicted: 'ESTABLISHED' });
    clearInterval(ticker);
  },
};
