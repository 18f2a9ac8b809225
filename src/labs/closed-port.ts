/**
 * closed-port: what a client hears from a port nobody serves.
 *
 * TCP: a SYN that finds no listener is answered by the kernel itself, with RST (RFC 9293
 * §3.10.7.1: a segment for a connection that does not exist draws a reset, <SEQ=0><ACK=SEG.SEQ+
 * SEG.LEN><CTL=RST,ACK> for a SYN), and connect() fails with ECONNREFUSED (tcp_reset in
 * net/ipv4/tcp_input.c: a reset in SYN_SENT). No program is involved, and no retry.
 *
 * UDP has no handshake and no reset: a datagram to a port with no socket is answered with an ICMP
 * port unreachable (RFC 1122 §3.2.2.1; Linux counts the datagram in UdpNoPorts). Sockets report
 * it only to a *connected* UDP socket, as ECONNREFUSED on its next call (Stevens UNP §8.9, §8.11:
 * an unconnected socket could not tell which of its destinations refused, so it hears nothing).
 *
 * "A port nobody listens on" must be one nobody else can take while the lab uses it: each is held
 * by a socket of the lab's that takes no connection and no datagram (see below).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { flagNames } from '../capture/segment.js';
import { formatSocketPair } from '../framework/endpoint.js';
import { readCounter, waitForCounterAbove } from '../tcp-states/counters.js';
import { readTcpSockets } from '../tcp-states/read.js';
import { bothEnds, LAB_HOST, type LabContext } from './context.js';
import type { Lab } from './lab.js';
import { reportSkipped, startPython } from './python.js';
import { capturedConnection } from './wire.js';

/**
 * The TCP port holder and a C client, in python3 (Node cannot bind a TCP socket without listening).
 * A socket that is bound and never listens holds its port (no one else can bind it), and is in
 * neither of the kernel's tables a SYN is looked up in, listeners and connections: to a SYN, the
 * port is closed. It prints the port and waits on stdin while the lab's Node client tries it;
 * then a plain client connects too, bound first so that its own port is known after the failure.
 */
const HOLDER = `
import errno, json, socket, sys
host = sys.argv[1]
holder = socket.socket(); holder.bind((host, 0))
print(json.dumps({'port': holder.getsockname()[1]}), flush=True)
sys.stdin.read()
client = socket.socket(); client.bind((host, 0))
error = client.connect_ex(holder.getsockname())
print(json.dumps({'local': list(client.getsockname()), 'connect': errno.errorcode.get(error, 'connected')}), flush=True)
`;

/** What the UDP clients send. */
const PING = 'ping';
/** What the unconnected client sends itself, after its ping has been refused. */
const MARKER = 'marker';

/** A counter of the kernel's, read now, and a fact: did it rise since (waiting for it, up to a deadline)? */
async function counterRises(ctx: LabContext, name: string): Promise<(id: string, subject: string) => Promise<void>> {
  const before = await readCounter(name);
  return async (id, subject) => {
    const after = await waitForCounterAbove(name, before);
    ctx.expectFact(id, `${subject} (${name})`, 'rose', after > before ? 'rose' : 'unchanged');
  };
}

/** An error as the lab shows it: `ECONNREFUSED (from connect())`. */
const describeError = (error: NodeJS.ErrnoException): string => `${error.code ?? error.message} (from ${error.syscall ?? '?'}())`;

/** A UDP socket on 127.0.0.1, a port the kernel picks, closed when the lab ends. */
async function udpSocket(ctx: LabContext): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  socket.bind(0, LAB_HOST);
  await ctx.until(socket, 'listening', 'a UDP socket to bind');
  ctx.defer(() => socket.close());
  return socket;
}

/** What a UDP socket hears next, a datagram or an error; ask before it can come. */
function nextHeard(socket: dgram.Socket): Promise<string> {
  return new Promise((resolve) => {
    socket.once('message', (message: Buffer) => resolve(`a datagram, ${JSON.stringify(message.toString())}`));
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(describeError(error)));
  });
}

/** Sends `text` and resolves with what send() said: `sent`, or its error. */
const send = (socket: dgram.Socket, text: string, port?: number): Promise<string> =>
  new Promise((resolve) => {
    const done = (error: Error | null): void => resolve(error === null ? 'sent' : describeError(error));
    if (port === undefined) socket.send(text, done);
    else socket.send(text, port, LAB_HOST, done);
  });

export const closedPort: Lab = {
  name: 'closed-port',
  summary: 'nobody listens: a SYN draws RST (ECONNREFUSED); a UDP datagram draws ICMP port unreachable, heard only by a connected socket',
  concept:
    'Textbook (RFC 9293 §3.10.7.1; Stevens UNP §8.9, §8.11): a TCP segment for a port with no listener is answered by the ' +
    "kernel with RST, and connect() fails with ECONNREFUSED at once. UDP has no reset: the kernel answers a datagram to a " +
    'port with no socket with an ICMP port unreachable, and the sockets API reports it, as ECONNREFUSED on the next call, ' +
    'only to a connected UDP socket; an unconnected one hears nothing.',
  async run(ctx) {
    await tcp(ctx);
    await udp(ctx);
  },
};

