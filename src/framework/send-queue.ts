/**
 * A send budget for each connection: the bytes one client may leave unacknowledged (--max-send-queue).
 *
 * Backpressure alone (write() returns false, wait for 'drain') bounds the server's own memory, not
 * the kernel's. A write(2) succeeds while the socket's send buffer has room, and Linux grows that
 * buffer (autotuning) while the writer keeps it full, up to net.ipv4.tcp_wmem's maximum (4 MiB by
 * default). A client that never reads therefore pins megabytes of kernel memory per connection,
 * outside the server's RSS. The usual bound is SO_SNDBUF or TCP_NOTSENT_LOWAT, set with
 * setsockopt(2), but Node sets neither on a TCP socket, and has no ioctl(SIOCOUTQ) or
 * getsockopt(TCP_INFO) to ask how much is queued either.
 *
 * What Node does tell: `socket.bytesWritten` (every byte handed to the socket) and
 * `socket.writableLength` (those still in Node's buffer); the difference is what the kernel took.
 * What the kernel tells, in /proc/net/tcp (`tx_queue`, what `ss` shows as Send-Q), is how many of
 * those it still holds: sent and not acknowledged, or not sent yet. So:
 *
 *     acknowledged = (bytesWritten − writableLength) − tx_queue      at the moment of a read
 *     outstanding  = bytesWritten − acknowledged                     Node's buffer + the kernel's queue
 *
 * A protocol writes while `outstanding` is under its budget; then it waits. The budget is one cap
 * for a client that does not read, and grows for one that does (SHARED_CAPS). One watcher per service
 * reads the table for every waiting connection at once (a read costs the same for one as for a
 * thousand: the kernel prints all its sockets each time), and lets each go on once its queue is down
 * to half the cap. A reader that keeps up is read for again as soon as the last read allows (the
 * reads take at most half the time); a client that has stopped reading is looked at again later
 * and later, up to once a second, so hundreds of stalled clients cost one read a second. Where the table cannot be read (not Linux), the budget is off and the
 * service says so once (`send-queue-unavailable`): the kernel's buffers bound it, as before.
 */
import type { Socket } from 'node:net';
import { isTcpStateReadingSupported, visitTcpSockets } from '../tcp-states/read.js';
import { unmapIPv4, type Endpoint } from './endpoint.js';
import type { ServiceEvents } from './events.js';

/**
 * 256 KiB a connection. It is the bandwidth-delay product of 20 Mbit/s over 100 ms, or of
 * 200 Mbit/s over 10 ms: the bytes in flight a client at that speed needs for the stream not to
 * wait on acknowledgements. And it is a sixteenth of tcp_wmem's 4 MiB, so a few hundred clients
 * that never read pin tens of megabytes on the server's side instead of gigabytes.
 */
export const DEFAULT_MAX_SEND_QUEUE_BYTES = 256 * 1024;

/**
 * A connection that keeps up with the stream earns a larger budget: one cap at first, twice as
 * much each time a read of the table finds it has taken at least half of its budget, up to its
 * share of SHARED_CAPS caps among the service's connections. One client streaming alone reaches
 * 64 × 256 KiB = 16 MiB, more than the kernel's own 4 MiB, so it is soon held back no more and
 * costs a read of the table only every 16 MiB (a student measuring loopback with chargen sees
 * loopback's speed). A client that never reads never takes half of anything: it stays at one cap.
 */
export const SHARED_CAPS = 64;

/** A stalled connection is looked at again after 5 ms, then twice as long each time, up to a second. */
const FIRST_RECHECK_MS = 5;
const LAST_RECHECK_MS = 1000;

/** One connection's budget. */
export class SendQueue {
  /** Bytes the client has acknowledged, as of the last read of the kernel's table that looked. */
  private acked = 0;
  /** What it may leave unacknowledged now: one cap, grown as it proves to read (SHARED_CAPS). */
  private budget: number;
  /** Cleared when the kernel's table has no row for this socket: then it is not capped. */
  private capped = true;
  private resume?: () => void;
  private recheckMs = FIRST_RECHECK_MS;
  /** When, on the service's clock, the watcher should look at this connection again. */
  dueAt = 0;

  constructor(
    private readonly watcher: SendQueueWatcher,
    private readonly socket: Socket,
    /** The socket pair as the kernel lists it (behind a proxy, the proxy's connection). */
    readonly local: Endpoint,
    readonly remote: Endpoint,
  ) {
    this.budget = watcher.maxBytes;
  }

  /** Bytes handed to the socket and not known to be acknowledged: in Node's buffer or the kernel's send queue. */
  outstanding(): number {
    return this.socket.bytesWritten - this.acked;
  }

  /** Whether the protocol may write more now. */
  hasRoom(): boolean {
    return !this.capped || !this.watcher.active || this.outstanding() < this.budget;
  }

  /** Calls `resume` once the kernel's queue is down to half the cap (or the budget is off). */
  waitForRoom(resume: () => void): void {
    this.resume = resume;
    this.recheckMs = FIRST_RECHECK_MS;
    this.watcher.watch(this);
  }

  /** The connection closed: nothing to wait for, and its share goes to the others. */
  cancel(): void {
    this.resume = undefined;
    this.watcher.untrack(this);
  }

  /** What the kernel had taken when a read of its table began: its row, printed after, holds at most this much more. */
  kernelAccepted(): number {
    return this.socket.bytesWritten - this.socket.writableLength;
  }

