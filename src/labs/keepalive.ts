/**
 * keepalive (TCP/IP Illustrated vol. 1 §17, "TCP Keepalive"; RFC 1122 §4.2.3.6; Stevens UNP §7.5,
 * SO_KEEPALIVE): a peer that vanishes while the connection is idle is never noticed by a program
 * that does not write: TCP sends nothing on an idle connection, so nothing can fail. SO_KEEPALIVE
 * asks the kernel to probe: after tcp_keepalive_time of silence it sends a segment the peer must
 * acknowledge (an old sequence number, no data), then one every tcp_keepalive_intvl, and after
 * tcp_keepalive_probes unanswered ones it gives up: the socket fails with ETIMEDOUT. Linux's
 * defaults (7200 s, 75 s, 9) find a dead peer after 2 h 11 min; the lab sets 1 s, 1 s, 3 in the
 * client's network namespace (all three are per namespace), so it takes about 4 s.
 *
 * In Node, socket.setKeepAlive(true) with no delay sets SO_KEEPALIVE alone, as a C program would,
 * and the sysctls decide. With a delay, libuv (since 1.35) also sets TCP_KEEPIDLE to it and
 * TCP_KEEPINTVL 1 s and TCP_KEEPCNT 10 on the socket, which override the sysctls.
 */
import type { TcpSocketEntry } from '../tcp-states/parse.js';
import type { Lab } from './lab.js';
import { CLIENT_ADDRESS, namespacesUnavailable, nextOutcome, procRootOf, SERVER_ADDRESS, twoHosts, watchRow } from './namespaces.js';

/** The three sysctls, for the client's namespace: seconds idle, seconds between probes, probes. */
const IDLE_S = 1;
const INTERVAL_S = 1;
const PROBES = 3;

/** The timer a row shows, for a person. */
const timerOf = (entry: TcpSocketEntry | undefined): string => (entry === undefined ? 'no socket' : entry.timer.kind === 'none' ? 'no timer' : `${entry.timer.kind} timer`);

export const keepalive: Lab = {
  name: 'keepalive',
  summary: 'a peer that vanishes silently is found by TCP keepalive probes (ETIMEDOUT); without keepalive the connection stays ESTABLISHED',
  concept:
    'Textbook (TCP/IP Illustrated vol. 1 §17; RFC 1122 §4.2.3.6; Stevens UNP §7.5): an idle TCP connection sends nothing, so a peer that ' +
    'vanishes (crash, cable, power) is not noticed until the program writes. With SO_KEEPALIVE the kernel probes an idle connection: after ' +
    'tcp_keepalive_time it sends a probe, then one every tcp_keepalive_intvl, and after tcp_keepalive_probes unanswered ones the socket fails with ETIMEDOUT.',
  needs: namespacesUnavailable,
  noLadder: "its packets cross a veth pair between the lab's own network namespaces, not loopback, so the capture on lo does not see them",
  async run(ctx) {
    ctx.step(`Make two hosts; in the client's namespace, keepalive after ${IDLE_S} s idle, a probe every ${INTERVAL_S} s, ${PROBES} probes (the defaults: 7200 s, 75 s, 9).`);
    const hosts = await twoHosts(ctx, {
      client: { 'net.ipv4.tcp_keepalive_time': IDLE_S, 'net.ipv4.tcp_keepalive_intvl': INTERVAL_S, 'net.ipv4.tcp_keepalive_probes': PROBES },
    });
    ctx.say(`ip netns exec ${hosts.client.name} sysctl -w net.ipv4.tcp_keepalive_time=${IDLE_S} net.ipv4.tcp_keepalive_intvl=${INTERVAL_S} net.ipv4.tcp_keepalive_probes=${PROBES}`);

    ctx.step(`Two clients connect from ${CLIENT_ADDRESS} to a server on ${SERVER_ADDRESS}: one calls setKeepAlive(true) (SO_KEEPALIVE), the other does not. Both stay silent.`);
    const { port } = await hosts.server.listen(ctx, SERVER_ADDRESS, 0, 'the server');
    // No delay: SO_KEEPALIVE alone, so that the namespace's sysctls decide (see above).
    const withKeepalive = await hosts.client.connect(ctx, SERVER_ADDRESS, port, 'the client with keepalive', 0);
    const without = await hosts.client.connect(ctx, SERVER_ADDRESS, port, 'the client without keepalive');
    const clientTable = procRootOf(withKeepalive.peer);
    await ctx.expectKernel('keepalive-timer', "the keepalive client's row", withKeepalive.local, withKeepalive.remote, 'keepalive timer', timerOf, { procRoot: clientTable });
    await ctx.expectKernel('silent-timer', "the other client's row", without.local, without.remote, 'no timer', timerOf, { procRoot: clientTable });
    ctx.say('While the server is there, it answers each probe, and the probe count (the timeout column) goes back to 0.');

    ctx.step("The server's host vanishes: its cable comes out of the switch. Nobody writes. Watch the keepalive client's unanswered probes (/proc/net/tcp's timeout column).");
    const unpluggedAt = Date.now();
    await hosts.unplugServer();
    const ended = nextOutcome(withKeepalive.peer, 'the keepalive client to fail', (IDLE_S + INTERVAL_S * (PROBES + 2)) * 1000 * 2);
    const probes = watchRow(clientTable, withKeepalive.local, withKeepalive.remote, (entry) => (entry.probes > 0 ? entry.probes : undefined), unpluggedAt, ended);
    const outcome = await ended;
    const seen = await probes;
    ctx.report('probes', 'unanswered probes, as /proc/net/tcp showed them', seen.map(({ value, atMs }) => `${value} at +${(atMs / 1000).toFixed(2)} s`).join(', ') || 'none seen');

    ctx.step('The kernel gives up on the keepalive client; the other client, at the same moment:');
    ctx.expectFact('keepalive-error', 'the error the keepalive client gets', 'ETIMEDOUT', outcome.code ?? outcome.event);
    ctx.expectFact('keepalive-probes', 'unanswered probes before it gave up', String(PROBES), String(seen.at(-1)?.value ?? 0));
    ctx.say(`it gave up ${((outcome.at - unpluggedAt) / 1000).toFixed(2)} s after the cable came out: ${IDLE_S} s idle (counted from the last answer) + ${PROBES} × ${INTERVAL_S} s.`);
    await ctx.expectState({ id: 'keepalive-after', end: 'client', local: withKeepalive.local, remote: withKeepalive.remote, predicted: 'none', procRoot: clientTable });
    await ctx.expectState({ id: 'silent-after', end: 'client', local: without.local, remote: without.remote, predicted: 'ESTABLISHED', procRoot: clientTable });
    ctx.say('Without keepalive, nothing was sent and nothing failed: the connection to a host that is gone stays ESTABLISHED for as long as nobody writes.');
  },
};
