/**
 * host-reboot (Stevens UNP §5.15, "Crashing and Rebooting of Server Host"; RFC 9293 §3.5.2,
 * "Reset Generation"): the server's host crashes and boots again while a client is connected, and
 * the client has sent nothing meanwhile. The rebooted host has the same address, but its TCP
 * stack is new: it knows no connection. The client's next segment arrives for a connection that
 * does not exist, and a segment that does not belong to any connection is answered with RST. The
 * client's program gets ECONNRESET: the crash is found the moment the client speaks, with no
 * retransmissions and no timeout (compare `host-crash`).
 *
 * The reboot is the server's network namespace deleted (its program killed, every socket gone
 * without a word) and made again with the same address and hardware address, in namespaces.ts.
 * The server program starts again too and listens on the same port: a listener does not make the
 * old connection known, since a connection is its socket pair, and nobody on the new host has it.
 */
import { readCounter } from '../tcp-states/counters.js';
import type { Lab } from './lab.js';
import { CLIENT_ADDRESS, connectAcross, namespacesUnavailable, nextOutcome, procRootOf, SERVER_ADDRESS, twoHosts } from './namespaces.js';

export const hostReboot: Lab = {
  name: 'host-reboot',
  summary: 'the server host reboots (a new TCP stack, same address): the client\'s next segment draws an RST, ECONNRESET',
  concept:
    'Textbook (Stevens UNP §5.15; RFC 9293 §3.5.2): a host that reboots has forgotten every connection. When the client, which knows nothing ' +
    "of the crash, next sends on its connection, the rebooted server's TCP finds no socket for that socket pair and answers with RST: " +
    'the client sees ECONNRESET at once, not a timeout.',
  needs: namespacesUnavailable,
  noLadder: "its packets cross a veth pair between the lab's own network namespaces, not loopback, so the capture on lo does not see them",
  async run(ctx) {
    ctx.step('Make two hosts.');
    const hosts = await twoHosts(ctx);

    ctx.step(`A server listens on ${SERVER_ADDRESS}; the client connects from ${CLIENT_ADDRESS}. Each is a Node program in its host (ip netns exec).`);
    const { server, port, client: connected } = await connectAcross(ctx, hosts);
    const { peer: client, local, remote } = connected;
    const clientTable = procRootOf(client);
    await ctx.expectState({ id: 'client-connected', end: 'client', local, remote, predicted: 'ESTABLISHED', procRoot: clientTable });
    await ctx.expectState({ id: 'server-connected', end: 'server', local: remote, remote: local, predicted: 'ESTABLISHED', procRoot: procRootOf(server) });

    ctx.step('The server host crashes and reboots: its namespace is deleted, with its program and sockets, and made again with the same address. The server program starts again, on the same port.');
    const crashed = hosts.server.name;
    await hosts.rebootServer(server);
    const { peer: rebooted } = await hosts.server.listen(ctx, SERVER_ADDRESS, port, 'the restarted server');
    const serverTable = procRootOf(rebooted);
    ctx.say(`ip netns del ${crashed}; ip netns add ${hosts.server.name}: the same ${SERVER_ADDRESS}, a new kernel stack, listening on port ${port} again`);
    await ctx.expectState({ id: 'server-rebooted', end: 'server', local: remote, remote: local, predicted: 'none', procRoot: serverTable });
    await ctx.expectState({ id: 'client-unaware', end: 'client', local, remote, predicted: 'ESTABLISHED', procRoot: clientTable });
    ctx.say('The client was told nothing: the crash sent no FIN and no RST, and it has sent nothing since.');

    ctx.step("The client writes a line. The rebooted server's TCP has no socket for this pair, so it answers with RST.");
    const resetsBefore = await readCounter('TcpOutRsts', serverTable);
    client.send('write hello again');
    const outcome = await nextOutcome(client, 'the reset');
    ctx.expectFact('client-error', 'the error the client program gets', 'ECONNRESET', outcome.code ?? outcome.event);
    const resets = (await readCounter('TcpOutRsts', serverTable)) - resetsBefore;
    ctx.expectFact('server-reset', "the rebooted server's OutRsts (its /proc/net/snmp)", 'rose', resets > 0 ? 'rose' : 'did not rise');
    await ctx.expectState({ id: 'client-after', end: 'client', local, remote, predicted: 'none', procRoot: clientTable });
    ctx.say('No retransmission, no timeout: the reset ended the connection the moment the client spoke (host-crash shows the host that never answers).');
  },
};
