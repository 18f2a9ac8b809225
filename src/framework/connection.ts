/**
 * One accepted TCP connection and its lifecycle, as the application sees it:
 *
 *     accepted ──► active ──► peer-closed ─────────────► closed   (the client sent FIN first; our FIN follows: passive close)
 *        │           │             └──► closing ──────► closed   (then the server ended it: shutdown, timer, protocol error)
 *        │           ├──► closing ─────────────────────► closed   (we sent FIN, or RST, first: active close)
 *        │           └─────────────────────────────────► closed   (the client reset it, or an error)
 *        └──► closing ──► closed                                 (ended by the server while waiting to be served)
 *
 * accepted:     accept(2) returned a socket; the kernel finished the three-way handshake already.
 * active:       the protocol is serving it.
 * peer-closed:  the client shut down its sending side (we read EOF); we may still write.
 * closing:      the server shut down its sending side (our FIN is queued) or aborted with RST.
 * closed:       the file descriptor is closed.
 *
 * Every transition is a `state` event, and the end is a `closed` event saying who closed first.
 * "closed" here is not the kernel's TCP state: the side that closed first keeps the connection in
 * TIME_WAIT (60 s on Linux) after its descriptor is gone (observers/kernel-states.ts shows it).
 */
import net, { type Socket } from 'node:net';
import type { Endpoint } from './endpoint.js';
import { escapeForLog, escapeText } from './escape.js';
import type { CloseReport, ConnectionIdentity, ConnectionState, EventFields, ProxyHop, ServerCloseReason, ServiceEvents } from './events.js';
import { IGNORE_LINES, LineSplitter, type LineReporter } from './messages.js';
import type { SendQueue, SendQueueWatcher } from './send-queue.js';

/** How a protocol's active close is carried out; the close-behaviour switches set it. */
export interface ClosePolicy {
  /** `fin`: an orderly close(2); `rst`: SO_LINGER 0 then close, an abortive RST; `never`: keep the socket open. */
  mode: 'fin' | 'rst' | 'never';
  /** Wait this long before closing, as the textbook's "server sleeps before close" experiment does. */
  delayMs: number;
}

export const ORDERLY_CLOSE: ClosePolicy = { mode: 'fin', delayMs: 0 };

/** The events about one connection: their conn, local and remote fields are filled in for them. */
type ConnectionEventType = { [T in keyof EventFields]: EventFields[T] extends { conn: number; local: Endpoint; remote: Endpoint } ? T : never }[keyof EventFields];
type OwnFields<T extends ConnectionEventType> = Omit<EventFields[T], 'conn' | 'local' | 'remote'>;

/** What the server learns from a connection: each lifecycle transition. */
export type StateListener = (conn: Connection, from: ConnectionState, to: ConnectionState) => void;

export class Connection {
  state: ConnectionState = 'accepted';
  /** When accept(2) returned, on the event stream's monotonic clock. */
  readonly acceptedAt: number;
  /** The first close seen on this connection, from either end. */
  private firstClose?: { closedBy: 'server' | 'client'; how: 'fin' | 'rst'; reason?: ServerCloseReason };
  private delayedClose?: NodeJS.Timeout;
  /** The protocol's onWritable() listener. */
  private writable?: () => void;
  /** The bytes moved either way when last looked at (see stalledFor), and since when. */
  private progress: { bytes: number; since: number };
  /** What every event about this connection carries: its number and its socket pair. */
  private readonly identity: ConnectionIdentity;
  /**
   * --max-send-queue: the bytes the client may leave unacknowledged (send-queue.ts), made at the
   * first conn.write(): only a protocol that streams through it has one (and a share of the caps).
   */
  private sendQueue?: SendQueue;

