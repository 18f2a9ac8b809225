/**
 * nagle (RFC 896; RFC 1122 §4.2.3.4 and §4.2.3.2; TCP/IP Illustrated vol. 1 §19.3 and §19.4;
 * Stevens UNP §7.9, TCP_NODELAY): Nagle's algorithm lets a connection have at most one small
 * segment unacknowledged; a second small write waits in the kernel until the first is ACKed.
 * Delayed ACKs let a receiver hold its ACK a while (Linux: at least 40 ms, TCP_DELACK_MIN),
 * hoping to send it with a reply. Together they stall a client that sends a request in two writes
 * and then reads: the server cannot reply before the second part comes, the second part cannot
 * leave before the ACK, and the ACK waits for its timer. TCP_NODELAY (setNoDelay(true)) turns
 * Nagle off, and the stall goes.
 *
 * An echo server does not stall: it answers the first part at once, and its answer carries the ACK.
 *
 * Node's net.Socket has Nagle on, as the kernel makes every TCP socket (noDelay false; its http
 * server has set noDelay true by default since Node 18). The lab sets it explicitly each time.
 *
 * A timing, measured: ROUND_TRIPS round trips each way, compared by their median. A loopback
 * round trip takes well under a millisecond, a stalled one at least the 40 ms delayed-ACK timer;
 * STALL_MS, 20 ms, sits between the two, so that a loaded machine, which slows every round trip,
 * would have to hold more than half of them back by 20 ms to make the lab fail.
 */
import net from 'node:net';
import { formatSocketPair } from '../framework/endpoint.js';
import type { Connection } from '../capture/connection-tracker.js';
import { echo } from '../protocols/echo.js';
import type { LabContext } from './context.js';
import { connectEchoPeer, type EchoPeer } from './echo-clients.js';
import type { Lab } from './lab.js';
import { listenPlain } from './sockets.js';
import { capturedConnection } from './wire.js';

/** Round trips measured each way: enough for a median that one slow round trip cannot move. */
const ROUND_TRIPS = 10;
/** Between a loopback round trip (< 1 ms) and Linux's shortest delayed ACK (40 ms). */
const STALL_MS = 20;
/** The request, in the two writes that make it. */
const PARTS = ['hel', 'lo\n'] as const;
const REQUEST = PARTS.join('');

/**
 * A server that answers only whole requests, as HTTP servers and most protocols do: it reads
 * until the end of a line, then writes the line back. It sets TCP_NODELAY itself, so that the
 * only Nagle measured is the client's.
 */
async function startRequestServer(ctx: LabContext): Promise<number> {
  const { server, port } = await listenPlain(ctx);
  server.on('connection', (socket: net.Socket) => {
    socket.setNoDelay(true);
    ctx.defer(() => socket.destroy());
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n')) {
        socket.write(pending.slice(0, end + 1));
        pending = pending.slice(end + 1);
      }
    });
  });
  return port;
}

