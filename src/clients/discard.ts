/**
 * The discard client (RFC 863): send everything, half-close, and wait for the server to
 * close in turn. Nothing comes back, so the server's FIN is the only sign it read it all.
 */
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LabError } from '../errors.js';
import { connectToFirst, type ConnectOptions } from './connect.js';

export interface DiscardClientOptions extends ConnectOptions {
  input: Readable;
}

/** Returns the number of bytes sent. */
export async function sendAll(options: DiscardClientOptions): Promise<number> {
  const socket = await connectToFirst(options);
  socket.resume(); // nothing should come; reading lets us see the server's FIN
  const serverClosed = once(socket, 'end');
  try {
    // pipeline() ends the socket when the input ends: shutdown(SHUT_WR), our FIN.
    await pipeline(options.input, socket, { end: true });
    await serverClosed;
  } catch (error) {
    throw new LabError('ERR_CONNECTION_LOST', `the connection failed: ${(error as Error).message}`);
  } finally {
    socket.destroy();
  }
  return socket.bytesWritten;
}
