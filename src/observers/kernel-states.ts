/**
 * "What did the kernel do?" After each connection closes, look its socket pair up in the kernel's
 * table a moment later and publish the kernel's state with a one-line explanation, as a
 * `kernel-state` event: TIME_WAIT after our active close (daytime), nothing left after a passive
 * close (echo). An observer: it listens to `closed` events and adds `kernel-state` events to the
 * same stream, so the log (or a lab, or a test) sees them like any other.
 *
 * The application's "closed" is not the kernel's: the side that sent the first FIN keeps the
 * socket pair in TIME_WAIT (60 s on Linux) after its descriptor is gone. This reporter makes that visible.
 *
 * Keeping it cheap: every read of /proc/net/tcp makes the kernel print its *whole* socket table,
 * so its cost grows with every socket on the machine, not just ours. So reads are batched (one
 * read serves every connection that closed while we waited), spaced (at most one read per
 * MIN_READ_INTERVAL_MS, and more widely when a read is slow: with tens of thousands of sockets
 * one read takes ~100 ms, so we wait READ_COST_MULTIPLE times that, up to MAX_READ_SPACING_MS), and sampled (at most
 * MAX_REPORTS_PER_READ connections per read, and held; the rest are counted in a
 * `kernel-state-sampled` event). And two kinds of read are not made at all (a `kernel-state-skipped` event says why):
 * while connections close by the hundred between two reads (MAX_CLOSES_BETWEEN_READS), since the
 * kernel then prints a table that changes under it, which costs ten times as much or more. And
 * when the table is huge (other programs' sockets, or a TIME_WAIT storm: a daytime server closing
 * 20,000 connections a second keeps over 100,000 pairs in TIME_WAIT), which /proc/net/sockstat
 * counts cheaply first, we ask ss(8) instead, which has the kernel filter the table for our port
 * (tcp-states/ss.ts); only without ss is the read skipped. Under load the server never waits on
 * this: the reads run beside it, never in its path.
 */
import type { CloseReport, EventOf, EventSource, EventStream } from '../framework/events.js';
import { findConnection, type TcpSocketEntry, type TcpState } from '../tcp-states/parse.js';
import { isTcpStateReadingSupported, readTcpSockets, readTcpTableSize, type TcpTableSize } from '../tcp-states/read.js';
import { readPortWithSs } from '../tcp-states/ss.js';
import { formatRemaining } from '../tcp-states/table.js';

/** How long after the close to look: time for the peer's last FIN or ACK to cross loopback. */
const SETTLE_MS = 50;
/** At most one read of the kernel's table per this many ms, however fast connections close. */
const MIN_READ_INTERVAL_MS = 1000;
/** Wait at least this many times the last read's duration: reading takes at most ~2% of the time. */
const READ_COST_MULTIPLE = 50;
/**
 * ...but never more than this between reads. A read made during a storm is slow because of the
 * storm (0.9 s once, which made the next read wait 43 s): once the load ends, reports must resume
 * within seconds, and the next read measures the cost anew.
 */
const MAX_READ_SPACING_MS = 5000;
/** At most this many connections reported per read; the rest of the batch is counted, not looked up. */
const MAX_REPORTS_PER_READ = 20;
/**
 * Above this many sockets in the kernel's table, do not print it all from /proc/net/tcp: the
 * kernel takes 3-5 µs to print each row, so 20,000 rows cost about 0.1 s of CPU. Ask ss instead.
 */
export const MAX_TABLE_ROWS = 20_000;
/**
 * More connections closed than this since the last read: skip the next one. The kernel prints
 * /proc/net/tcp a page per read(2), walking its hash table of sockets each time, and sockets that
 * come and go meanwhile make that walk far slower. During a full-speed daytime load one read of
 * 25,000 rows cost 0.2 to 1.7 s of CPU, on the server's own core, against under 0.1 s at rest.
 * A classroom's burst of a few hundred connections still gets its reports.
 */
const MAX_CLOSES_BETWEEN_READS = 500;

export interface KernelStateOptions {
  settleMs?: number;
  minReadIntervalMs?: number;
  /** The longest wait between two reads, however slow the last one was. */
  maxReadSpacingMs?: number;
  maxReportsPerRead?: number;
  /** Reads the kernel's rows between `port` and one of `peerPorts`; injected by tests. Default: readTcpSockets(). */
  read?: (port: number, peerPorts: number[]) => Promise<TcpSocketEntry[]>;
  /** Reads one port's rows with a filter in the kernel (ss); undefined when it cannot. Injected by tests. */
  readFiltered?: (port: number) => Promise<TcpSocketEntry[] | undefined>;
  /** Above this many sockets in the kernel's table, use readFiltered (Infinity: always /proc/net/tcp). */
  maxTableRows?: number;
  /** Skip a read when more connections than this closed since the last one. */
  maxClosesBetweenReads?: number;
  /** Counts the sockets in the kernel's table; injected by tests. Default: readTcpTableSize(). */
  tableSize?: () => Promise<TcpTableSize | undefined>;
  /** Which closed connections to look up; all by default (the log looks up only those it logs). */
  wanted?: (closed: Closed) => boolean;
}

