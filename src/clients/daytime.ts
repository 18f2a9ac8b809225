/**
 * The daytime client (RFC 867), like the blog's daytime.c: connect, read one line, close.
 * The server closes first, so by the time we close, our read has already seen EOF.
 * `holdMs` and `close: false` reproduce the textbook's "client waits" and
 * "client never closes" experiments.
 */
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { LabError } from '../errors.js';
import { connectToFirst, pause, type ConnectOptions } from './connect.js';

export interface DaytimeClientOptions extends ConnectOptions {
  /** Keep the socket open this long after reading, then close. */
  holdMs: number;
  /** false: never call close; the caller exits and the kernel closes the socket. */
  close: boolean;
  /** Called with the server's line as soon as it arrives (before any hold). */
  onLine: (text: string) => void;
}

export interface DaytimeResult {
  /** The socket, still open when `close` was false. */
  socket: Socket;
}

export async function fetchDaytime(options: DaytimeClientOptions): Promise<DaytimeResult> {
  const socket = await connectToFirst(options);
  options.onLine(await readLine(socket, options.timeoutMs));
  await serverFinOrGrace(socket);
  if (options.holdMs > 0) await pause(options.holdMs);
  if (options.close) {
    // close(2): our FIN goes out and the descriptor is released. The server's FIN has
    // usually arrived by now; if the server has not closed yet, we are the active closer.
    await new Promise<void>((resolve) => socket.end(() => resolve()));
    socket.destroy();
  }
  return { socket };
}

/**
 * A daytime server writes its line and closes at once, so its FIN follows the line within
 * moments; but a client that closes in those moments would close first. Like the textbook's
 * C client, whose close(2) comes a little after its read, we give the FIN a short grace.
 * A server that does not close (--no-close, --close-delay) leaves us closing first.
 */
const SERVER_FIN_GRACE_MS = 200;

async function serverFinOrGrace(socket: Socket): Promise<void> {
  if (socket.readableEnded) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    once(socket, 'end').catch(() => {}),
    new Promise((resolve) => (timer = setTimeout(resolve, SERVER_FIN_GRACE_MS))),
  ]);
  clearTimeout(timer);
}

/** Reads until the first newline or EOF: one line, as the classic client's read() loop. */
function readLine(socket: Socket, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const finish = (): void => {
      socket.setTimeout(0);
      // Stop collecting; anything after the line is read and dropped, so the FIN is still seen.
      socket.off('data', onData).off('end', finish).off('error', onError);
      const text = Buffer.concat(chunks).toString('utf8');
      if (text === '') reject(new LabError('ERR_NO_DATA', 'the server closed the connection without sending a line'));
      else resolve(text);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      if (chunk.includes(0x0a)) finish();
    };
    const onError = (error: Error): void => reject(new LabError('ERR_CONNECTION_LOST', `the connection failed: ${error.message}`));
    socket.on('data', onData).once('end', finish).once('error', onError);
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new LabError('ERR_TIMEOUT', `no line from the server within ${timeoutMs / 1000} s`));
    });
  });
}
