/**
 * One accepted TCP connection and its lifecycle, as the application sees it:
 *
 *     accepted ──► active ──► peer-closed ──► closed     (the client sent FIN first: passive close)
 *                        └──► closing ─────► closed     (we sent FIN, or RST, first: active close)
 *                        └─────────────────► closed     (reset, error, or destroyed)
 *
 * accepted:     accept(2) returned a socket; the kernel finished the three-way handshake already.
 * active:       the protocol is serving it.
 * peer-closed:  the client shut down its sending side (we read EOF); we may still write.
 * closing:      we shut down our sending side (our FIN is queued) or aborted with RST.
 * closed:       the file descriptor is closed.
 *
 * "closed" here is not the kernel's TCP state: the side that closed first keeps the
 * connection in TIME_WAIT for 2×MSL after its descriptor is gone.
 */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { formatEndpoint, formatSocketPair, localEndpoint, remoteEndpoint, type Endpoint } from './endpoint.js';

export type ConnectionState = 'accepted' | 'active' | 'peer-closed' | 'closing' | 'closed';

/** How a protocol's active close is carried out; the close-behaviour switches set it. */
export interface ClosePolicy {
  /** `fin`: an orderly close(2); `rst`: SO_LINGER 0 then close, an abortive RST; `never`: keep the socket open. */
  mode: 'fin' | 'rst' | 'never';
  /** Wait this long before closing, as the textbook's "server sleeps before close" experiment does. */
  delayMs: number;
}

export const ORDERLY_CLOSE: ClosePolicy = { mode: 'fin', delayMs: 0 };

/** Why the server itself ended a connection, when it did. */
export type ServerCloseReason = 'protocol' | 'idle-timeout' | 'shutdown';

export interface CloseReport {
  /** Which end sent the first FIN or RST. */
  closedBy: 'server' | 'client';
  /** `fin` for an orderly close, `rst` for a reset. */
  how: 'fin' | 'rst';
  reason?: ServerCloseReason;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
}

type StateListener = (conn: Connection, from: ConnectionState, to: ConnectionState) => void;

export class Connection {
  state: ConnectionState = 'accepted';
  private localEnd?: Endpoint;
  private remoteEnd?: Endpoint;
  readonly acceptedAt = performance.now();
  /** The first close seen on this connection, from either end. */
  private firstClose?: { closedBy: 'server' | 'client'; how: 'fin' | 'rst'; reason?: ServerCloseReason };
  private delayedClose?: NodeJS.Timeout;

  constructor(
    readonly id: number,
    readonly socket: Socket,
    /** A logger that tags every line with this connection's id. */
    readonly log: Logger,
    private readonly closePolicy: ClosePolicy,
    private readonly onStateChange: StateListener,
  ) {
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
      this.log.debug({ event: 'socket-error', code: error.code }, `connection #${id}: ${error.message}`);
    });
    socket.on('close', () => {
      clearTimeout(this.delayedClose);
      this.setState('closed');
    });
  }

  /**
   * Our end of the pair, and the client's. Asking the kernel (getsockname(2), getpeername(2)),
   * with Node building each address object, costs about 1.5 µs an end: together 6% of a whole
   * daytime connection. So each is read when first needed: at once for a connection that is
   * logged (its "accepted" line shows the pair), and for the others, the unlogged majority under
   * load, usually never. Ask while the socket is open: after close the kernel has nothing left
   * to report, and an end never asked for reads as unknown ('', port 0).
   */
  get local(): Endpoint {
    return (this.localEnd ??= localEndpoint(this.socket));
  }

  get remote(): Endpoint {
    return (this.remoteEnd ??= remoteEndpoint(this.socket));
  }

  get remoteName(): string {
    return formatEndpoint(this.remote);
  }

  get socketPair(): string {
    return formatSocketPair(this.local, this.remote);
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
    if (lastBytes !== undefined) this.socket.write(lastBytes);
    const { mode, delayMs } = this.closePolicy;
    if (mode === 'never') {
      this.log.debug({ event: 'close-skipped' }, `connection #${this.id}: not closing (--no-close)`);
      return;
    }
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
    if (this.state !== 'closed') this.setState('closing');
    this.socket.resetAndDestroy();
  }

  /** Closes the descriptor now, without waiting for queued data (shutdown deadline, idle timer). */
  destroy(reason: ServerCloseReason): void {
    this.noteClose('server', 'fin', reason);
    if (this.state !== 'closed') this.setState('closing');
    this.socket.destroy();
  }

  /** How it ended; meaningful once the state is `closed`. */
  report(): CloseReport {
    const { closedBy, how, reason } = this.firstClose ?? { closedBy: 'client', how: 'fin' };
    return {
      closedBy,
      how,
      ...(reason === undefined ? {} : { reason }),
      bytesIn: this.socket.bytesRead,
      bytesOut: this.socket.bytesWritten,
      durationMs: Math.round(performance.now() - this.acceptedAt),
    };
  }

  private noteClose(closedBy: 'server' | 'client', how: 'fin' | 'rst', reason?: ServerCloseReason): void {
    this.firstClose ??= reason === undefined ? { closedBy, how } : { closedBy, how, reason };
  }

  private setState(to: ConnectionState): void {
    const from = this.state;
    if (from === to) return;
    this.state = to;
    this.onStateChange(this, from, to);
  }
}
