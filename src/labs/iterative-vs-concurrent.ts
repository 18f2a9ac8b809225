/**
 * iterative-vs-concurrent: the tutorial's Perl server serves one client at a time. A second
 * client still connects (the kernel completes the handshake and queues it), but its bytes wait
 * unread in the kernel until the first client leaves. A concurrent server answers both at once.
 *
 * The first step shows the kernel's part on its own, with a listener that never calls accept():
 * the handshake completes anyway and the connection waits in the listener's accept queue
 * (listen(2): the backlog is the queue of "completely established sockets waiting to be
 * accepted"). Node cannot leave a connection unaccepted, so that listener is python3.
 */
import net from 'node:net';
import { formatSocketPair, socketEnds } from '../framework/endpoint.js';
import { echo } from '../protocols/echo.js';
import { bothEnds, LAB_HOST, type LabContext } from './context.js';
import { connectEchoPeer } from './echo-clients.js';
import type { Lab } from './lab.js';
import { reportSkipped, startPython } from './python.js';

/** bind, listen, say which port, and never accept: hold the socket until stdin closes. */
const NEVER_ACCEPTS = `
import json, socket, sys
listener = socket.socket(); listener.bind((sys.argv[1], 0)); listener.listen(8)
print(json.dumps({'port': listener.getsockname()[1]}), flush=True)
sys.stdin.read()
`;

/** The kernel's part: a client connects to a listener whose program never calls accept(). */
async function handshakeWithoutAccept(ctx: LabContext): Promise<void> {
  ctx.step('The kernel\'s part alone: a listener (python3) that calls listen() and never accept(); a client connects.');
  const started = await startPython<{ port: number }>(ctx, NEVER_ACCEPTS, [LAB_HOST]);
  if (!started.ran) return reportSkipped(ctx, 'handshake', 'a handshake without accept()', started.why);
  const { port } = started.value.ready;
  ctx.watchPort(port);
  const client = net.connect({ host: LAB_HOST, port });
  ctx.defer(() => client.destroy());
  // connect() completes when the handshake does: the SYN-ACK came from the kernel, not the program.
  await ctx.until(client, 'connect', 'the client to connect');
  const ends = bothEnds(socketEnds(client).local, { address: LAB_HOST, port });
  ctx.say(`connected: ${formatSocketPair(ends.client.local, ends.client.remote)}`);
  await ctx.expectState({ id: 'unaccepted-client', end: 'client', ...ends.client, predicted: 'ESTABLISHED' });
  await ctx.expectState({ id: 'unaccepted-server', end: 'server', ...ends.server, predicted: 'ESTABLISHED' });
  // A LISTEN row's Recv-Q is its accept queue: connections complete and not yet accept()ed.
  await ctx.expectKernel('accept-queue', "the listener's accept queue (Recv-Q)", { address: LAB_HOST, port }, { address: '0.0.0.0', port: 0 }, 'Recv-Q 1', (entry) => `Recv-Q ${entry?.rxQueue ?? 'none'}`);
  ctx.say('The program has not accepted anything, yet the connection is ESTABLISHED at both ends: it waits in the queue.');
  client.destroy();
  started.value.endInput();
}

/** One run: client A connects and stays; client B connects and sends; when does B get its echo? */
async function twoClients(ctx: LabContext, iterative: boolean): Promise<void> {
  const mode = iterative ? 'iterative' : 'concurrent';
  ctx.step(`Start ${iterative ? 'an iterative echo server (lab-server echo --iterative)' : 'a concurrent echo server (the default)'}; client A connects and is served.`);
  const { port } = await ctx.startServer({ protocol: echo, iterative });
  const a = await connectEchoPeer(ctx, port);
  const echoA = a.nextEcho("A's echo");
  a.socket.write('A\n');
  ctx.say(`A got its echo: ${JSON.stringify(await echoA)}`);
  let aClosed = false;
  a.socket.once('close', () => (aClosed = true));

  ctx.step('While A stays connected, client B connects and sends a line.');
  const b = await connectEchoPeer(ctx, port);
  await ctx.expectState({ id: `${mode}-b-server`, end: 'server', ...b.ends.server, predicted: 'ESTABLISHED' });
  const echoB = b.nextEcho("B's echo").then((text) => ({ text, aClosed }));
  b.socket.write('B\n');
  // Recv-Q: bytes the kernel has received on B's server-side socket that no one has read yet.
  await ctx.expectKernel(`${mode}-b-unread`, "B's bytes unread on the server side", b.ends.server.local, b.ends.server.remote, iterative ? 'Recv-Q 2' : 'Recv-Q 0', (entry) => `Recv-Q ${entry?.rxQueue ?? 'none'}`);

  if (iterative) {
    ctx.step('A closes. The iterative server finishes with A, then serves B and reads its waiting line.');
    a.socket.end();
  } else {
    ctx.step('B is served at once, while A is still connected.');
  }
  const { text, aClosed: afterA } = await ctx.within(echoB, "B's echo");
  ctx.say(`B got its echo: ${JSON.stringify(text)}`);
  ctx.expectFact(`${mode}-b-served`, "when B's echo came", iterative ? 'after A closed' : 'while A was connected', afterA ? 'after A closed' : 'while A was connected');
}

export const iterativeVsConcurrent: Lab = {
  name: 'iterative-vs-concurrent',
  summary: 'a second client waits behind the first in iterative mode, not in concurrent mode',
  concept:
    "Textbook: an iterative server runs accept → serve → close in one loop, so it serves one client at a time. " +
    'listen() already told the kernel to accept connections, so later clients connect at once (the handshake is ' +
    "the kernel's job) and wait in the queue. A concurrent server (a process, thread or event handler per client) serves all at once. " +
    '(Node accepts every connection at once; lab-server --iterative keeps the waiting ones in its own queue, unread.)',
  async run(ctx) {
    await handshakeWithoutAccept(ctx);
    await twoClients(ctx, true);
    await twoClients(ctx, false);
  },
};
