/**
 * duplicate-bind: what SO_REUSEADDR does *not* allow. Two TCP listeners on the same address
 * and port always conflict; the same port on two different local addresses does not. A
 * wildcard beside a specific address is where systems differ: this lab reports what this
 * kernel does.
 *
 * It uses node:net listeners directly, not LabServer: the lesson is bind(2) itself.
 */
import net from 'node:net';
import { LAB_HOST, type LabContext } from './context.js';
import type { Lab } from './lab.js';

/** Another loopback address: on Linux the whole of 127.0.0.0/8 reaches the loopback interface. */
const SECOND_LOOPBACK = '127.0.0.2';
const WILDCARD = '0.0.0.0';
const NO_PEER = { address: WILDCARD, port: 0 };

/** listen() on host:port; resolves with the bound port, or with the error code as text. */
async function tryListen(ctx: LabContext, host: string, port: number): Promise<{ outcome: string; port: number }> {
  const listener = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ host, port }, resolve);
    });
  } catch (error) {
    return { outcome: (error as NodeJS.ErrnoException).code ?? String(error), port };
  }
  ctx.defer(() => new Promise((resolve) => listener.close(resolve)));
  const bound = listener.address() as net.AddressInfo;
  return { outcome: 'listening', port: bound.port };
}

export const duplicateBind: Lab = {
  name: 'duplicate-bind',
  summary: 'same address and port twice: EADDRINUSE even with SO_REUSEADDR; two local addresses: fine',
  concept:
    'Textbook: TCP never allows two listeners on the same IP address and port, even with SO_REUSEADDR. What ' +
    'SO_REUSEADDR does allow is the same port on different local addresses (IP aliases), with a wildcard ' +
    'bind catching the rest; some systems refuse a wildcard beside a specific bind.',
  async run(ctx) {
    ctx.step(`Listen on ${LAB_HOST}, on a port the kernel picks (Node sets SO_REUSEADDR).`);
    const first = await tryListen(ctx, LAB_HOST, 0);
    const port = first.port;
    await ctx.expectState({ id: 'first', end: 'server', local: { address: LAB_HOST, port }, remote: NO_PEER, predicted: 'LISTEN' });

    ctx.step(`Listen on ${LAB_HOST}:${port} a second time.`);
    const second = await tryListen(ctx, LAB_HOST, port);
    ctx.expectFact('same-address', `second listener on ${LAB_HOST}:${port}`, 'EADDRINUSE', second.outcome);

    ctx.step(`Listen on the same port at another loopback address, ${SECOND_LOOPBACK}:${port}.`);
    const other = await tryListen(ctx, SECOND_LOOPBACK, port);
    ctx.expectFact('other-address', `listener on ${SECOND_LOOPBACK}:${port}`, 'listening', other.outcome);
    if (other.outcome === 'listening') {
      await ctx.expectState({ id: 'other-listener', end: 'server', local: { address: SECOND_LOOPBACK, port }, remote: NO_PEER, predicted: 'LISTEN' });
    }

    ctx.step(`A wildcard beside specific addresses: listen on ${WILDCARD}:${port} (every local address).`);
    const wildcardAfter = await tryListen(ctx, WILDCARD, port);
    ctx.report('wildcard-after-specific', `wildcard ${WILDCARD}:${port} after ${LAB_HOST}:${port}`, wildcardAfter.outcome);

    ctx.step('The other order: a wildcard listener first, then a specific address on its port.');
    const wildcard = await tryListen(ctx, WILDCARD, 0);
    ctx.say(`listening on *:${wildcard.port}`);
    const specificAfter = await tryListen(ctx, LAB_HOST, wildcard.port);
    ctx.report('specific-after-wildcard', `${LAB_HOST}:${wildcard.port} after wildcard *:${wildcard.port}`, specificAfter.outcome);
    const refused = wildcardAfter.outcome === 'EADDRINUSE' && specificAfter.outcome === 'EADDRINUSE';
    ctx.say(
      refused
        ? 'This kernel refuses both orders while the first socket listens: a wildcard overlaps every specific address, a conflict even with SO_REUSEADDR.'
        : 'This kernel allows the overlap: a connection goes to the most specific listener, the wildcard takes the rest.',
    );
  },
};
