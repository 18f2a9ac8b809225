/**
 * Connecting the way the textbook's clients do (UNP's tcp_connect, the blog's daytime.c):
 * getaddrinfo(host, AF_UNSPEC) returns every address of the host, IPv6 and IPv4 alike,
 * and we try connect(2) on each in turn until one succeeds.
 */
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { formatEndpoint, formatSocketPair, localEndpoint, type Endpoint } from '../framework/endpoint.js';
import { LabError } from '../errors.js';

export interface ConnectOptions {
  host: string;
  port: number;
  /** Give up on one address after this long (a SYN that is never answered). */
  timeoutMs: number;
  /** Told about every address tried, for --verbose. */
  onAttempt?: (target: Endpoint, outcome: string) => void;
  /** Told the socket pair once connected: our ephemeral port is only known now. */
  onConnected?: (local: Endpoint, remote: Endpoint) => void;
  /** Appended to the error when nothing answers, e.g. how to start the server. */
  hint?: string;
}

/**
 * How the server ended its side, as this client saw it: `fin` an orderly close (read() returned
 * 0, end of file), `rst` an abortive one (ECONNRESET, or EPIPE when we wrote after it).
 */
export type ServerClose = 'fin' | 'rst';

/** A connected socket, with what we need to say later what happened to it. */
export interface Connection {
  socket: net.Socket;
  /**
   * Both ends, read at the moment of connect. They must be read then: once a reset arrives the
   * kernel forgets the peer (getpeername(2) fails with ENOTCONN), and Node would report `:0`.
   */
  local: Endpoint;
  remote: Endpoint;
  /** How the server closed: undefined while it has not (or we closed first). */
  readonly serverClose: ServerClose | undefined;
  /** The error code when the connection failed some other way (ETIMEDOUT, EHOSTUNREACH, ...). */
  readonly failure: string | undefined;
  /** Resolves when the server closes (FIN or RST), the connection fails, or the socket is closed. */
  readonly ended: Promise<void>;
}

/** All addresses of `host`, in the resolver's order (like getaddrinfo with AF_UNSPEC). */
export async function resolveAll(host: string): Promise<string[]> {
  try {
    const found = await lookup(host, { all: true, order: 'verbatim' });
    return found.map(({ address }) => address);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new LabError('ERR_UNKNOWN_HOST', `cannot resolve ${JSON.stringify(host)}: ${code === 'ENOTFOUND' ? 'no such host' : code}`);
  }
}

export async function connectToFirst({ host, port, timeoutMs, onAttempt, onConnected, hint }: ConnectOptions): Promise<Connection> {
  const failures: string[] = [];
  let refused = false;
  for (const address of await resolveAll(host)) {
    const target = { address, port };
    try {
      const connection = await connectTo(target, timeoutMs);
      onAttempt?.(target, 'connected');
      onConnected?.(connection.local, connection.remote);
      return connection;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ECONNRESET') {
        // The handshake was done: a server is there and it answered with RST. In C, connect(2)
        // would have succeeded and the first read(2) failed; we do not go on to the next address.
        onAttempt?.(target, 'reset right after the handshake');
        throw resetAtConnect(target);
      }
      refused ||= code === 'ECONNREFUSED';
      const reason = describeConnectError(error as NodeJS.ErrnoException, timeoutMs);
      onAttempt?.(target, reason);
      failures.push(`${formatEndpoint(target)} ${reason}`);
    }
  }
  throw new LabError('ERR_CONNECT_FAILED', `cannot connect to ${host} port ${port}: ${failures.join('; ')}${hint && refused ? `; ${hint}` : ''}`);
}

/** One connect(2): resolves once the three-way handshake is done. */
function connectTo(target: Endpoint, timeoutMs: number): Promise<Connection> {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: when the server's FIN arrives, Node must not send ours by itself;
    // the client decides when to close, as a C program calling close(2) does.
    const socket = net.connect({ host: target.address, port: target.port, allowHalfOpen: true });
    const fail = (error: Error): void => {
      socket.destroy();
      reject(error);
    };
    socket.setTimeout(timeoutMs, () => fail(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })));
    socket.once('error', fail);
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.off('error', fail);
      // The remote end is the address we dialled; our own end, the kernel's choice, is read now.
      resolve(watch(socket, localEndpoint(socket), { ...target }));
    });
  });
}