type Closed = EventOf<'closed'>;

/** The service an event is about, to publish more events about it. */
const sourceOf = ({ protocol, transport }: EventSource): EventSource => ({ protocol, transport });

/**
 * One line a student understands, from the server's point of view: what its end of the socket
 * pair is doing in the kernel, and why.
 */
export function explainKernelState(state: TcpState | 'UNKNOWN' | null, report: Pick<CloseReport, 'closedBy' | 'how'>, remainingMs: number | null): string {
  const left = remainingMs === null ? '' : ` (${formatRemaining(remainingMs)} left)`;
  switch (state) {
    case null:
      if (report.how === 'rst') return 'nothing left: a reset (RST) skips the FIN exchange, so neither side enters TIME_WAIT';
      if (report.closedBy === 'client') {
        return 'nothing left: the client closed first (our close was passive), so the kernel freed our end once our FIN was acknowledged; the TIME_WAIT is on the client\'s side';
      }
      // The application saw its own close first, but the wire did not: the client's FIN (sent as
      // soon as it read the line) reached the kernel before ours, so the client holds TIME_WAIT.
      return "nothing left: both sides closed at almost the same moment and the client's FIN reached the kernel first, so in TCP's eyes the client closed first and holds the TIME_WAIT";
    case 'TIME_WAIT':
      return `TIME_WAIT${left}: the server closed first (active close), so the kernel keeps the pair for a while (60 s on Linux; 2×MSL in RFC 793) to catch stray segments and repeat the last ACK if needed`;
    case 'FIN_WAIT1':
      return 'FIN_WAIT1: the server closed first and its FIN is not acknowledged yet';
    case 'FIN_WAIT2':
      return `FIN_WAIT2${left}: the server closed first and the client acknowledged, but the client has not closed its side yet (it sits in CLOSE_WAIT)`;
    case 'CLOSING':
      return 'CLOSING: both sides sent FIN at the same moment (a simultaneous close); TIME_WAIT follows';
    case 'LAST_ACK':
      return 'LAST_ACK: the client closed first; our FIN is waiting for the client\'s final ACK';
    default:
      return `${state}: an unusual state for a closed connection`;
  }
}

/** Looks a closed connection's socket pair up in the kernel's table: the server's end, as the server sees it. */
export function kernelStateOf(entries: readonly TcpSocketEntry[], closed: Pick<Closed, 'local' | 'remote' | 'closedBy' | 'how'>): { state: TcpState | 'UNKNOWN' | null; remainingMs: number | null; explanation: string } {
  const entry = findConnection(entries, closed.local, closed.remote);
  const state = entry?.state ?? null;
  const remainingMs = entry !== undefined && entry.timer.kind === 'time-wait' ? entry.timer.remainingMs : null;
  return { state, remainingMs, explanation: explainKernelState(state, closed, remainingMs) };
}

/** The socket pair the kernel holds for a closed connection: behind a proxy (PROXY protocol), the proxy's connection to us. */
const kernelPair = (closed: Closed): Pick<Closed, 'local' | 'remote'> => closed.proxy ?? closed;

