/**
 * host-crash (Stevens UNP §5.14, "Crashing of Server Host"; TCP/IP Illustrated vol. 1 §14): the
 * server's host vanishes (it crashes, or its cable comes out) while a client is connected. Nothing
 * is sent: no FIN, no RST. The client's kernel learns only from silence: its next segment is never
 * acknowledged, so it retransmits, each time waiting twice as long (exponential backoff of the
 * retransmission timeout, RTO), and after net.ipv4.tcp_retries2 of them gives up and reports
 * ETIMEDOUT to the program. Linux's default, 15, takes about 15 minutes (tcp(7)); the lab sets 2
 * in the client's own network namespace, so it takes seconds.
 *
 * Linux turns tcp_retries2 into a time (tcp_model_timeout in net/ipv4/tcp_timer.c): with the
 * minimum RTO of 200 ms, the time the doubling intervals would take, 200 ms · (2^(2+1) − 1) = 1.4 s.
 * The time is counted from the last new transmission, and the check runs only when the timer
 * fires, at a backoff tick; ticks fall close to the budget, so whether one more retransmission
 * goes depends on a few ms (and on the tail loss probe, RFC 8985, sent before the first timeout).
 * The lab checks what does not depend on them: retransmissions, a wait of at least 1.4 s,
 * ETIMEDOUT, and reports the count. Loopback cannot show this (the kernel at
 * the other end always answers), so the two hosts are network namespaces cabled to a switch (namespaces.ts).
 */
import { readCounter } from '../tcp-states/counters.js';
import type { TcpSocketEntry } from '../tcp-states/parse.js';
import type { Lab } from './lab.js';
import { CLIENT_ADDRESS, connectAcross, namespacesUnavailable, nextOutcome, procRootOf, SERVER_ADDRESS, twoHosts, watchRow } from './namespaces.js';

/** tcp_retries2 in the client's namespace: the retransmissions after which the write gives up. */
const RETRIES = 2;
/** The smallest retransmission timeout (TCP_RTO_MIN), and the RTO of any fast link such as a veth pair. */
const RTO_MIN_MS = 200;
/** When the kernel gives up: tcp_model_timeout with the minimum RTO. */
const GIVE_UP_MS = RTO_MIN_MS * (2 ** (RETRIES + 1) - 1);

/** The client's row while its data goes unacknowledged. */
const retransmitting = (entry: TcpSocketEntry | undefined): string =>
  entry === undefined ? 'no socket' : entry.timer.kind === 'retransmit' && entry.retransmits > 0 ? 'retransmit timer, retransmitting' : `${entry.timer.kind} timer, ${entry.retransmits} retransmissions`;