  /**
   * The kernel's Send-Q for this socket, read when kernelAccepted() was `accepted` (undefined: no
   * row). Returns true when the connection may go on; if not, sets when to look again.
   */
  update(accepted: number, txQueue: number | undefined, now: number): boolean {
    if (txQueue === undefined) this.capped = false; // not in this namespace's table: fail open
    else this.acked = Math.max(this.acked, accepted - txQueue);
    const share = this.watcher.shareBytes();
    if (this.outstanding() <= this.budget / 2) this.budget = Math.min(2 * this.budget, share);
    else this.budget = Math.max(this.watcher.maxBytes, Math.min(this.budget, share));
    if (this.capped && this.watcher.active && this.outstanding() > this.budget / 2) {
      this.dueAt = now + this.recheckMs;
      this.recheckMs = Math.min(2 * this.recheckMs, LAST_RECHECK_MS);
      return false;
    }
    return true;
  }

  /** Lets the protocol go on. */
  release(): void {
    const resume = this.resume;
    this.resume = undefined;
    if (!this.socket.destroyed) resume?.();
  }
}

/** Reads the kernel's Send-Q for the connections of one service that wait for room. */
export class SendQueueWatcher {
  /** False once the table proved unreadable: every budget is then off. */
  active = true;
  private readonly waiting = new Set<SendQueue>();
  /** Connections with a budget, open now: they share SHARED_CAPS caps. */
  private tracked = 0;
  private reading = false;
  private cancelNext?: () => void;
  private nextAt = Infinity;
  /**
   * No read before this time: as long after the last read ended as that read took. A read costs
   * about 1 ms on a quiet machine, but 15 ms or more with ten thousand sockets in TIME_WAIT, all
   * of which the kernel prints; reading back to back for a fast client would then keep a CPU busy.
   */
  private notBefore = -Infinity;

  constructor(
    /** The cap, in bytes (greater than 0): what each connection may have when many share the service. */
    readonly maxBytes: number,
    private readonly events: ServiceEvents,
    /** Where procfs is mounted; tests point it elsewhere. */
    private readonly procRoot?: string,
  ) {}

  /** A budget for a connection whose socket the kernel lists as `local`–`remote`. */
  track(socket: Socket, local: Endpoint, remote: Endpoint): SendQueue {
    this.tracked += 1;
    return new SendQueue(this, socket, local, remote);
  }

  untrack(queue: SendQueue): void {
    this.tracked -= 1;
    this.waiting.delete(queue);
  }

  /** The most a connection's budget may grow to now: its share of SHARED_CAPS caps, and at least one cap. */
  shareBytes(): number {
    return Math.max(this.maxBytes, Math.floor((SHARED_CAPS * this.maxBytes) / Math.max(1, this.tracked)));
  }

  watch(queue: SendQueue): void {
    if (!this.active) return queue.release();
    queue.dueAt = this.events.now();
    this.waiting.add(queue);
    this.schedule();
  }

  /** The next read, when the first waiting connection is due; at once (next turn of the event loop) if it is due now. */
  private schedule(): void {
    if (this.reading || this.waiting.size === 0) return;
    let due = Infinity;
    for (const queue of this.waiting) due = Math.min(due, queue.dueAt);
    due = Math.max(due, this.notBefore);
    if (due >= this.nextAt) return; // a read is coming by then already
    this.cancelNext?.();
    this.nextAt = due;
    const delay = due - this.events.now();
    if (delay <= 0) {
      const immediate = setImmediate(this.read);
      this.cancelNext = () => clearImmediate(immediate);
    } else {
      const timer = setTimeout(this.read, delay).unref();
      this.cancelNext = () => clearTimeout(timer);
    }
  }

  private readonly read = async (): Promise<void> => {
    this.nextAt = Infinity;
    this.cancelNext = undefined;
    if (!isTcpStateReadingSupported(this.procRoot === undefined ? {} : { procRoot: this.procRoot })) {
      return this.giveUp(`/proc/net/tcp is not readable here (it is Linux only)`);
    }
    this.reading = true;
    const started = this.events.now();
    const queues = [...this.waiting];
    // Taken before the read: the kernel prints the row later, so its tx_queue counts at least these bytes.
    const accepted = queues.map((queue) => queue.kernelAccepted());
    const ports = new Set(queues.map((queue) => queue.local.port));
    // Each table costs a walk of the kernel's whole hash table: skip IPv6's when no socket is IPv6.
    const families = new Set(queues.map((queue) => (queue.local.address.includes(':') ? 6 : 4)));
    const txQueues = new Map<string, number>();
    try {
      await visitTcpSockets(
        {
          procRoot: this.procRoot,
          filter: ports.size === 1 ? { port: [...ports][0]! } : undefined,
          family: families.size === 1 ? [...families][0] : undefined,
        },
        (row) => void txQueues.set(pairKey(row.local, row.remote), row.txQueue),
      );
    } catch (error) {
      this.reading = false;
      return this.giveUp((error as Error).message);
    }
    this.reading = false;
    const now = this.events.now();
    this.notBefore = 2 * now - started;
    queues.forEach((queue, i) => {
      if (!this.waiting.has(queue)) return; // closed during the read
      if (!queue.update(accepted[i]!, txQueues.get(pairKey(queue.local, queue.remote)), now)) return;
      // Out of the set first: resuming, the protocol may fill its budget and wait again at once.
      this.waiting.delete(queue);
      queue.release();
    });
    this.schedule();
  };

  /** The table cannot be read: say so once, and let every connection write as the kernel allows. */
  private giveUp(message: string): void {
    this.active = false;
    this.events.emit('send-queue-unavailable', { message, maxSendQueue: this.maxBytes });
    const queues = [...this.waiting];
    this.waiting.clear();
    for (const queue of queues) queue.release();
  }
}

/** A socket pair as text, the same for a row of tcp6 that shows an IPv4 peer as ::ffff:a.b.c.d. */
function pairKey(local: Endpoint, remote: Endpoint): string {
  return `${unmapIPv4(local.address)} ${local.port} ${unmapIPv4(remote.address)} ${remote.port}`;
}