/** Times ROUND_TRIPS write-write-read round trips, in milliseconds. */
async function roundTrips(ctx: LabContext, client: EchoPeer): Promise<number[]> {
  const times: number[] = [];
  for (let n = 0; n < ROUND_TRIPS; n++) {
    let reply = '';
    const replied = new Promise<void>((resolve) => {
      const onData = (chunk: Buffer): void => {
        reply += chunk.toString('latin1');
        if (reply.length < REQUEST.length) return;
        client.socket.off('data', onData);
        resolve();
      };
      client.socket.on('data', onData);
    });
    const start = performance.now();
    for (const part of PARTS) client.socket.write(part); // two write(2) calls
    await ctx.within(replied, `reply ${n + 1}`);
    times.push(performance.now() - start);
  }
  return times;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const ms = (value: number): string => `${value.toFixed(1)} ms`;

/** One measurement: a client with Nagle on or off, against the server on `port`; its connection and median. */
async function measure(ctx: LabContext, port: number, id: string, noDelay: boolean, stalls: boolean): Promise<{ client: EchoPeer; median: number }> {
  const client = await connectEchoPeer(ctx, port);
  client.socket.setNoDelay(noDelay);
  const times = await roundTrips(ctx, client);
  ctx.say(`socket pair: client ${formatSocketPair(client.ends.client.local, client.ends.client.remote)}, ${noDelay ? 'TCP_NODELAY' : 'Nagle on'}`);
  ctx.say(`round trips: ${times.map((t) => t.toFixed(1)).join(' ')} ms`);
  const middle = median(times);
  const bound = (value: number): string => (value >= STALL_MS ? `at least ${STALL_MS} ms` : `under ${STALL_MS} ms`);
  ctx.expectFact(id, `the median of ${ROUND_TRIPS} round trips (${ms(middle)})`, stalls ? `at least ${STALL_MS} ms` : `under ${STALL_MS} ms`, bound(middle));
  client.socket.end();
  return { client, median: middle };
}

/**
 * The most small segments the client had sent and not yet seen acknowledged, at any moment: Nagle
 * allows one. Counted over the connection's first steps, while the capture kept every one.
 */
function mostUnacknowledged(wire: Connection): number {
  let most = 0;
  const unacknowledged: number[] = []; // where each segment in flight ends, in relative sequence numbers
  let previousIndex = 0;
  for (const step of wire.steps) {
    if (step.index !== previousIndex + 1) break; // the tracker left steps out: stop counting here
    previousIndex = step.index;
    if (step.from === 'client' && step.payloadLength > 0) {
      unacknowledged.push(step.relativeSeq + step.payloadLength);
      most = Math.max(most, unacknowledged.length);
    }
    if (step.from === 'server' && step.relativeAck !== undefined) {
      const ack = step.relativeAck;
      while (unacknowledged.length > 0 && unacknowledged[0]! <= ack) unacknowledged.shift();
    }
  }
  return most;
}

/** With a capture: how many small segments the client had in flight at once. */
async function inFlight(ctx: LabContext, client: EchoPeer, id: string, noDelay: boolean): Promise<void> {
  const wire = await capturedConnection(ctx, client.ends, id, 'small segments in flight, from packets');
  if (wire === undefined) return;
  const most = mostUnacknowledged(wire);
  const subject = "the client's small segments unacknowledged at once, at most";
  // Without Nagle both parts leave at once, unless the kernel merges them (tcp_autocorking): a report.
  if (noDelay) ctx.report(id, subject, `${most}`);
  else ctx.expectFact(id, subject, '1', String(most));
}

export const nagle: Lab = {
  name: 'nagle',
  summary: "write-write-read: Nagle's algorithm and delayed ACKs stall each request ~40 ms; TCP_NODELAY removes the stall",
  concept:
    "Textbook (RFC 896; RFC 1122 §4.2.3.4, §4.2.3.2; TCP/IP Illustrated vol. 1 §19.3, §19.4; Stevens UNP §7.9): Nagle's algorithm " +
    'keeps at most one small segment unacknowledged, holding back the next small write until the ACK comes; a receiver may delay ' +
    'its ACK (Linux: 40 ms at least) to send it with its reply. A request sent in two writes to a server that replies only to whole ' +
    'requests stalls on both: the second part waits for the ACK, the ACK for its timer. TCP_NODELAY turns Nagle off.',
  async run(ctx) {
    ctx.step('Start a request/response server (node:net): it reads up to a newline, then writes the line back.');
    const requestPort = await startRequestServer(ctx);
    ctx.say(`listening on 127.0.0.1:${requestPort}`);

    ctx.step(`With Nagle (setNoDelay(false)): ${ROUND_TRIPS} times, write ${JSON.stringify(PARTS[0])}, write ${JSON.stringify(PARTS[1])}, read the reply.`);
    const nagleOn = await measure(ctx, requestPort, 'request-nagle', false, true);
    ctx.say("The first part leaves at once; the second waits for its ACK, which the server's kernel delays: it has no reply to carry it yet.");

    ctx.step('The same with TCP_NODELAY (setNoDelay(true)).');
    const nagleOff = await measure(ctx, requestPort, 'request-nodelay', true, false);
    ctx.say("Both parts leave at once; the server's reply carries the ACK.");

    ctx.step('With Nagle again, against an echo server (lab-server echo): it answers each part as it comes.');
    const { port: echoPort } = await ctx.startServer({ protocol: echo });
    const echoed = await measure(ctx, echoPort, 'echo-nagle', false, false);
    ctx.say('The echo of the first part carries the ACK at once, so the second part never waits for a timer.');

    ctx.step('Side by side.');
    ctx.report('medians', 'median round trip', `request with Nagle ${ms(nagleOn.median)}, request with TCP_NODELAY ${ms(nagleOff.median)}, echo with Nagle ${ms(echoed.median)}`);
    await inFlight(ctx, nagleOn.client, 'wire-nagle', false);
    await inFlight(ctx, nagleOff.client, 'wire-nodelay', true);
  },
};