async function tcp(ctx: LabContext): Promise<void> {
  ctx.step("Hold a TCP port that nobody listens on (python3): bind() to a port the kernel picks, and never listen().");
  const started = await startPython<{ port: number }>(ctx, HOLDER, [LAB_HOST]);
  if (!started.ran) return reportSkipped(ctx, 'tcp', 'a SYN to a port nobody listens on', started.why);
  const holder = started.value;
  const { port } = holder.ready;
  ctx.watchPort(port);
  const onPort = (await readTcpSockets({ port })).filter((entry) => entry.local.address === LAB_HOST && entry.local.port === port);
  ctx.expectFact('tcp-table', `/proc/net/tcp for ${LAB_HOST}:${port}`, 'no socket', onPort.map((entry) => entry.state).join(', ') || 'no socket');
  // Node's listeners set SO_REUSEADDR; the holder did not, and Linux lets a bind through only when both did.
  const probe = net.createServer();
  const taken = await new Promise<string>((resolve) => {
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    probe.listen({ host: LAB_HOST, port }, () => resolve('listening'));
  });
  probe.close();
  ctx.expectFact('tcp-taken', `another socket's listen() on ${LAB_HOST}:${port}`, 'EADDRINUSE', taken);
  ctx.say('The bound socket holds the port, so no other program can take it, but it is neither a listener nor a connection:');
  ctx.say('the table lists only those, and a SYN is looked up only among those.');

  ctx.step(`A Node client connects to ${LAB_HOST}:${port}.`);
  const resets = await counterRises(ctx, 'TcpOutRsts');
  const client = net.connect({ host: LAB_HOST, port });
  ctx.defer(() => client.destroy());
  const [error] = await ctx.until<[NodeJS.ErrnoException]>(client, 'error', 'the connection to fail');
  ctx.expectFact('tcp-node', 'what the Node client gets', 'ECONNREFUSED (from connect())', describeError(error));
  await resets('tcp-rst', 'resets this kernel sent');
  ctx.say("The SYN found no socket, so the kernel answered with RST; the client's kernel failed connect() with ECONNREFUSED.");

  ctx.step('A C client (python3) does the same with the plain calls: bind(), then connect().');
  holder.endInput();
  const c = await holder.next<{ local: [string, number]; connect: string }>('the C client to connect');
  ctx.expectFact('tcp-c', 'connect()', 'ECONNREFUSED', c.connect);
  const ends = bothEnds({ address: c.local[0], port: c.local[1] }, { address: LAB_HOST, port });
  ctx.say(`socket pair: client ${formatSocketPair(ends.client.local, ends.client.remote)}`);
  const wire = await capturedConnection(ctx, ends, 'tcp-wire', 'the answer to the SYN, from packets');
  if (wire !== undefined) {
    const answer = wire.steps.filter((step) => step.from === 'server').map((step) => flagNames(step.segment.flags)).join(' then ');
    ctx.expectFact('tcp-wire', 'the answer to the SYN, on the wire', 'RST,ACK', answer || 'nothing');
  }
}

async function udp(ctx: LabContext): Promise<void> {
  ctx.step('Hold a UDP port that takes no datagram from anyone else: bind() it, then connect() it to itself.');
  // connect(2): a connected datagram socket receives only from the address it is connected to. The
  // kernel matches a datagram from anyone else to no socket, as if the port were closed.
  const holder = await udpSocket(ctx);
  const { port } = holder.address();
  holder.connect(port, LAB_HOST);
  await ctx.until(holder, 'connect', 'the holder to connect');
  ctx.say(`UDP ${LAB_HOST}:${port}: bound, and connected to itself (UDP and ICMP are not in the ladder, which shows TCP)`);

  ctx.step(`A connected UDP client: connect() to ${LAB_HOST}:${port}, send() "${PING}", and wait.`);
  const connected = await udpSocket(ctx);
  connected.connect(port, LAB_HOST);
  await ctx.until(connected, 'connect', 'the client to connect');
  const noPorts = await counterRises(ctx, 'UdpNoPorts');
  const heard = nextHeard(connected);
  ctx.expectFact('udp-send', 'send()', 'sent', await send(connected, PING));
  ctx.say('UDP sends without asking anyone: the call succeeds, whatever waits at the other end.');
  ctx.expectFact('udp-connected', 'what the connected client hears next', 'ECONNREFUSED (from recvmsg())', await ctx.within(heard, 'the connected client to hear back'));
  await noPorts('udp-noports', 'datagrams to a port with no socket');
  ctx.say('The datagram found no socket; the ICMP port unreachable the kernel sent back reached the client as an error on its next call.');

  ctx.step(`An unconnected UDP client: sendto() "${PING}" to ${LAB_HOST}:${port}; once the ICMP is back, it sends itself "${MARKER}".`);
  const unconnected = await udpSocket(ctx);
  const unreachables = await counterRises(ctx, 'IcmpInDestUnreachs');
  const heardFirst = nextHeard(unconnected);
  ctx.expectFact('udp-sendto', 'sendto()', 'sent', await send(unconnected, PING, port));
  await unreachables('udp-icmp', 'ICMP unreachables received');
  // An error waiting on a socket is returned by its next receive before any datagram: if the
  // ICMP had been reported, the marker could not come first.
  await send(unconnected, MARKER, unconnected.address().port);
  const first = await ctx.within(heardFirst, 'the unconnected client to hear its marker');
  ctx.expectFact('udp-unconnected', 'what the unconnected client hears next', `its own ${MARKER}: no error`, first === `a datagram, ${JSON.stringify(MARKER)}` ? `its own ${MARKER}: no error` : first);
  ctx.say('The same ICMP came back, and the kernel kept it from the unconnected socket: one error code could not say which of');
  ctx.say('its destinations refused (UNP §8.9). A connected socket has only one.');
}