  constructor(
    readonly id: number,
    readonly socket: Socket,
    /** Our end of the socket pair, captured at accept: after close the kernel has nothing left to tell. */
    readonly local: Endpoint,
    /** The client's end, captured at accept. */
    readonly remote: Endpoint,
    private readonly events: ServiceEvents,
    private readonly closePolicy: ClosePolicy,
    private readonly onStateChange: StateListener,
    /** Behind a proxy (PROXY protocol): the proxy's connection, which the socket is; local and remote are then the client's. */
    readonly proxy?: ProxyHop,
    private readonly sendQueues?: SendQueueWatcher,
  ) {
    this.acceptedAt = events.now();
    this.identity = { conn: id, local, remote };
    this.progress = { bytes: 0, since: this.acceptedAt };
    containFailures(socket, this);
    // The client's FIN: read(2) returned 0.
    socket.on('end', () => {
      this.noteClose('client', 'fin');
      if (this.state === 'active') this.setState('peer-closed');
    });
    // Our FIN: shutdown(SHUT_WR) completed after every queued byte was handed to the kernel.
    socket.on('finish', () => {
      this.noteClose('server', 'fin', 'protocol');
      if (this.state === 'active') this.setState('closing');
    });
    // Expected network errors (ECONNRESET: the client sent RST; EPIPE: we wrote after it left)
    // belong to this connection only. Without a handler, Node would crash the whole server.
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.noteClose('client', 'rst');
      this.emit('socket-error', { code: error.code ?? 'ERROR', message: error.message });
    });
    socket.on('close', () => {
      clearTimeout(this.delayedClose);
      this.sendQueue?.cancel();
      this.setState('closed');
    });
  }

  /** Publishes an event about this connection; its number and socket pair come with it. */
  emit<T extends ConnectionEventType>(type: T, fields: OwnFields<T>): void {
    this.events.emitAbout(this.identity, type, fields);
  }

  /**
   * How long, as of `now`, no byte has moved either way: none read from the client, and none of
   * ours taken by the kernel (bytes written less those still queued in Node). A silent client
   * (slowloris) and one that never reads (its window, then our send buffer, full) both stall.
   * Looked at lazily, when the server needs room: progress since the last look counts from now.
   */
  stalledFor(now: number): number {
    const bytes = this.socket.bytesRead + this.socket.bytesWritten - this.socket.writableLength;
    if (bytes !== this.progress.bytes) this.progress = { bytes, since: now };
    return now - this.progress.since;
  }

  /**
   * Writes like socket.write(), and says whether to go on writing: false when Node's buffer is past
   * its high-water mark (socket.write's own false) or when the client has --max-send-queue bytes
   * not yet acknowledged, in Node's buffer and the kernel's send queue together (send-queue.ts).
   * After false, write no more until the listener given to onWritable() is called. Like
   * socket.write(), the bytes are taken either way: the cap may be passed by one write.
   */
  write(bytes: Buffer | string): boolean {
    if (!this.socket.write(bytes)) return false; // 'drain' follows, and onWritable checks the budget then
    return this.roomInBudget();
  }

  /**
   * Calls `listener` each time writing may go on after write() returned false: Node's buffer has
   * drained into the kernel ('drain') and the client has acknowledged enough of what the kernel holds.
   */
  onWritable(listener: () => void): void {
    this.writable = listener;
    this.socket.on('drain', () => {
      if (this.roomInBudget()) listener();
    });
  }

  /** Whether the send budget has room; if not, the watcher will call onWritable's listener when it has. */
  private roomInBudget(): boolean {
    // The kernel lists the socket under its own pair: behind a proxy, the proxy's connection.
    this.sendQueue ??= this.sendQueues?.track(this.socket, this.proxy?.local ?? this.local, this.proxy?.remote ?? this.remote);
    if (this.sendQueue === undefined || this.sendQueue.hasRoom()) return true;
    this.sendQueue.waitForRoom(this.resumeWriting);
    return false;
  }

  /**
   * The send budget has room again. This runs from the watcher's read of the kernel's table, not
   * from a socket event, so a listener that throws is caught here (see containFailures).
   */
  private readonly resumeWriting = (): void => {
    try {
      this.writable?.();
    } catch (error) {
      this.fail(error);
    }
  };

  /** Reports the lines this connection receives as `message` events (see messages.ts). */
  lines(): LineReporter {
    if (!this.events.wants('message')) return IGNORE_LINES;
    return new LineSplitter((line) => this.emit('message', line));
  }

  /** Called by the framework when the protocol starts serving this connection. */
  activate(): void {
    this.setState('active');
    // The listener accepts sockets paused; start reading now that someone will handle the bytes.
    this.socket.resume();
  }

  /**
   * The protocol is done: send `lastBytes`, if any, and close our side first (an active close)
   * the way the server was told to. An orderly close is close(2): the kernel still delivers
   * what we wrote, then sends FIN, and this side passes through FIN_WAIT_2 and TIME_WAIT
   * without us. Writing and closing in one call puts our FIN right behind the data, as a
   * C server's back-to-back write(2) and close(2) do.
   */
  close(lastBytes?: Buffer | string): void {
    if (this.delayedClose !== undefined || this.state === 'closing' || this.state === 'closed') return;
    if (lastBytes !== undefined) this.send(lastBytes);
    const { mode, delayMs } = this.closePolicy;
    if (mode === 'never') return this.emit('close-skipped', {});
    const closeNow = (): void => {
      if (mode === 'rst') this.abort('protocol');
      else this.socket.end(() => this.socket.destroy());
    };
    if (delayMs > 0) this.delayedClose = setTimeout(closeNow, delayMs);
    else closeNow();
  }

  /**
   * Ends the connection at once with RST: SO_LINGER with a zero timeout, then close(2).
   * No FIN exchange, so no TIME_WAIT on either side; unsent data is thrown away.
   */
  abort(reason: ServerCloseReason): void {
    this.noteClose('server', 'rst', reason);
    if (this.state === 'closed') return;
    this.setState('closing');
    this.socket.resetAndDestroy();
  }

  /** Closes the descriptor now, without waiting for queued data (shutdown deadline, idle timer). */
  destroy(reason: ServerCloseReason): void {
    this.noteClose('server', 'fin', reason);
    if (this.state === 'closed') return;
    this.setState('closing');
    this.socket.destroy();
  }

  /** The protocol failed on this connection: say so, and reset it. The server goes on. */
  fail(error: unknown): void {
    const { message, stack } = error instanceof Error ? error : { message: String(error), stack: undefined };
    this.events.emitAbout(this.identity, 'protocol-error', { message, ...(stack === undefined ? {} : { stack }) });
    this.abort('protocol-error');
  }

  /** How it ended so far; complete once the state is `closed`. */
  report(): CloseReport {
    const { closedBy, how, reason } = this.firstClose ?? { closedBy: 'client', how: 'fin' };
    return {
      closedBy,
      how,
      ...(reason === undefined ? {} : { reason }),
      bytesIn: this.socket.bytesRead - (this.proxy?.headerBytes ?? 0),
      bytesOut: this.socket.bytesWritten,
      durationMs: Math.round(this.events.now() - this.acceptedAt),
    };
  }

  private send(bytes: Buffer | string): void {
    this.socket.write(bytes);
    if (!this.events.wants('sent')) return;
    // The text without its line ending, as a person reads it: `Sun Nov  1 09:05:03 2026`.
    if (typeof bytes === 'string') {
      this.emit('sent', { text: escapeText(bytes.slice(0, bytes.length - lineEndingLength(bytes))), bytes: Buffer.byteLength(bytes) });
    } else {
      this.emit('sent', { text: escapeForLog(bytes.subarray(0, bytes.length - lineEndingLength(bytes))), bytes: bytes.length });
    }
  }

  private noteClose(closedBy: 'server' | 'client', how: 'fin' | 'rst', reason?: ServerCloseReason): void {
    this.firstClose ??= reason === undefined ? { closedBy, how } : { closedBy, how, reason };
  }

  private setState(to: ConnectionState): void {
    const from = this.state;
    if (from === to) return;
    this.state = to;
    this.emit('state', { from, to });
    if (to === 'closed') this.emit('closed', this.proxy === undefined ? this.report() : { ...this.report(), proxy: this.proxy });
    this.onStateChange(this, from, to);
  }
}

