/**
 * The discard client (RFC 863): send everything, half-close, and wait for the server to
 * close in turn. Nothing comes back, so the server's FIN is the only sign it read it all.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { connectToFirst, failedError, resetError, type ConnectOptions } from './connect.js';

export interface DiscardClientOptions extends ConnectOptions {
  input: Readable;
}

/** Returns the number of bytes sent. */
export async function sendAll(options: DiscardClientOptions): Promise<number> {
  const conn = await connectToFirst(options);
  const { socket } = conn;
  socket.resume(); // nothing should come; reading lets us see the server's FIN
  try {
    // pipeline() ends the socket when the input ends: shutdown(SHUT_WR), our FIN.
    // A reset makes it fail (EPIPE or ECONNRESET); conn tells which it was.
    await pipeline(options.input, socket, { end: true }).catch(() => undefined);
    await conn.ended;
  } finally {
    socket.destroy();
  }
  if (conn.serverClose === 'rst') throw resetError(conn, { sent: socket.bytesWritten, refusal: true });
  if (conn.serverClose !== 'fin') throw failedError(conn);
  return socket.bytesWritten;
}
