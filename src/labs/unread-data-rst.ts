/**
 * unread-data-rst (RFC 1122 §4.2.2.13; RFC 9293 §3.6.1, SHLD-3): closing a socket while bytes it
 * received wait unread in its receive buffer sends RST, not FIN, "to show that data was lost".
 * Linux does it in __tcp_close (net/ipv4/tcp.c): it frees the unread bytes, counts the abort in
 * TcpExtTCPAbortOnClose, and sends an active reset instead of the FIN exchange. The peer's next
 * read fails with ECONNRESET, and with no FIN exchange no end keeps TIME_WAIT, not even the one
 * that closed first.
 *
 * The whole experiment, twice on one server that differs in one thing only: the first time its
 * program closes without reading the client's line, the second time it reads the line first.
 * (client-never-closes shows the same rule once, for a client whose exit closes its socket.)
 */
import type net from 'node:net';
import { formatSocketPair } from '../framework/endpoint.js';
import { readCounter, waitForCounterAbove } from '../tcp-states/counters.js';
import type { LabContext } from './context.js';
import { connectEchoPeer, type EchoPeer } from './echo-clients.js';
import type { Lab } from './lab.js';
import { howItEnds, listenPlain, nextConnection } from './sockets.js';
import { capturedConnection, closingSegments } from './wire.js';

/** What each client sends: a request the server may or may not read. */
const REQUEST = 'a request the server may not read\n';

/** The kernel's count of resets sent because a program closed with data unread (__tcp_close). */
const ABORT_ON_CLOSE = 'TcpExtTCPAbortOnClose';

/** One client connects and sends REQUEST; resolves once the server has accepted it. */
async function connectAndSend(ctx: LabContext, server: net.Server, port: number): Promise<{ client: EchoPeer; served: net.Socket; ended: Promise<string> }> {
  const accepted = nextConnection(ctx, server);
  const client = await connectEchoPeer(ctx, port);
  const served = await accepted;
  // The client reads (nothing comes) so that it sees the close, listened for before it can happen.
  const ended = howItEnds(client.socket);
  client.socket.resume();
  client.socket.write(REQUEST);
  ctx.say(`socket pair: client ${formatSocketPair(client.ends.client.local, client.ends.client.remote)}; it sends ${REQUEST.length} bytes`);
  return { client, served, ended };
}

/** Recv-Q of the server's end: bytes the kernel received for it that its program has not read. */
const recvQ = (ctx: LabContext, id: string, client: EchoPeer, predicted: number): Promise<unknown> =>
  ctx.expectKernel(id, "the server's unread bytes (Recv-Q)", client.ends.server.local, client.ends.server.remote, `Recv-Q ${predicted}`, (entry) => `Recv-Q ${entry?.rxQueue ?? 'none'}`);

export const unreadDataRst: Lab = {
  name: 'unread-data-rst',
  summary: 'close() with unread data sends RST, not FIN: the peer gets ECONNRESET and neither end keeps TIME_WAIT',
  concept:
    'Textbook (RFC 1122 §4.2.2.13, kept in RFC 9293 §3.6.1): a TCP that closes while received data is still unread "SHOULD ' +
    'send a RST to show that data was lost". The peer learns of it as an error, ECONNRESET, not as an end of file, and ' +
    'since no FINs are exchanged, nothing waits in TIME_WAIT. Read everything first, and the same close() sends FIN.',
  async run(ctx) {
    ctx.step('Start a server that never reads by itself (node:net, pauseOnConnect: no read() until the lab says so).');
    const { server, port } = await listenPlain(ctx, { pauseOnConnect: true });
    ctx.say(`server listening on 127.0.0.1:${port}`);

    ctx.step('A client connects and sends a line; the server does not read it.');
    const unread = await connectAndSend(ctx, server, port);
    await recvQ(ctx, 'unread', unread.client, REQUEST.length);
    ctx.say("The line is in the server's receive buffer: its kernel has it (and acknowledged it), its program has not read it.");

    ctx.step('The server closes the socket with the line unread: destroy(), which is close(2).');
    const abortsBefore = await readCounter(ABORT_ON_CLOSE);
    unread.served.destroy();
    ctx.expectFact('unread-client-sees', 'what the client sees', 'ECONNRESET', await ctx.within(unread.ended, 'the client to see the close'));
    const abortsAfter = await waitForCounterAbove(ABORT_ON_CLOSE, abortsBefore);
    ctx.expectFact('abort-on-close', `resets for unread data (${ABORT_ON_CLOSE})`, 'rose', abortsAfter > abortsBefore ? 'rose' : 'unchanged');
    await ctx.expectState({ id: 'unread-server', end: 'server', ...unread.client.ends.server, predicted: 'none' });
    await ctx.expectState({ id: 'unread-client', end: 'client', ...unread.client.ends.client, predicted: 'none' });
    ctx.say('RST, not FIN: the client learns of it as an error, and although the server closed first, no TIME_WAIT is left anywhere.');
    await onTheWire(ctx, unread.client, 'unread-wire', 'RST');

    ctx.step('Again, and this time the server reads the line before it closes.');
    const read = await connectAndSend(ctx, server, port);
    read.served.resume();
    ctx.say(`the server read ${(await ctx.until<[Buffer]>(read.served, 'data', 'the server to read the line'))[0].length} bytes`);
    await recvQ(ctx, 'read', read.client, 0);
    read.served.destroy();
    ctx.expectFact('read-client-sees', 'what the client sees', 'end of file (FIN)', await ctx.within(read.ended, 'the client to see the close'));
    await ctx.expectState({ id: 'read-server', end: 'server', ...read.client.ends.server, predicted: 'TIME_WAIT' });
    await ctx.expectState({ id: 'read-client', end: 'client', ...read.client.ends.client, predicted: 'none' });
    ctx.say('The same close(), with nothing unread, is an orderly close: FIN, and TIME_WAIT on the server, which closed first.');
    await onTheWire(ctx, read.client, 'read-wire', 'FIN');
  },
};

/** With a capture: how the server's close looked on the wire. */
async function onTheWire(ctx: LabContext, client: EchoPeer, id: string, predicted: string): Promise<void> {
  const wire = await capturedConnection(ctx, client.ends, id, "the server's close, from packets");
  if (wire !== undefined) ctx.expectFact(id, "the server's close, on the wire", predicted, closingSegments(wire, 'server'));
}