export const hostCrash: Lab = {
  name: 'host-crash',
  summary: 'the server host vanishes (link down): the client retransmits with backoff, then its write fails with ETIMEDOUT',
  concept:
    'Textbook (Stevens UNP §5.14; TCP/IP Illustrated vol. 1 §14): when the server host crashes, nothing reaches the client: no FIN, no RST. ' +
    'The client can still write: its kernel sends the data, waits for an ACK that never comes, and retransmits, doubling the wait each time ' +
    '(exponential backoff), until it gives up (tcp_retries2) and the socket fails with ETIMEDOUT. Only a write (or keepalive) finds the crash.',
  needs: namespacesUnavailable,
  noLadder: "its packets cross a veth pair between the lab's own network namespaces, not loopback, so the capture on lo does not see them",
  async run(ctx) {
    ctx.step(`Make two hosts, and lower tcp_retries2 to ${RETRIES} in the client's namespace only (the default, 15, gives up after about 15 minutes).`);
    const hosts = await twoHosts(ctx, { client: { 'net.ipv4.tcp_retries2': RETRIES } });
    ctx.say(`ip netns exec ${hosts.client.name} sysctl -w net.ipv4.tcp_retries2=${RETRIES}`);

    ctx.step(`A server listens on ${SERVER_ADDRESS}; the client connects from ${CLIENT_ADDRESS}. Each is a Node program in its host (ip netns exec).`);
    const { server, client: connected } = await connectAcross(ctx, hosts);
    const { peer: client, local, remote } = connected;
    const clientTable = procRootOf(client);
    const serverTable = procRootOf(server);
    await ctx.expectState({ id: 'client-connected', end: 'client', local, remote, predicted: 'ESTABLISHED', procRoot: clientTable });
    await ctx.expectState({ id: 'server-connected', end: 'server', local: remote, remote: local, predicted: 'ESTABLISHED', procRoot: serverTable });

    ctx.step("The server's host vanishes: its cable comes out of the switch (ip link set port-server down). It sends nothing, and receives nothing.");
    await hosts.unplugServer();
    await ctx.expectState({ id: 'client-unaware', end: 'client', local, remote, predicted: 'ESTABLISHED', procRoot: clientTable });
    ctx.say('Nothing told the client: a crashed host sends no FIN and no RST. The connection is half-open.');

    ctx.step(`The client writes a line. Its kernel sends it, gets no ACK, and retransmits (its /proc/net/tcp row, and RetransSegs in its namespace's /proc/net/snmp).`);
    const retransmittedBefore = await readCounter('TcpRetransSegs', clientTable);
    const probesBefore = await readCounter('TcpExtTCPLossProbes', clientTable);
    const writtenAt = Date.now();
    client.send('write hello?');
    await client.next('the client to write');
    // A deadline, not a wait: the give-up comes at a backoff tick past the budget, 3.4 s here, later on a busy machine.
    const ended = nextOutcome(client, 'the write to fail', GIVE_UP_MS * 8);
    // The `retrnsmt` column: timeouts since the last ACK. The gaps between them double: the backoff.
    const backoff = watchRow(clientTable, local, remote, (entry) => (entry.retransmits > 0 ? entry.retransmits : undefined), writtenAt, ended);
    await ctx.expectKernel('client-retransmitting', "the client's row", local, remote, 'retransmit timer, retransmitting', retransmitting, { procRoot: clientTable });
    const outcome = await ended;
    const waitedMs = outcome.at - writtenAt;
    const retransmissions = (await readCounter('TcpRetransSegs', clientTable)) - retransmittedBefore;
    const probes = (await readCounter('TcpExtTCPLossProbes', clientTable)) - probesBefore;
    ctx.report('backoff', 'the retransmission count, as /proc/net/tcp showed it', (await backoff).map(({ value, atMs }) => `${value} at +${(atMs / 1000).toFixed(2)} s`).join(', '));

    ctx.step('The kernel gives up: the socket fails, and the program learns it on its next read or write.');
    ctx.expectFact('client-error', 'the error the client program gets', 'ETIMEDOUT', outcome.code ?? outcome.event);
    ctx.expectFact('retransmissions', "the client namespace's RetransSegs", 'rose', retransmissions > 0 ? 'rose' : 'did not rise');
    ctx.report('retransmitted', 'segments retransmitted (RetransSegs; TCPLossProbes)', `${retransmissions}, of which ${probes} tail loss probe${probes === 1 ? '' : 's'}`);
    ctx.expectFact('gave-up-after', 'when it gave up, after the write', `${GIVE_UP_MS / 1000} s or more`, waitedMs >= GIVE_UP_MS ? `${GIVE_UP_MS / 1000} s or more` : `${(waitedMs / 1000).toFixed(1)} s`);
    ctx.say(`it gave up ${(waitedMs / 1000).toFixed(2)} s after the write. Linux's budget is a time, not a count: ${RTO_MIN_MS} ms · (2^${RETRIES + 1} − 1) = ${GIVE_UP_MS / 1000} s`);
    ctx.say('from the last new transmission, checked only when the timer fires; a tail loss probe (RFC 8985), sent before the first timeout, counts among the retransmissions.');
    await ctx.expectState({ id: 'client-after', end: 'client', local, remote, predicted: 'none', procRoot: clientTable });
    await ctx.expectState({ id: 'server-after', end: 'server', local: remote, remote: local, predicted: 'ESTABLISHED', procRoot: serverTable });
    ctx.say("The server's kernel (still running behind its unplugged cable) holds its end ESTABLISHED: it never heard a thing either.");
  },
};
