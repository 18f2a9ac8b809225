/**
 * A client for the protocols that just talk: connect, read until the server closes
 * (or until we have enough), close. qotd and time close first; chargen never does,
 * so for chargen we stop after `maxBytes` and close first ourselves.
 */
import { LabError } from '../errors.js';
import { connectToFirst, type ConnectOptions } from './connect.js';

export interface StreamClientOptions extends ConnectOptions {
  /** Stop reading and close after this many bytes; the rest is never read. */
  maxBytes?: number;
}

/** Everything the server sent, up to maxBytes. */
export async function readFromServer(options: StreamClientOptions): Promise<Buffer> {
  const socket = await connectToFirst(options);
  const limit = options.maxBytes ?? Infinity;
  const chunks: Buffer[] = [];
  let received = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      socket.setTimeout(options.timeoutMs, () => reject(new LabError('ERR_TIMEOUT', `no data from the server for ${options.timeoutMs / 1000} s`)));
      socket.on('data', (chunk: Buffer) => {
        const wanted = chunk.subarray(0, limit - received);
        chunks.push(wanted);
        received += wanted.length;
        if (received >= limit) resolve();
      });
      socket.once('end', resolve); // the server's FIN: it has said all it will say
      socket.once('error', (error: Error) => reject(new LabError('ERR_CONNECTION_LOST', `the connection failed: ${error.message}`)));
    });
  } finally {
    // close(2). If we stop before the server's FIN (chargen), this is an active close, and
    // unread bytes in our receive buffer make the kernel send RST rather than FIN.
    socket.destroy();
  }
  return Buffer.concat(chunks, received);
}
