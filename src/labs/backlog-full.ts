/**
 * backlog-full (Stevens UNP §4.5, listen; TCP/IP Illustrated vol. 1 §18.11, "Incoming Connection
 * Request Queue"): the kernel completes handshakes for a listener whether or not its program calls
 * accept(), and queues the connections; listen()'s backlog caps that queue. When it is full, a new
 * SYN is dropped, not refused: no SYN,ACK, no RST. The client's connect() does not fail; its SYN
 * waits in SYN_SENT and is retransmitted when its timer fires (RFC 6298 §2: first after 1 s), and
 * once the program accepts and makes room, the retransmitted SYN gets in. UNP's reason: a full queue
 * is taken for a passing condition, and an RST would make the client give up.
 *
 * What Linux does, checked here: the queue holds backlog + 1 connections (sk_acceptq_is_full tests
 * `>`, not `>=`); a SYN beyond it is dropped in tcp_conn_request and counted in ListenOverflows and
 * ListenDrops (/proc/net/netstat, `nstat`), for the whole machine. The LISTEN row's Recv-Q in
 * /proc/net/tcp is the queue's length. Clients connect one at a time, each after the previous
 * one's handshake: two handshakes racing for the last place can end with a client that believes it
 * is ESTABLISHED while the listener drops its ACK, which this lab leaves out.
 *
 * Node accepts every connection as soon as it can, so the listener is python3 (python.ts).
 */
import net from 'node:net';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatEndpoint, formatSocketPair, sameEndpoint, socketEnds, type Endpoint } from '../framework/endpoint.js';
import { readCounter, waitForCounterAbove } from '../tcp-states/counters.js';
import { readTcpSockets } from '../tcp-states/read.js';
import { POLL_INTERVAL_MS, STATE_DEADLINE_MS } from '../tcp-states/wait.js';
import { bothEnds, LAB_HOST, type ConnectionEnds, type LabContext } from './context.js';
import type { Lab } from './lab.js';
import { reportSkipped, startPython } from './python.js';
import { capturedConnection } from './wire.js';

/** listen()'s backlog: the smallest that still queues, so that a few clients fill it. */
const BACKLOG = 1;
/** Linux queues one more than the backlog. */
const QUEUED = BACKLOG + 1;

/**
 * A listener that does not accept until its input ends; then it accepts one connection, says
 * whose, and holds everything until the lab ends (it is killed then).
 */
const ACCEPTS_ON_EOF = `
import json, signal, socket, sys
listener = socket.socket(); listener.bind((sys.argv[1], 0)); listener.listen(int(sys.argv[2]))
print(json.dumps({'port': listener.getsockname()[1]}), flush=True)
sys.stdin.read()
conn, peer = listener.accept()
print(json.dumps({'accepted': list(peer)}), flush=True)
signal.pause()
`;

/** The kernel's count of SYNs (and handshakes) a listener dropped because its accept queue was full. */
const LISTEN_OVERFLOWS = 'TcpExtListenOverflows';

/**
 * How long a SYN-dropped client may wait for its retransmitted SYN to get in: its SYN goes again
 * 1 s after the first, then 2 s after that, and so on; the lab makes room within a few seconds.
 */
const RETRY_DEADLINE_MS = 10_000;

/** The accept queue, as the LISTEN row shows it. */
const acceptQueue = (ctx: LabContext, id: string, listener: Endpoint, predicted: number): Promise<unknown> =>
  ctx.expectKernel(id, `the listener's accept queue (Recv-Q), backlog ${BACKLOG}`, listener, { address: '0.0.0.0', port: 0 }, `Recv-Q ${predicted}`, (entry) => `Recv-Q ${entry?.rxQueue ?? 'none'}`);

/** A client that connects and waits for its handshake; destroyed when the lab ends. */
async function connectClient(ctx: LabContext, port: number, what: string): Promise<ConnectionEnds> {
  const socket = net.connect({ host: LAB_HOST, port });
  ctx.defer(() => socket.destroy());
  await ctx.until(socket, 'connect', what);
  return bothEnds(socketEnds(socket).local, { address: LAB_HOST, port });
}

/**
 * The one client in SYN_SENT towards `listener`, found in the kernel's table (Node tells a socket's
 * local port only once it has connected, and this one has not), or undefined after STATE_DEADLINE_MS.
 */
async function synSentClient(listener: Endpoint): Promise<Endpoint | undefined> {
  const start = performance.now();
  for (;;) {
    const rows = await readTcpSockets({ port: listener.port });
    const row = rows.find((entry) => entry.state === 'SYN_SENT' && sameEndpoint(entry.remote, listener));
    if (row !== undefined || performance.now() - start >= STATE_DEADLINE_MS) return row?.local;
    await sleep(POLL_INTERVAL_MS);
  }
}

