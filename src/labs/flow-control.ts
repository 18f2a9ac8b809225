/**
 * flow-control (RFC 9293 §3.8.6, "Managing the Window"; TCP/IP Illustrated vol. 1 §20.3 and
 * ch. 22, "TCP Persist Timer"; RFC 1122 §4.2.2.17): a receiver that stops reading stops the
 * sender, and nothing piles up anywhere without bound. The client's kernel keeps what it received
 * and its program did not read (Recv-Q) and advertises the room left, its window; once the buffer
 * is full the window is zero, and the server's kernel keeps what its program wrote and could not
 * send (Send-Q), asking "room now?" from time to time with a window probe (the persist timer).
 * When the send buffer is full too, write() stops taking bytes: chargen (src/protocols/chargen.ts)
 * writes only while socket.write() returns true and waits for 'drain', so the server's program
 * stops writing and its memory stays flat. When the client reads again, the window opens and the
 * stream flows on. The lab turns off chargen's own cap on unacknowledged bytes (--max-send-queue 0),
 * which would stop the program at 256 KiB, before the kernel's send buffer is full and before
 * write() ever says false: the kernel's flow control is what it shows.
 */
import type net from 'node:net';
import { formatSocketPair } from '../framework/endpoint.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { CHARGEN_WRITE_BYTES, chargen } from '../protocols/chargen.js';
import type { LabContext } from './context.js';
import { connectEchoPeer, type EchoPeer } from './echo-clients.js';
import type { Lab } from './lab.js';
import { capturedConnection } from './wire.js';
import { expectZeroWindowProbe, queues, settledQueues } from './windows.js';

/** What the client reads before it stops: enough to see the stream flow. */
const READ_FIRST = 64 * 1024;

/** How long the lab watches the stalled connection: several of the persist timer's probes (200 ms, then doubling). */
const STALL_WATCH_MS = 1000;

/** Bytes the client has read, as its 'data' events come. */
async function readAtLeast(ctx: LabContext, socket: net.Socket, bytes: number, what: string): Promise<number> {
  let read = 0;
  const enough = new Promise<void>((resolve) => {
    const onData = (chunk: Buffer): void => {
      read += chunk.length;
      if (read < bytes) return;
      socket.off('data', onData);
      resolve();
    };
    socket.on('data', onData);
  });
  await ctx.within(enough, what);
  return read;
}

/** With a capture: the zero window the client advertised, and the server's probes, as the wire shows them. */
async function onTheWire(ctx: LabContext, client: EchoPeer): Promise<void> {
  // The connection is still open: the capture hands over what it has seen after a second, time
  // for the persist timer's first probes (one RTO, at least 200 ms on Linux, then doubling).
  const wire = await capturedConnection(ctx, client.ends, 'wire', 'the zero window and its probes, from packets', { ended: false });
  if (wire === undefined) return;
  const sent = (end: 'client' | 'server', note: 'zero window' | 'zero window probe'): number =>
    wire.steps.filter((step) => step.from === end && step.notes.includes(note)).length;
  ctx.expectFact('wire-zero-window', 'the client advertised a zero window', 'yes', sent('client', 'zero window') > 0 ? 'yes' : 'no');
  ctx.expectFact('wire-probes', "the server's window probes (persist timer)", 'at least one', sent('server', 'zero window probe') > 0 ? 'at least one' : 'none');
}

