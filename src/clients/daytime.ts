/**
 * The daytime client (RFC 867), like the blog's daytime.c: connect, read one line, close.
 * The server closes first, so by the time we close, our read has already seen EOF.
 * `holdMs` and `close: false` reproduce the textbook's "client waits" and
 * "client never closes" experiments.
 *
 * A server may also end with RST instead of FIN (`lab-server daytime --close rst`). The bytes
 * that arrived before the RST can still be read, so the line usually arrives whole, and the reset
 * comes next, as an error (ECONNRESET) where a FIN would have been end of file.
 */
import type { Socket } from 'node:net';
import { escapeForLog } from '../framework/escape.js';
import type { Endpoint } from '../framework/endpoint.js';
import { LabError } from '../errors.js';
import { connectToFirst, failedError, pause, resetError, type ConnectOptions, type Connection, type ServerClose } from './connect.js';

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
  /** Both ends, as they were at connect. */
  local: Endpoint;
  remote: Endpoint;
  /** How the server closed (`fin` or `rst`), or undefined if it had not closed when we did. */
  serverClose: ServerClose | undefined;
  /** Every byte the server sent, the line and anything after it. */
  bytesReceived: number;
}

export async function fetchDaytime(options: DaytimeClientOptions): Promise<DaytimeResult> {
  const conn = await connectToFirst(options);
  const { socket } = conn;
  options.onLine(await readLine(conn, options.timeoutMs));
  await serverCloseOrGrace(conn);
  if (options.holdMs > 0) await pause(options.holdMs);
  if (options.close && !socket.destroyed) {
    // close(2): our FIN goes out and the descriptor is released. The server's FIN has
    // usually arrived by now; if the server has not closed yet, we are the active closer.
    await new Promise<void>((resolve) => socket.end(() => resolve()));
    socket.destroy();
  }
  return { socket, local: conn.local, remote: conn.remote, serverClose: conn.serverClose, bytesReceived: socket.bytesRead };
}

/**
 * A daytime server writes its line and closes at once, so its FIN follows the line within
 * moments; but a client that closes in those moments would close first. Like the textbook's
 * C client, whose close(2) comes a little after its read, we give the FIN a short grace.
 * A server that does not close (--no-close, --close-delay) leaves us closing first.
 */
const SERVER_FIN_GRACE_MS = 200;

async function serverCloseOrGrace(conn: Connection): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([conn.ended, new Promise((resolve) => (timer = setTimeout(resolve, SERVER_FIN_GRACE_MS)))]);
  clearTimeout(timer);
}

/** At most this many bytes of a broken line are shown in the error. */
const PREVIEW_BYTES = 80;

/** Reads until the first newline or EOF: one line, as the classic client's read() loop. */
function readLine(conn: Connection, timeoutMs: number): Promise<string> {
  const { socket } = conn;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let reading = true;
    const stop = (): void => {
      reading = false;
      socket.setTimeout(0);
      // Stop collecting; anything after the line is read and dropped, so the FIN is still seen.
      socket.off('data', onData);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      if (!chunk.includes(0x0a)) return;
      stop();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    socket.on('data', onData);
    // The server closed (FIN or RST) or the connection failed before a whole line came.
    void conn.ended.then(() => {
      if (!reading) return; // the line came first, or the time ran out
      stop();
      const received = Buffer.concat(chunks);
      if (conn.serverClose === 'rst') {
        const error = resetError(conn, { received: received.length });
        if (received.length === 0) return reject(error);
        const preview = escapeForLog(received.subarray(0, PREVIEW_BYTES)) + (received.length > PREVIEW_BYTES ? '...' : '');
        return reject(new LabError(error.code, `${error.message}, before a whole line: "${preview}"`));
      }
      if (conn.serverClose === 'fin') {
        if (received.length > 0) return resolve(received.toString('utf8')); // a last line without its newline
        return reject(new LabError('ERR_NO_DATA', 'the server closed the connection (FIN) without sending a line'));
      }
      reject(failedError(conn));
    });
    socket.setTimeout(timeoutMs, () => {
      stop();
      socket.destroy();
      reject(new LabError('ERR_TIMEOUT', `no line from the server within ${timeoutMs / 1000} s`));
    });
  });
}