export const backlogFull: Lab = {
  name: 'backlog-full',
  summary: 'a listener that does not accept: the kernel queues backlog + 1 handshakes, then drops SYNs; clients wait in SYN_SENT and retry',
  concept:
    'Textbook (Stevens UNP §4.5; TCP/IP Illustrated vol. 1 §18.11): the kernel completes handshakes on its own and queues the ' +
    "connections until the program accepts them; listen()'s backlog caps the queue. When the queue is full, a new SYN is ignored: " +
    "no SYN,ACK and no RST, since the condition is taken to pass. The client's kernel retransmits its SYN (after 1 s, then 2 s " +
    'more, RFC 6298), and once the program accepts, the retransmitted SYN gets in.',
  async run(ctx) {
    ctx.step(`Start a listener (python3) with listen(${BACKLOG}) that does not call accept().`);
    const started = await startPython<{ port: number }>(ctx, ACCEPTS_ON_EOF, [LAB_HOST, String(BACKLOG)]);
    if (!started.ran) return reportSkipped(ctx, 'listener', 'a listener that does not accept', started.why);
    const listenerProcess = started.value;
    const listener = { address: LAB_HOST, port: listenerProcess.ready.port };
    ctx.watchPort(listener.port);
    ctx.say(`listening on ${formatEndpoint(listener)}, backlog ${BACKLOG}; net.ipv4.tcp_abort_on_overflow = ${await abortOnOverflow()}`);

    ctx.step(`Clients 1 to ${QUEUED} connect, one after the other. Nothing is accepted.`);
    const queued: ConnectionEnds[] = [];
    for (let n = 1; n <= QUEUED; n++) {
      const ends = await connectClient(ctx, listener.port, `client ${n} to connect`);
      queued.push(ends);
      ctx.say(`client ${n}: ${formatSocketPair(ends.client.local, ends.client.remote)}, connect() returned`);
      await ctx.expectState({ id: `queued-${n}`, end: 'server', ...ends.server, predicted: 'ESTABLISHED' });
    }
    await acceptQueue(ctx, 'accept-queue', listener, QUEUED);
    ctx.say(`The handshakes were the kernel's: ${QUEUED} connections, ESTABLISHED, wait in the accept queue (Linux keeps backlog + 1).`);

    ctx.step(`Client ${QUEUED + 1} connects: the queue is full.`);
    const overflowsBefore = await readCounter(LISTEN_OVERFLOWS);
    const lateSocket = net.connect({ host: LAB_HOST, port: listener.port });
    ctx.defer(() => lateSocket.destroy());
    const connectedAt = performance.now();
    const lateConnected = ctx.until(lateSocket, 'connect', `client ${QUEUED + 1}'s retransmitted SYN to get in`, RETRY_DEADLINE_MS).then(() => performance.now() - connectedAt);
    lateConnected.catch(() => undefined); // awaited in the next step; a failure there is the lab's
    const waiting = await synSentClient(listener);
    if (waiting === undefined) {
      ctx.expectFact('dropped-client', `client ${QUEUED + 1}`, 'SYN_SENT', 'no socket in SYN_SENT');
      return;
    }
    const late = bothEnds(waiting, listener);
    ctx.say(`client ${QUEUED + 1}: ${formatSocketPair(late.client.local, late.client.remote)}`);
    await ctx.expectState({ id: 'dropped-client', end: 'client', ...late.client, predicted: 'SYN_SENT' });
    await ctx.expectKernel('dropped-timer', `client ${QUEUED + 1}'s timer`, late.client.local, late.client.remote, 'retransmit', (entry) => entry?.timer.kind ?? 'no socket');
    await ctx.expectState({ id: 'dropped-server', end: 'server', ...late.server, predicted: 'none' });
    const overflowsAfter = await waitForCounterAbove(LISTEN_OVERFLOWS, overflowsBefore);
    ctx.expectFact('listen-overflows', `SYNs dropped on a full queue (${LISTEN_OVERFLOWS}, all listeners)`, 'rose', overflowsAfter > overflowsBefore ? 'rose' : 'unchanged');
    await acceptQueue(ctx, 'accept-queue-full', listener, QUEUED);
    ctx.say('No SYN,ACK, no RST: the listener has no socket for the client at all (not even SYN_RECV), and the client waits to send its SYN again.');

    ctx.step('The program accepts one connection: there is room again, and the next retransmitted SYN gets in.');
    listenerProcess.endInput();
    const { accepted } = await listenerProcess.next<{ accepted: [string, number] }>('the listener to accept');
    const first = queued[0]!.client.local;
    ctx.expectFact('accepted', 'the connection accept() returned', 'client 1 (the oldest)', accepted[1] === first.port ? 'client 1 (the oldest)' : `port ${accepted[1]}`);
    const waitedMs = await lateConnected;
    await ctx.expectState({ id: 'retried-client', end: 'client', ...late.client, predicted: 'ESTABLISHED' });
    await acceptQueue(ctx, 'accept-queue-after', listener, QUEUED);
    // The retransmission timer's first value is RFC 6298's 1 s (Linux's TCP_TIMEOUT_INIT), doubling after each.
    ctx.report('retry-after', `client ${QUEUED + 1}'s connect() returned after`, `${(waitedMs / 1000).toFixed(1)} s: its SYN was sent again when the retransmission timer fired`);
    await onTheWire(ctx, late);
  },
};

/** net.ipv4.tcp_abort_on_overflow: 1 makes Linux answer a handshake it cannot queue with RST (tcp(7)); 0, the default, drops it. */
async function abortOnOverflow(): Promise<string> {
  return (await readFile('/proc/sys/net/ipv4/tcp_abort_on_overflow', 'utf8').catch(() => 'unknown')).trim();
}

/** With a capture: the late client's SYNs, sent until one was answered. */
async function onTheWire(ctx: LabContext, late: ConnectionEnds): Promise<void> {
  const wire = await capturedConnection(ctx, late, 'wire-syns', `client ${QUEUED + 1}'s SYNs, from packets`, { ended: false });
  if (wire === undefined) return;
  const handshake = wire.steps.slice(0, wire.steps.findIndex((step) => step.from === 'server'));
  const syns = handshake.filter((step) => step.from === 'client').length;
  ctx.expectFact('wire-syns', `SYNs client ${QUEUED + 1} sent before the SYN,ACK`, 'more than one', syns > 1 ? 'more than one' : String(syns));
}
