/**
 * Connecting the way the textbook's clients do (UNP's tcp_connect, the blog's daytime.c):
 * getaddrinfo(host, AF_UNSPEC) returns every address of the host, IPv6 and IPv4 alike,
 * and we try connect(2) on each in turn until one succeeds.
 */
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { formatEndpoint, socketEnds, type Endpoint } from '../framework/endpoint.js';
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

export async function connectToFirst({ host, port, timeoutMs, onAttempt, onConnected, hint }: ConnectOptions): Promise<net.Socket> {
  const failures: string[] = [];
  let refused = false;
  for (const address of await resolveAll(host)) {
    const target = { address, port };
    try {
      const socket = await connectTo(target, timeoutMs);
      onAttempt?.(target, 'connected');
      const { local, remote } = socketEnds(socket);
      onConnected?.(local, remote);
      return socket;
    } catch (error) {
      refused ||= (error as NodeJS.ErrnoException).code === 'ECONNREFUSED';
      const reason = describeConnectError(error as NodeJS.ErrnoException, timeoutMs);
      onAttempt?.(target, reason);
      failures.push(`${formatEndpoint(target)} ${reason}`);
    }
  }
  throw new LabError('ERR_CONNECT_FAILED', `cannot connect to ${host} port ${port}: ${failures.join('; ')}${hint && refused ? `; ${hint}` : ''}`);
}

/** One connect(2): resolves once the three-way handshake is done. */
function connectTo({ address, port }: Endpoint, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: when the server's FIN arrives, Node must not send ours by itself;
    // the client decides when to close, as a C program calling close(2) does.
    const socket = net.connect({ host: address, port, allowHalfOpen: true });
    const fail = (error: Error): void => {
      socket.destroy();
      reject(error);
    };
    socket.setTimeout(timeoutMs, () => fail(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })));
    socket.once('error', fail);
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.off('error', fail);
      resolve(socket);
    });
  });
}

function describeConnectError(error: NodeJS.ErrnoException, timeoutMs: number): string {
  switch (error.code) {
    case 'ECONNREFUSED':
      return 'refused (nothing is listening there: the kernel answered the SYN with RST)';
    case 'ECONNRESET':
      return 'reset by the server right after the handshake (it refused us: --deny, --allow or a connection limit?)';
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