export class KernelStateReporter {
  private readonly settleMs: number;
  private readonly minReadIntervalMs: number;
  private readonly maxReadSpacingMs: number;
  private readonly maxReportsPerRead: number;
  private readonly read: (port: number, peerPorts: number[]) => Promise<TcpSocketEntry[]>;
  private readonly readFiltered: (port: number) => Promise<TcpSocketEntry[] | undefined>;
  private readonly maxTableRows: number;
  private readonly maxClosesBetweenReads: number;
  private readonly tableSize: () => Promise<TcpTableSize | undefined>;
  /**
   * Connections closed since the last read, waiting for the next one: at most maxReportsPerRead,
   * since no read reports more. The others are only counted (`unbatched`), so a storm between two
   * reads holds no memory per connection.
   */
  private batch: Closed[] = [];
  private unbatched = 0;
  private skipped = 0;
  /** Every connection closed since the last read, looked up or not: how fast the table is changing. */
  private closesSinceRead = 0;
  private timer?: NodeJS.Timeout;
  private lastReadAt = -Infinity;
  private lastReadCostMs = 0;
  private reading?: Promise<void>;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly stream: EventStream,
    options: KernelStateOptions = {},
  ) {
    this.settleMs = options.settleMs ?? SETTLE_MS;
    this.minReadIntervalMs = options.minReadIntervalMs ?? MIN_READ_INTERVAL_MS;
    this.maxReadSpacingMs = options.maxReadSpacingMs ?? MAX_READ_SPACING_MS;
    this.maxReportsPerRead = options.maxReportsPerRead ?? MAX_REPORTS_PER_READ;
    this.read = options.read ?? ((port, peerPorts) => readTcpSockets({ port, peerPorts }));
    this.readFiltered = options.readFiltered ?? readPortWithSs;
    this.maxTableRows = options.maxTableRows ?? MAX_TABLE_ROWS;
    this.maxClosesBetweenReads = options.maxClosesBetweenReads ?? MAX_CLOSES_BETWEEN_READS;
    this.tableSize = options.tableSize ?? (() => readTcpTableSize());
    this.unsubscribe = stream.on('closed', (closed) => {
      if (closed.transport !== 'tcp') return;
      this.closesSinceRead += 1;
      if (options.wanted === undefined || options.wanted(closed)) this.enqueue(closed);
    });
  }

  /**
   * Stops listening. Connections already closed still get their report: a read that was
   * scheduled happens now (so the last connection before a shutdown is not left out).
   */
  async stop(): Promise<void> {
    this.unsubscribe();
    await this.reading;
    if (this.timer === undefined && this.batch.length === 0) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.readAndReport();
  }

  private enqueue(closed: Closed): void {
    if (this.batch.length < this.maxReportsPerRead) this.batch.push(closed);
    else this.unbatched += 1;
    if (this.timer !== undefined || this.reading !== undefined) return;
    this.schedule();
  }

  /** The next read: `settleMs` after this close, but no sooner than the spacing allows. */
  private schedule(): void {
    const wait = Math.max(this.settleMs, this.lastReadAt + this.spacingMs() - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reading = this.readAndReport().finally(() => {
        this.reading = undefined;
        if (this.batch.length > 0) this.schedule();
      });
    }, wait);
    // A pending report must not keep a stopping server's process alive.
    this.timer.unref();
  }

  /** The time between two reads: the minimum, or more if reads have become expensive, up to the maximum. */
  private spacingMs(): number {
    return Math.max(this.minReadIntervalMs, Math.min(READ_COST_MULTIPLE * this.lastReadCostMs, this.maxReadSpacingMs));
  }

  private async readAndReport(): Promise<void> {
    const batch = this.batch;
    const unbatched = this.unbatched;
    this.batch = [];
    this.unbatched = 0;
    if (batch.length === 0) return;
    // Reports about the reporter itself go out as events of the service the batch begins with.
    const source = sourceOf(batch[0]!);
    this.lastReadAt = performance.now();
    const closed = this.closesSinceRead;
    this.closesSinceRead = 0;
    if (closed > this.maxClosesBetweenReads) {
      return this.stream.emit(source, 'kernel-state-skipped', { reason: 'busy', connections: batch.length + unbatched, closedSinceLastRead: closed, maxClosesBetweenReads: this.maxClosesBetweenReads });
    }
    const size = this.maxTableRows === Infinity ? undefined : await this.tableSize().catch(() => undefined);
    const huge = size !== undefined && size.sockets > this.maxTableRows;
    const reported = batch.slice(0, this.maxReportsPerRead);
    let entries: TcpSocketEntry[] = [];
    try {
      for (const port of new Set(reported.map((c) => kernelPair(c).local.port))) {
        // Only the rows of the pairs we report: our port at one end, a reported client's at the other.
        const peers = reported.filter((c) => kernelPair(c).local.port === port).map((c) => kernelPair(c).remote.port);
        const rows = huge ? await this.readFiltered(port) : await this.read(port, peers);
        if (rows === undefined) {
          return this.stream.emit(source, 'kernel-state-skipped', { reason: 'table-size', connections: batch.length + unbatched, tableSockets: size!.sockets, timeWait: size!.timeWait, maxTableRows: this.maxTableRows });
        }
        entries = entries.concat(rows);
      }
      this.lastReadCostMs = performance.now() - this.lastReadAt;
    } catch (error) {
      return this.stream.emit(source, 'kernel-state-failed', { message: (error as Error).message });
    }
    this.skipped += batch.length + unbatched - reported.length;
    for (const conn of reported) {
      const { closedBy, how } = conn;
      this.stream.emit(sourceOf(conn), 'kernel-state', { conn: conn.conn, local: conn.local, remote: conn.remote, closedBy, how, ...kernelStateOf(entries, { ...kernelPair(conn), closedBy, how }) });
    }
    if (this.skipped > 0) {
      this.stream.emit(source, 'kernel-state-sampled', { reported: reported.length, skipped: this.skipped, maxReportsPerRead: this.maxReportsPerRead, readSpacingMs: Math.round(this.spacingMs()) });
      this.skipped = 0;
    }
  }
}

/**
 * Starts reporting kernel states for the TCP connections closed on `stream`. Where the kernel's
 * table cannot be read (not Linux), says so once, with the first close, and reports nothing.
 */
export function watchKernelStates(stream: EventStream, options: KernelStateOptions = {}): KernelStateReporter | undefined {
  if (options.read !== undefined || isTcpStateReadingSupported()) return new KernelStateReporter(stream, options);
  const unsubscribe = stream.on('closed', (closed) => {
    unsubscribe();
    stream.emit(sourceOf(closed), 'kernel-state-unavailable', {});
  });
  return undefined;
}
