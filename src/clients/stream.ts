/**
 * A client for the protocols that just talk: connect, read until the server closes
 * (or until we have enough), close. qotd and time close first; chargen never does,
 * so for chargen we stop after `maxBytes` and close first ourselves.
 */
import { LabError } from '../errors.js';
import { connectToFirst, failedError, type ConnectOptions, type Connection } from './connect.js';

export interface StreamClientOptions extends ConnectOptions {
  /** Stop reading and close after this many bytes; the rest is never read. */
  maxBytes?: number;
  /**
   * Once some bytes have come, stop when the server has been silent this long, for a server
   * that sends its reply but never closes (`lab-server time --no-close`).
   */
  quietMs?: number;
}

export interface StreamReply {
  /** Everything the server sent, up to maxBytes. */
  data: Buffer;
  /** Why reading stopped: the server's FIN or RST, enough bytes, or a silence of `quietMs`. */
  stoppedBy: 'fin' | 'rst' | 'enough' | 'quiet';
  conn: Connection;
}

export async function readFromServer(options: StreamClientOptions): Promise<StreamReply> {
  const conn = await connectToFirst(options);
  const { socket } = conn;
  const limit = options.maxBytes ?? Infinity;
  const chunks: Buffer[] = [];
  let received = 0;
  let quiet: NodeJS.Timeout | undefined;
  try {
    const stoppedBy = await new Promise<StreamReply['stoppedBy']>((resolve, reject) => {
      socket.setTimeout(options.timeoutMs, () => reject(new LabError('ERR_TIMEOUT', `no data from the server for ${options.timeoutMs / 1000} s`)));
      socket.on('data', (chunk: Buffer) => {
        const wanted = chunk.subarray(0, limit - received);
        chunks.push(wanted);
        received += wanted.length;
        if (received >= limit) resolve('enough');
        if (options.quietMs !== undefined) {
          clearTimeout(quiet);
          quiet = setTimeout(() => resolve('quiet'), options.quietMs);
        }
      });
      // The server's FIN (it has said all it will say), its RST, or another failure.
      void conn.ended.then(() => (conn.serverClose === undefined ? reject(failedError(conn)) : resolve(conn.serverClose)));
    });
    return { data: Buffer.concat(chunks, received), stoppedBy, conn };
  } finally {
    clearTimeout(quiet);
    // close(2). If we stop before the server's FIN (chargen), this is an active close, and
    // unread bytes in our receive buffer make the kernel send RST rather than FIN.
    socket.destroy();
  }
}