/** 2 for a trailing CR LF, 1 for LF, 0 for none. */
function lineEndingLength(text: string | Buffer): number {
  const code = (i: number): number | undefined => (typeof text === 'string' ? text.charCodeAt(i) : text[i]);
  if (code(text.length - 1) !== 0x0a) return 0;
  return code(text.length - 2) === 0x0d ? 2 : 1;
}

/**
 * Node calls a protocol's socket listeners ('data', 'end', 'drain', ...) from inside socket.emit().
 * A listener that throws would unwind through Node's stream code into the event loop and end the
 * whole process, every other client with it. Catching at emit() keeps the failure to one connection.
 * One function serves every socket (a closure per socket would make Node's own calls to emit()
 * see a different function each time, and run slower for it); it finds the connection by a symbol.
 */
const CONNECTION = Symbol('connection');
const socketEmit = net.Socket.prototype.emit as (this: net.Socket, event: string | symbol, ...args: unknown[]) => boolean;

function containedEmit(this: net.Socket & { [CONNECTION]: Connection }): boolean {
  try {
    return Reflect.apply(socketEmit, this, arguments) as boolean;
  } catch (error) {
    this[CONNECTION].fail(error);
    return true;
  }
}

function containFailures(socket: net.Socket, conn: Connection): void {
  Object.assign(socket, { [CONNECTION]: conn, emit: containedEmit });
}