export const flowControl: Lab = {
  name: 'flow-control',
  summary: "a client stops reading chargen: the window goes to zero, the server's writes back up and wait, memory stays flat; reading resumes the flow",
  concept:
    'Textbook (RFC 9293 §3.8.6; TCP/IP Illustrated vol. 1 §20.3 and ch. 22; RFC 1122 §4.2.2.17): the receiver advertises how much ' +
    'room its buffer has left, its window, and the sender may not send more. A program that stops reading lets the buffer fill: ' +
    "the window falls to zero, the sender's unsent bytes wait in its send buffer, its persist timer probes the window now and then, " +
    'and when that buffer is full too, write() stops taking bytes. Nothing grows without bound. Reading again opens the window.',
  async run(ctx) {
    ctx.step('Start a chargen server (lab-server chargen --max-send-queue 0): it writes while write() returns true, then waits for \'drain\'.');
    const { server, port, events } = await ctx.startServer({ protocol: chargen, limits: { maxSendQueueBytes: 0 } });
    ctx.say(`chargen listening on 127.0.0.1:${port}`);

    ctx.step(`A client connects and reads ${READ_FIRST / 1024} KiB: the stream flows. Then it stops reading (pause()).`);
    const client = await connectEchoPeer(ctx, port);
    const accepted = await ctx.event(events, 'accepted', 'the server to accept the client');
    const served = [...server.connections].find((conn) => conn.id === accepted.conn)!.socket;
    const read = await readAtLeast(ctx, client.socket, READ_FIRST, `the client to read ${READ_FIRST} bytes`);
    client.socket.pause();
    ctx.say(`socket pair: client ${formatSocketPair(client.ends.client.local, client.ends.client.remote)}; it read ${read} bytes, and no more from now on`);

    ctx.step("The client's receive buffer fills, its window falls to zero, and the server's kernel starts its persist timer.");
    await expectZeroWindowProbe(ctx, 'server-timer', client.ends.server);
    const stalled = await settledQueues(client.ends.client, client.ends.server);
    const writtenAtStall = served.bytesWritten;
    ctx.expectFact('queues', "client's Recv-Q and server's Send-Q", 'both hold bytes', stalled.received > 0 && stalled.unsent > 0 ? 'both hold bytes' : `Recv-Q ${stalled.received}, Send-Q ${stalled.unsent}`);
    // The buffers' sizes are the kernel's choice (tcp_rmem, tcp_wmem, and their autotuning).
    ctx.report('queue-sizes', 'bytes waiting in the kernels', `client's Recv-Q ${stalled.received}, server's Send-Q ${stalled.unsent}`);
    // Nothing tells a program that nothing happened: from the settled queues, the lab watches for a while.
    await sleep(STALL_WATCH_MS);
    await onTheWire(ctx, client);

    ctx.step("The server's program: write() has returned false, and chargen waits for 'drain'.");
    ctx.expectFact('waits-for-drain', "the server's socket waits for 'drain' (writableNeedDrain)", 'yes', served.writableNeedDrain ? 'yes' : 'no');
    // Node keeps what the kernel would not take: at most its high-water mark, plus the write that crossed it.
    // (The high-water mark is Node's choice: 16 KiB in Node 20, 64 KiB from Node 22.)
    const bound = served.writableHighWaterMark + CHARGEN_WRITE_BYTES;
    const withinBound = 'at most the high-water mark + one write';
    ctx.expectFact('node-buffer', `bytes Node holds for the kernel: writableLength ${served.writableLength}, bound ${served.writableHighWaterMark} + ${CHARGEN_WRITE_BYTES}`, withinBound, served.writableLength <= bound ? withinBound : `${served.writableLength}`);
    const after = await queues(client.ends.client, client.ends.server);
    ctx.expectFact('writes-stopped', 'bytes the server wrote while the window was zero', '0', String(served.bytesWritten - writtenAtStall));
    ctx.expectFact('queues-unchanged', `client's Recv-Q and server's Send-Q, ${STALL_WATCH_MS / 1000} s later`, 'unchanged', after.received === stalled.received && after.unsent === stalled.unsent ? 'unchanged' : `Recv-Q ${after.received}, Send-Q ${after.unsent}`);
    ctx.say(`The server's memory stays flat: ${served.writableLength} bytes in Node, the rest in the two kernels' buffers, however long the client waits.`);

    ctx.step('The client reads again (resume()): the window opens, the server drains its queue and writes more.');
    const queued = stalled.received + stalled.unsent + served.writableLength;
    client.socket.resume();
    const more = await readAtLeast(ctx, client.socket, queued + READ_FIRST, 'the stream to flow again');
    ctx.say(`the client read ${more} bytes more: all ${queued} that were queued, and new ones`);
    ctx.expectFact('writes-resumed', 'bytes the server wrote after the client read again', 'more than 0', served.bytesWritten > writtenAtStall ? 'more than 0' : '0');
    client.socket.destroy();
  },
};
