/**
 * socket-pair: two clients of one server port. Every connection has the server's port as its
 * local port; the kernel tells them apart by the whole 4-tuple, and here the two tuples differ
 * only in the client's ephemeral port.
 */
import { readFile } from 'node:fs/promises';
import { formatSocketPair, type Endpoint } from '../framework/endpoint.js';
import { echo } from '../protocols/echo.js';
import { LAB_HOST } from './context.js';
import { connectEchoPeer } from './echo-clients.js';
import type { Lab } from './lab.js';

/** The range the kernel picks ephemeral ports from, for connect() without bind(). */
const PORT_RANGE_FILE = '/proc/sys/net/ipv4/ip_local_port_range';

/** Which of the four members of two socket pairs differ: `remote port` and so on. */
function differences(a: { local: Endpoint; remote: Endpoint }, b: { local: Endpoint; remote: Endpoint }): string {
  const fields = [
    ['local address', a.local.address !== b.local.address],
    ['local port', a.local.port !== b.local.port],
    ['remote address', a.remote.address !== b.remote.address],
    ['remote port', a.remote.port !== b.remote.port],
  ] as const;
  return fields.filter(([, differ]) => differ).map(([name]) => name).join(', ') || 'nothing';
}

export const socketPair: Lab = {
  name: 'socket-pair',
  summary: "two clients to one server port: the 4-tuples differ only in the client's ephemeral port",
  concept:
    'Textbook: a TCP connection is identified by its socket pair {local IP:port, remote IP:port}. A concurrent ' +
    "server's listener and all its connections share one local port; two clients from one host differ only in " +
    'the ephemeral ports the kernel chose for them.',
  async run(ctx) {
    ctx.step('Start an echo server (RFC 862), which serves many clients at once.');
    const { port } = await ctx.startServer({ protocol: echo });
    await ctx.expectState({ id: 'listener', end: 'server', local: { address: LAB_HOST, port }, remote: { address: '0.0.0.0', port: 0 }, predicted: 'LISTEN' });
    ctx.say(`In Stevens' notation the listener is {${LAB_HOST}:${port}, *:*}: no remote end yet.`);

    ctx.step('Connect two clients, and ask the kernel about the server end of each.');
    const one = await connectEchoPeer(ctx, port);
    const two = await connectEchoPeer(ctx, port);
    const peers = [one, two];
    for (const [i, peer] of peers.entries()) {
      await ctx.expectState({ id: `server-${i + 1}`, end: 'server', ...peer.ends.server, predicted: 'ESTABLISHED' });
    }

    ctx.step('Compare the two server-side socket pairs.');
    const [first, second] = [one.ends.server, two.ends.server];
    ctx.say(`${formatSocketPair(first.local, first.remote)} and ${formatSocketPair(second.local, second.remote)}`);
    ctx.expectFact('difference', 'what differs between the two pairs', 'remote port', differences(first, second));

    ctx.step('Send a line on each: the kernel delivers each to its own connection by the whole 4-tuple.');
    for (const [i, peer] of peers.entries()) {
      const text = `client ${i + 1}\n`;
      const echoed = peer.nextEcho(`the echo of client ${i + 1}`);
      peer.socket.write(text);
      ctx.expectFact(`echo-${i + 1}`, `echo on client ${i + 1}'s connection`, JSON.stringify(text), JSON.stringify(await echoed));
    }

    ctx.step(`Where the client ports come from: ${PORT_RANGE_FILE}.`);
    const [low = 0, high = 0] = (await readFile(PORT_RANGE_FILE, 'utf8')).trim().split(/\s+/).map(Number);
    ctx.say(`This kernel picks ephemeral ports from ${low} to ${high} (IANA's dynamic range, RFC 6335 §6, is 49152–65535).`);
    for (const [i, peer] of peers.entries()) {
      const clientPort = peer.ends.client.local.port;
      const inRange = clientPort >= low && clientPort <= high ? `inside ${low}–${high}` : `outside, ${clientPort}`;
      ctx.expectFact(`ephemeral-${i + 1}`, `client ${i + 1}'s port ${clientPort}`, `inside ${low}–${high}`, inRange);
    }
  },
};
