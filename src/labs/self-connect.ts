/**
 * self-connect (TCP/IP Illustrated vol. 1 §18.8, "Simultaneous Open"; RFC 9293 §3.5, figure 7):
 * a socket bound to 127.0.0.1:P that connects to 127.0.0.1:P, where nothing listens, is not
 * refused: it connects to itself. Its SYN comes back to it while it waits in SYN_SENT, which is
 * what a simultaneous open looks like from one end ("a SYN arrived, and I sent one too"): it
 * moves to SYN_RECEIVED and answers with SYN,ACK; that SYN,ACK comes back too, acknowledging its
 * own SYN, and it is ESTABLISHED. One socket, one row in the kernel's table, both ends the same;
 * whatever it writes, it reads.
 *
 * It is no mere curiosity: a client that keeps retrying a connection to a local port inside the
 * ephemeral range can one day be given that very port as its own, and "connect" without a server.
 */
import net from 'node:net';
import { formatEndpoint, type Endpoint } from '../framework/endpoint.js';
import { flagNames } from '../capture/segment.js';
import { findConnection } from '../tcp-states/parse.js';
import { readTcpSockets } from '../tcp-states/read.js';
import { LAB_HOST, bothEnds, type LabContext } from './context.js';
import type { Lab } from './lab.js';
import { howItEnds } from './sockets.js';
import { capturedConnection } from './wire.js';

/** Tries at a port that no one holds; another program may take it between our close and our connect. */
const PORT_TRIES = 5;

/** What the socket writes, and reads back. */
const GREETING = 'hello, me\n';

/** A port free a moment ago: the kernel's pick for a listener on port 0, closed at once. */
async function freePort(ctx: LabContext): Promise<number> {
  const probe = net.createServer().listen({ host: LAB_HOST, port: 0 });
  await ctx.until(probe, 'listening', 'a free port');
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * A socket bound to 127.0.0.1:P and connected to 127.0.0.1:P, for a P nothing else holds, and how
 * its connect() ended: `connected`, or the error's code.
 */
async function connectToItself(ctx: LabContext): Promise<{ socket: net.Socket; self: Endpoint; outcome: string }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort(ctx);
    ctx.watchPort(port);
    const socket = net.connect({ host: LAB_HOST, port, localAddress: LAB_HOST, localPort: port });
    ctx.defer(() => socket.destroy());
    const outcome = await ctx.within(
      new Promise<string>((resolve) => {
        socket.once('connect', () => resolve('connected'));
        socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      }),
      'the socket to connect to itself',
    );
    // EADDRINUSE: another program took the port in between; try another.
    if (outcome !== 'EADDRINUSE' || attempt === PORT_TRIES) return { socket, self: { address: LAB_HOST, port }, outcome };
  }
}

/** With a capture: the handshake's segments, as one socket sent and received them. */
async function onTheWire(ctx: LabContext, self: Endpoint): Promise<void> {
  // The capture's tracker knows a socket connected to itself (source = destination) and sees it end in TIME_WAIT.
  const wire = await capturedConnection(ctx, bothEnds(self, self), 'wire-handshake', 'the handshake, from packets');
  if (wire === undefined) return;
  const [syn, synAck, ack] = wire.steps.map((step) => step.segment);
  const handshake = [syn, synAck, ack].map((segment) => (segment === undefined ? 'nothing' : flagNames(segment.flags)));
  ctx.expectFact('wire-handshake', 'the first three segments, each seen once', 'SYN, SYN,ACK, ACK', handshake.join(', '));
  // One socket, one initial sequence number: its SYN,ACK repeats its SYN's and acknowledges it.
  const ownIsn = syn !== undefined && synAck !== undefined && synAck.seq === syn.seq && synAck.ack === (syn.seq + 1) >>> 0;
  ctx.expectFact('wire-own-isn', "the SYN,ACK's sequence number", "the SYN's own, acknowledged", ownIsn ? "the SYN's own, acknowledged" : 'another');
  // The SYN,ACK brought a SYN it had already received (its own): Linux says so with a D-SACK (RFC 2883).
  ctx.report('wire-dsack', 'the third segment, the ACK', ack?.options.sack === undefined ? 'no SACK block' : 'carries a D-SACK block for the SYN it received twice (RFC 2883)');
}

export const selfConnect: Lab = {
  name: 'self-connect',
  summary: 'a socket connects to its own address and port: a simultaneous open with itself, ESTABLISHED with no listener',
  concept:
    'Textbook (TCP/IP Illustrated vol. 1 §18.8; RFC 9293 §3.5, figure 7): two ends may open a connection to each other at the same ' +
    'time; each sends a SYN, receives the other\'s while in SYN_SENT, answers with SYN,ACK and becomes ESTABLISHED, with no listener ' +
    'anywhere. A socket bound to port P that connects to its own port P plays both ends: its SYN comes back to it, and it connects to itself.',
  async run(ctx) {
    ctx.step('Pick a port nobody uses (bind to port 0, note the port, close), bind a socket to it and connect to that same address.');
    const { socket, self, outcome } = await connectToItself(ctx);
    const where = formatEndpoint(self);
    if (!ctx.expectFact('connect', `connect() from ${where} to ${where}, nothing listening`, 'connected', outcome).agreed) return;
    ctx.say(`local ${formatEndpoint({ address: socket.localAddress ?? '', port: socket.localPort ?? 0 })}, remote ${formatEndpoint({ address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 })}`);

    ctx.step("Ask the kernel: how many sockets, in which state?");
    await ctx.expectState({ id: 'state', end: 'client', local: self, remote: self, predicted: 'ESTABLISHED' });
    const rows = await readTcpSockets({ port: self.port });
    ctx.expectFact('rows', `rows of /proc/net/tcp with port ${self.port}`, '1, local = remote', rows.length === 1 && findConnection(rows, self, self) ? '1, local = remote' : `${rows.length}`);
    ctx.say('No LISTEN row, no second socket: one end, whose peer is itself.');

    ctx.step(`It writes ${JSON.stringify(GREETING)} and reads.`);
    const reply = ctx.until<[Buffer]>(socket, 'data', 'the socket to read what it wrote');
    socket.write(GREETING);
    ctx.expectFact('reads-itself', 'what it reads', JSON.stringify(GREETING), JSON.stringify(String((await reply)[0])));

    ctx.step('It closes (end()): its FIN comes back to it too, a simultaneous close with itself.');
    const ended = howItEnds(socket);
    socket.end();
    ctx.expectFact('sees-close', 'what it reads after its own FIN', 'end of file (FIN)', await ctx.within(ended, 'the socket to read its own FIN'));
    await ctx.until(socket, 'close', 'the socket to close');
    // Both FINs were sent before either was acknowledged (FIN_WAIT1 → CLOSING → TIME_WAIT), so the one end waits in TIME_WAIT.
    await ctx.expectState({ id: 'after-close', end: 'client', local: self, remote: self, predicted: 'TIME_WAIT' });
    await onTheWire(ctx, self);
  },
};
