/**
 * iterative-vs-concurrent: the tutorial's Perl server serves one client at a time. A second
 * client still connects (the kernel completes the handshake and queues it), but its bytes wait
 * unread in the kernel until the first client leaves. A concurrent server answers both at once.
 */
import { echo } from '../protocols/echo.js';
import type { LabContext } from './context.js';
import { connectEchoPeer } from './echo-clients.js';
import type { Lab } from './lab.js';

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
    ctx.step('A closes. The iterative server finishes with A, then accepts B and reads its waiting line.');
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
    "the kernel's job) and wait in the queue. A concurrent server (a process, thread or event handler per client) serves all at once.",
  async run(ctx) {
    await twoClients(ctx, true);
    await twoClients(ctx, false);
  },
};
