/**
 * half-close (Stevens UNP §6.6, shutdown; TCP/IP Illustrated vol. 1 §18.5, "TCP Half-Close";
 * RFC 9293 §3.6.1): shutdown(SHUT_WR) closes one direction of a connection, not the connection.
 * The client's FIN says "no more data from me"; it goes on reading, and the server goes on
 * writing. Between the two FINs the client's end waits in FIN_WAIT2 and the server's in
 * CLOSE_WAIT, and data still flows, server to client.
 *
 * The server is a tiny sort, like `rsh host sort < file` in TCP/IP Illustrated: sort can write
 * nothing before its input has ended, so the client's half-close is how it says "that was all".
 * In Node, socket.end() is shutdown(SHUT_WR). A server needs allowHalfOpen: true to go on writing
 * after the client's FIN: by default Node ends its side too as soon as the FIN is read.
 */
import type { StepNote } from '../capture/connection-tracker.js';
import { formatSocketPair } from '../framework/endpoint.js';
import { describeHolder } from './context.js';
import { connectEchoPeer } from './echo-clients.js';
import type { Lab } from './lab.js';
import { listenPlain, nextConnection } from './sockets.js';
import { capturedConnection } from './wire.js';

/** The client's input, one word a line; the server sends it back sorted. */
const WORDS = ['pear', 'apple', 'fig'];

/** The ladder's note for a segment sent after its sender received the peer's FIN (connection-tracker.ts). */
const HALF_CLOSE_NOTE: StepNote = "data after the peer's FIN (half-close)";

export const halfClose: Lab = {
  name: 'half-close',
  summary: 'shutdown(SHUT_WR): the client sends FIN and keeps reading; FIN_WAIT2 and CLOSE_WAIT while data still flows to it',
  concept:
    'Textbook (Stevens UNP §6.6; TCP/IP Illustrated vol. 1 §18.5; RFC 9293 §3.6.1): the two directions of a TCP connection ' +
    'close independently. shutdown(SHUT_WR) sends FIN, "I have no more to send", and leaves the socket open for reading; ' +
    'close() gives up both directions. After a half-close the client waits in FIN_WAIT2 and the server sits in CLOSE_WAIT, ' +
    'and the server may still send as much as it likes, until it closes too.',
  async run(ctx) {
    ctx.step('Start a sort server (node:net, allowHalfOpen: true): it reads lines until the client\'s FIN, then writes them back sorted.');
    const { server, port } = await listenPlain(ctx, { allowHalfOpen: true });
    ctx.say(`sort server listening on 127.0.0.1:${port}`);
    const accepted = nextConnection(ctx, server);

    ctx.step(`The client connects, writes ${WORDS.length} lines and calls end(): shutdown(SHUT_WR), a FIN. It keeps reading.`);
    const client = await connectEchoPeer(ctx, port);
    const socket = await accepted;
    const input: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => input.push(chunk));
    const inputEnded = ctx.until(socket, 'end', "the client's FIN to reach the server");
    client.socket.end(WORDS.map((word) => `${word}\n`).join(''));
    await inputEnded;
    const lines = Buffer.concat(input).toString().split('\n').filter((line) => line !== '');
    ctx.say(`socket pair: client ${formatSocketPair(client.ends.client.local, client.ends.client.remote)}`);
    ctx.say(`the server read ${lines.length} lines, then read() returned 0: the client's FIN. Nothing sent back yet.`);

    ctx.step('Ask the kernel about both ends, half-closed.');
    await ctx.expectState({ id: 'client-half-closed', end: 'client', ...client.ends.client, predicted: 'FIN_WAIT2' });
    await ctx.expectState({ id: 'server-half-closed', end: 'server', ...client.ends.server, predicted: 'CLOSE_WAIT' });
    await ctx.expectKernel('client-holder', "the client's FIN_WAIT2 socket held by", client.ends.client.local, client.ends.client.remote, 'an open descriptor', describeHolder);
    // Linux times out FIN_WAIT2 only for an orphan (tcp_fin_timeout, tcp(7)): this socket's program still reads.
    await ctx.expectKernel('client-timer', "the client's FIN_WAIT2 timer", client.ends.client.local, client.ends.client.remote, 'no timer', (entry) =>
      entry === undefined ? 'no socket' : entry.timer.kind === 'none' ? 'no timer' : entry.timer.kind,
    );
    ctx.say('shutdown() is not close(): the client still holds its socket, so no timer ends its FIN_WAIT2 (after close(), tcp_fin_timeout would).');

    const sorted = [...lines].sort();
    ctx.step(`The server writes its first sorted line. Data flows server → client after the client's FIN.`);
    const first = client.nextEcho('the first sorted line');
    socket.write(`${sorted[0]}\n`);
    ctx.say(`the client read: ${JSON.stringify(await first)}`);
    await ctx.expectState({ id: 'client-while-data', end: 'client', ...client.ends.client, predicted: 'FIN_WAIT2' });
    await ctx.expectState({ id: 'server-while-data', end: 'server', ...client.ends.server, predicted: 'CLOSE_WAIT' });
    ctx.say("Neither state moved: CLOSE_WAIT means \"the peer will send no more\", not \"this side may not send\".");

    ctx.step('The server writes the rest and closes (end()): its FIN. The client reads to the end of file.');
    const rest: Buffer[] = [];
    client.socket.on('data', (chunk: Buffer) => rest.push(chunk));
    const clientEnded = ctx.until(client.socket, 'end', "the server's FIN to reach the client");
    socket.end(sorted.slice(1).map((line) => `${line}\n`).join(''));
    await clientEnded;
    const received = `${sorted[0]}\n${Buffer.concat(rest).toString()}`;
    ctx.expectFact('sorted', 'what the client read in all', [...WORDS].sort().join(' '), received.split('\n').filter((line) => line !== '').join(' '));
    await ctx.expectState({ id: 'client-after', end: 'client', ...client.ends.client, predicted: 'TIME_WAIT' });
    await ctx.expectState({ id: 'server-after', end: 'server', ...client.ends.server, predicted: 'none' });
    ctx.say('The client sent the first FIN, so its end holds TIME_WAIT, however long the server went on sending.');

    const wire = await capturedConnection(ctx, client.ends, 'wire', 'data after the client\'s FIN, from packets');
    if (wire !== undefined) {
      const senders = new Set(wire.steps.filter((step) => step.notes.includes(HALF_CLOSE_NOTE)).map((step) => `the ${step.from}`));
      ctx.expectFact('wire', "who sent data after the other's FIN", 'the server', [...senders].join(', ') || 'nobody');
    }
  },
};
