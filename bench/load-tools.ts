/** Helpers for the memory scenarios, whose clients are Node sockets (they run in bench/load-process.ts). */
import { once } from 'node:events';
import net from 'node:net';

const LOOPBACK = '127.0.0.1';

/** Connects to the server under test; rejects on a connect error. */
export async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: LOOPBACK, port, noDelay: true });
  await once(socket, 'connect');
  return socket;
}

/**
 * Opens `count` connections, at most `parallel` handshakes at a time: the server's listen
 * backlog holds 511 pending connections (Node's default), and a full backlog drops SYNs, which
 * the client then retries only after a second.
 */
export async function connectMany(port: number, count: number, parallel: number, deadline: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  let reset: Error | undefined;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && performance.now() < deadline && reset === undefined) {
      next += 1;
      const socket = await connect(port);
      // Until the scenario adds its own listener, an error here must not crash us unexplained.
      socket.once('error', (error) => (reset ??= error));
      sockets.push(socket);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  if (reset !== undefined) {
    for (const socket of sockets) socket.destroy();
    throw new Error(`a connection failed while opening ${count} (${reset.message}): did a server limit such as --max-per-source refuse it?`);
  }
  return sockets;
}

/**
 * 64-byte lines of printable text, as a student's client would send: 63 characters and "\n".
 * Each line differs, so an echo that mixes up lines is caught.
 */
export function textLine(index: number): Buffer {
  const head = `line ${index} `;
  return Buffer.from(head + 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ'.repeat(2).slice(0, 63 - head.length) + '\n');
}
