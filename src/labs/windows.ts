/**
 * TCP flow control as the kernel's table shows it (RFC 9293 §3.8.6; TCP/IP Illustrated vol. 1
 * §20.3, ch. 22): a receiver whose program does not read lets its receive buffer fill (its
 * Recv-Q), advertises a zero window, and the sender's unsent bytes wait in its send buffer (its
 * Send-Q) while its persist timer probes the window (RFC 1122 §4.2.2.17). The rst and
 * flow-control labs both stop a reader and look at these.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { formatSocketPair, type Endpoint } from '../framework/endpoint.js';
import { findConnection, type TcpSocketEntry } from '../tcp-states/parse.js';
import { readTcpSockets } from '../tcp-states/read.js';
import { STATE_DEADLINE_MS } from '../tcp-states/wait.js';
import type { LabContext } from './context.js';

type End = { local: Endpoint; remote: Endpoint };

/** The timer a sender runs while its peer's window is zero, as the lab prints it. */
export const ZERO_WINDOW_PROBE = 'zero-window probe';

const describeTimer = (entry: TcpSocketEntry | undefined): string =>
  entry?.timer.kind === 'zero-window-probe' ? ZERO_WINDOW_PROBE : (entry?.timer.kind ?? 'no socket');

/**
 * Predicts, and waits until the kernel shows, that `sender` runs its zero-window probe timer
 * (the `tr` column of /proc/net/tcp is 4): its peer's window is shut, and it has bytes to send.
 */
export function expectZeroWindowProbe(ctx: LabContext, id: string, sender: End): Promise<unknown> {
  return ctx.expectKernel(id, `server ${formatSocketPair(sender.local, sender.remote)} timer`, sender.local, sender.remote, ZERO_WINDOW_PROBE, describeTimer);
}

/** One read of the kernel's table: the receiver's unread bytes (Recv-Q) and the sender's unsent ones (Send-Q). */
export async function queues(receiver: End, sender: End): Promise<{ received: number; unsent: number }> {
  const table = await readTcpSockets();
  return {
    received: findConnection(table, receiver.local, receiver.remote)?.rxQueue ?? 0,
    unsent: findConnection(table, sender.local, sender.remote)?.txQueue ?? 0,
  };
}

/** How far apart two equal readings must be for the queues to count as settled. */
const SETTLE_INTERVAL_MS = 100;

/**
 * The queues once they have stopped moving: read until two readings SETTLE_INTERVAL_MS apart agree
 * (or STATE_DEADLINE_MS passes). A zero window does not stop the sender's program at once: its
 * kernel may still take what the program wrote into the send buffer, which grows as it fills.
 */
export async function settledQueues(receiver: End, sender: End): Promise<{ received: number; unsent: number }> {
  const start = performance.now();
  let last = await queues(receiver, sender);
  for (;;) {
    await sleep(SETTLE_INTERVAL_MS);
    const now = await queues(receiver, sender);
    if ((now.received === last.received && now.unsent === last.unsent) || performance.now() - start >= STATE_DEADLINE_MS) return now;
    last = now;
  }
}
