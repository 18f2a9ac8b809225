/**
 * fin-wait-2-timeout (tcp(7), tcp_fin_timeout; TCP/IP Illustrated vol. 1 §13.6; RFC 9293 §3.6):
 * a socket in FIN_WAIT2 has sent its FIN, seen it acknowledged, and waits for the peer's FIN,
 * which may never come (the peer's program never closes). RFC 9293 sets no limit. Linux sets one,
 * but only for an orphan, a socket whose program has closed it (close(), or exit): nobody could
 * read what the peer still sends, so after net.ipv4.tcp_fin_timeout (60 s by default) the kernel
 * drops it. A half-closed socket (shutdown(SHUT_WR)) whose program still holds it has no such
 * timer: the program may still read, and the kernel waits as long as the peer wants.
 *
 * The lab sets tcp_fin_timeout to 2 s in a network namespace of its own, so that the machine's
 * connections keep theirs, and runs a server and two clients inside it, on its loopback.
 */
import { readFile } from 'node:fs/promises';
import type { TcpSocketEntry } from '../tcp-states/parse.js';
import { describeHolder } from './context.js';
import type { Lab } from './lab.js';
import { namespacesUnavailable, privateHost, procRootOf } from './namespaces.js';

/** tcp_fin_timeout in the lab's namespace, in seconds. */
const FIN_TIMEOUT_S = 2;
const HOST = '127.0.0.1';

/** The timer a FIN_WAIT2 row shows: an orphan's is the time-wait timer, at most tcp_fin_timeout. */
const finTimer = (entry: TcpSocketEntry | undefined): string => {
  if (entry === undefined) return 'no socket';
  if (entry.timer.kind === 'none') return 'no timer';
  return entry.timer.kind === 'time-wait' && entry.timer.remainingMs <= FIN_TIMEOUT_S * 1000 ? `timer ≤ ${FIN_TIMEOUT_S} s` : `${entry.timer.kind} timer, ${entry.timer.remainingMs} ms`;
};

export const finWait2Timeout: Lab = {
  name: 'fin-wait-2-timeout',
  summary: 'an orphaned FIN_WAIT2 is dropped after tcp_fin_timeout; a half-closed socket still held stays in FIN_WAIT2',
  concept:
    'Textbook (tcp(7); TCP/IP Illustrated vol. 1 §13.6): FIN_WAIT2 waits for the peer\'s FIN, which a peer that never closes never sends. ' +
    'Linux gives up on it only when no program holds the socket (it was closed, or its program exited): after tcp_fin_timeout the ' +
    'orphan is dropped. A socket that was only shut down for writing, shutdown(SHUT_WR), is still held, may still read, and waits forever.',
  needs: namespacesUnavailable,
  noLadder: "its packets cross the loopback of the lab's own network namespace, not the machine's lo, so the capture does not see them",
  async run(ctx) {
    const machine = (await readFile('/proc/sys/net/ipv4/tcp_fin_timeout', 'utf8')).trim();
    ctx.step(`Make a host of our own (a network namespace) with tcp_fin_timeout ${FIN_TIMEOUT_S} s; this machine's stays ${machine} s.`);
    const host = await privateHost(ctx, { 'net.ipv4.tcp_fin_timeout': FIN_TIMEOUT_S });
    ctx.say(`ip netns add ${host.name}; ip netns exec ${host.name} sysctl -w net.ipv4.tcp_fin_timeout=${FIN_TIMEOUT_S}`);

    ctx.step('A server that never closes (it keeps every connection open) listens; two clients connect.');
    const { peer: server, port } = await host.listen(ctx, HOST, 0, 'the server');
    const heldEnd = await host.connect(ctx, HOST, port, 'the half-closing client');
    const goneEnd = await host.connect(ctx, HOST, port, 'the closing client');
    const [held, gone] = [heldEnd.peer, goneEnd.peer];
    const table = procRootOf(server);

    ctx.step("Client 1 calls end(), shutdown(SHUT_WR): its FIN, and it keeps its socket. Client 2's program exits: the kernel closes its socket, FIN.");
    held.send('end');
    await held.next('the half-close');
    await ctx.expectState({ id: 'held-state', end: 'client', local: heldEnd.local, remote: heldEnd.remote, predicted: 'FIN_WAIT2', procRoot: table });
    gone.send('exit');
    await ctx.expectState({ id: 'orphan-state', end: 'client', local: goneEnd.local, remote: goneEnd.remote, predicted: 'FIN_WAIT2', procRoot: table });
    await ctx.expectState({ id: 'held-server', end: 'server', local: heldEnd.remote, remote: heldEnd.local, predicted: 'CLOSE_WAIT', procRoot: table });
    const closedAt = Date.now();
    await ctx.expectKernel('held-holder', "client 1's FIN_WAIT2 socket held by", heldEnd.local, heldEnd.remote, 'an open descriptor', describeHolder, { procRoot: table });
    await ctx.expectKernel('orphan-holder', "client 2's FIN_WAIT2 socket held by", goneEnd.local, goneEnd.remote, 'no descriptor (orphan)', describeHolder, { procRoot: table });
    await ctx.expectKernel('held-timer', "client 1's timer", heldEnd.local, heldEnd.remote, 'no timer', finTimer, { procRoot: table });
    await ctx.expectKernel('orphan-timer', "client 2's timer", goneEnd.local, goneEnd.remote, `timer ≤ ${FIN_TIMEOUT_S} s`, finTimer, { procRoot: table });
    ctx.say('The server never closes: neither client will ever get its FIN.');

    ctx.step(`Wait for tcp_fin_timeout (${FIN_TIMEOUT_S} s): the kernel drops the orphan. The socket still held stays.`);
    await ctx.expectState({ id: 'orphan-dropped', end: 'client', local: goneEnd.local, remote: goneEnd.remote, predicted: 'none', procRoot: table });
    ctx.say(`client 2's socket went ${((Date.now() - closedAt) / 1000).toFixed(1)} s after the lab saw it orphaned.`);
    await ctx.expectState({ id: 'held-after', end: 'client', local: heldEnd.local, remote: heldEnd.remote, predicted: 'FIN_WAIT2', procRoot: table });
    await ctx.expectKernel('held-timer-after', "client 1's timer", heldEnd.local, heldEnd.remote, 'no timer', finTimer, { procRoot: table });
    ctx.say('Client 1 has been in FIN_WAIT2 longer than tcp_fin_timeout, and no timer runs: it waits for as long as its program holds it.');
  },
};
