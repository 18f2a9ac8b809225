/**
 * The client side of the stress scenarios: many source addresses, long streams whose every
 * byte is checked without being stored, and single connection attempts with their outcome.
 */
import { once } from 'node:events';
import net from 'node:net';
import type { Random } from '../../helpers/random.js';

/**
 * The n-th address of a block: 127.<block>.x.y. Linux routes all of 127.0.0.0/8 to the loopback
 * interface, so each is a distinct client address (a distinct "source" for --max-per-source) and
 * has its own 28,000 ephemeral ports.
 */
export function loopbackSource(block: number, n: number): string {
  return `127.${block}.${Math.floor(n / 250)}.${(n % 250) + 1}`;
}

/**
 * An endless byte stream that needs no storage: byte i is pool[i mod pool size]. The pool size
 * (1 MiB + 7) is not a multiple of any chunk size, so a chunk lost, repeated or reordered shifts
 * the bytes and fails the check.
 */
export class Pattern {
  private readonly doubled: Buffer;
  readonly size: number;

  constructor(random: Random, size = 1024 * 1024 + 7) {
    const pool = random.bytes(size);
    this.size = size;
    this.doubled = Buffer.concat([pool, pool]);
  }

  /** `length` (at most the pool size) bytes of the stream from `offset`. */
  slice(offset: number, length: number): Buffer {
    const at = offset % this.size;
    return this.doubled.subarray(at, at + length);
  }

  /** Whether `chunk` is what the stream holds at `offset`. */
  matches(offset: number, chunk: Buffer): boolean {
    for (let done = 0; done < chunk.length; ) {
      const length = Math.min(chunk.length - done, this.size);
      if (!chunk.subarray(done, done + length).equals(this.slice(offset + done, length))) return false;
      done += length;
    }
    return true;
  }
}

export async function connectFrom(port: number, localAddress: string): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  await once(socket, 'connect');
  return socket;
}

/** Resolves true on 'drain', false if the socket closes first. */
export function drained(socket: net.Socket): Promise<boolean> {
  return new Promise((resolve) => {
    const onDrain = (): void => finish(true);
    const onClose = (): void => finish(false);
    const finish = (value: boolean): void => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      resolve(value);
    };
    socket.on('drain', onDrain);
    socket.on('close', onClose);
  });
}

export interface StreamResult {
  sent: number;
  received: number;
  /** Every byte received so far was the right byte, in order. */
  intact: boolean;
  /** The server's FIN arrived. */
  ended: boolean;
  error?: string;
}

/** Checks each byte echoed on `socket` against `pattern`, as it arrives. */
export function checkEchoes(socket: net.Socket, pattern: Pattern): StreamResult {
  const result: StreamResult = { sent: 0, received: 0, intact: true, ended: false };
  socket.on('data', (chunk: Buffer) => {
    if (result.intact && !pattern.matches(result.received, chunk)) result.intact = false;
    result.received += chunk.length;
  });
  socket.on('end', () => (result.ended = true));
  socket.on('error', (error: NodeJS.ErrnoException) => (result.error ??= error.code));
  return result;
}

export interface StreamOptions {
  chunkSize?: number;
  /** Continue a stream already under way (see checkEchoes). */
  result?: StreamResult;
  /** Half-close only once this resolves, to keep the connection open until then. */
  endWhen?: Promise<unknown>;
}

/**
 * Streams `total` bytes of `pattern` through echo, respecting backpressure, then half-closes
 * and waits for the connection to close. Every byte that comes back is checked.
 */
export async function streamPattern(socket: net.Socket, pattern: Pattern, total: number, options: StreamOptions = {}): Promise<StreamResult> {
  const { chunkSize = 64 * 1024, result = checkEchoes(socket, pattern), endWhen } = options;
  // Not events.once: it would reject on 'error', and a reset is a result here, recorded by checkEchoes.
  const closed = new Promise((resolve) => socket.once('close', resolve));
  while (result.sent < total && !socket.destroyed) {
    const length = Math.min(chunkSize, total - result.sent);
    const accepted = socket.write(pattern.slice(result.sent, length));
    result.sent += length;
    if (!accepted && !(await drained(socket))) break;
  }
  await endWhen;
  if (!socket.destroyed) socket.end();
  await closed;
  return result;
}

export type AttemptOutcome = 'served' | 'reset' | 'closed' | 'connection-refused' | 'no-answer' | 'error';

export interface Attempt {
  socket: net.Socket;
  outcome: AttemptOutcome;
  /** From connect() to the outcome. */
  ms: number;
}

/**
 * Connects, sends a line, and sees what happens: the echo ('served'), a reset (a refusal by a
 * limit), a close without an answer, ECONNREFUSED (nobody listening), or nothing in time.
 */
export async function attempt(port: number, localAddress: string, timeoutMs = 5000): Promise<Attempt> {
  const started = performance.now();
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  socket.write('ping\n');
  const outcome = await new Promise<AttemptOutcome>((resolve) => {
    const timer = setTimeout(() => resolve('no-answer'), timeoutMs);
    const finish = (value: AttemptOutcome): void => {
      clearTimeout(timer);
      resolve(value);
    };
    socket.once('data', () => finish('served'));
    socket.once('end', () => finish('closed'));
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') finish('reset');
      else if (error.code === 'ECONNREFUSED') finish('connection-refused');
      else finish('error');
    });
  });
  socket.on('error', () => {}); // later errors (a reset after the answer) change nothing here
  return { socket, outcome, ms: performance.now() - started };
}

/** Round-trip time of one line over an open echo connection. */
export async function echoLatency(socket: net.Socket): Promise<number> {
  const started = performance.now();
  const answered = once(socket, 'data');
  socket.write('probe\n');
  await answered;
  return performance.now() - started;
}

/** Counts outcomes: { served: 12, reset: 3 }. */
export function tally(outcomes: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const outcome of outcomes) counts[outcome] = (counts[outcome] ?? 0) + 1;
  return counts;
}

export const formatTally = (counts: Record<string, number>): string =>
  Object.entries(counts)
    .map(([outcome, count]) => `${outcome} ${count}`)
    .join(', ');