/** Follows the socket from now on, so that no FIN, reset or error goes unnoticed. */
function watch(socket: net.Socket, local: Endpoint, remote: Endpoint): Connection {
  let serverClose: ServerClose | undefined;
  let failure: string | undefined;
  const ended = new Promise<void>((resolve) => {
    socket.once('end', () => {
      // End of file usually means FIN, but not always. When the data and an RST arrive together,
      // libuv reads the data, sees the socket hung up, and reports end of file without the read
      // that would have failed with ECONNRESET. The kernel still knows: after a FIN our end waits
      // in CLOSE_WAIT and knows its peer; after an RST it is CLOSED, and getpeername(2) fails.
      // This only tells while we have not sent our own FIN: once both FINs are exchanged, our
      // socket is CLOSED too (TIME_WAIT is kept apart from it), and we take end of file as FIN.
      // (Node remembers the first answer to remoteAddress, so nothing in the clients reads it before.)
      const peerForgotten = !socket.writableEnded && socket.remoteAddress === undefined;
      serverClose ??= peerForgotten ? 'rst' : 'fin';
      resolve();
    });
    // A permanent listener: an error here is an outcome to report, never an uncaught exception.
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') serverClose ??= 'rst';
      else failure ??= error.code ?? error.message;
      resolve();
    });
    socket.once('close', () => resolve());
  });
  return {
    socket,
    local,
    remote,
    ended,
    get serverClose() {
      return serverClose;
    },
    get failure() {
      return failure;
    },
  };
}

/**
 * Node reports a reset that arrives before it has seen the handshake complete as a failed
 * connect, and closes the socket, with whatever the server had sent still unread in the kernel.
 * So an abortive close right after the reply (--close rst) can look exactly like a refusal.
 */
function resetAtConnect(target: Endpoint): LabError {
  return new LabError(
    'ERR_CONNECTION_RESET',
    `the server ${formatEndpoint(target)} reset the connection (RST) right after the handshake, before we sent or read anything: ` +
      'it refused us (--deny, --allow or a connection limit?), or it replied and closed at once with RST (--close rst?) before we could read');
}

export interface Traffic {
  /** Bytes we wrote; left out for clients that send nothing (daytime, qotd, ...). */
  sent?: number;
  /** Bytes that came back; left out for discard, where none should. */
  received?: number;
  /** Add the usual reasons for a reset: true when nothing came back before it. */
  refusal?: boolean;
}

/** The one line about a reset: the bytes each way, and the socket pair as it was at connect. */
export function describeReset({ local, remote }: { local: Endpoint; remote: Endpoint }, { sent, received, refusal = received === 0 }: Traffic): string {
  const traffic =
    sent === undefined ? (received ? `after sending ${received} bytes` : 'before sending anything')
    : received === undefined ? `after we sent ${sent} bytes`
    : `after we sent ${sent} bytes and ${received} came back`;
  const reasons = refusal ? ': it refused us (--deny, --allow or a connection limit?) or aborted the connection' : '';
  return `the server reset the connection (RST) ${traffic}; socket pair ${formatSocketPair(local, remote)}${reasons}`;
}

/** A reset as an error: exit 69, like any connection that failed. */
export const resetError = (conn: Connection, traffic: Traffic): LabError => new LabError('ERR_CONNECTION_RESET', describeReset(conn, traffic));

/** A connection that failed with something other than a reset. */
export function failedError(conn: Connection): LabError {
  return new LabError('ERR_CONNECTION_LOST', `the connection failed (${conn.failure ?? 'closed'}); socket pair ${formatSocketPair(conn.local, conn.remote)}`);
}

function describeConnectError(error: NodeJS.ErrnoException, timeoutMs: number): string {
  switch (error.code) {
    case 'ECONNREFUSED':
      return 'refused (nothing is listening there: the kernel answered the SYN with RST)';
    case 'ETIMEDOUT':
      return `timed out after ${timeoutMs / 1000} s (no answer to the SYN)`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'unreachable';
    default:
      return error.code ?? error.message;
  }
}

/** Waits `ms` milliseconds. */
export const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
