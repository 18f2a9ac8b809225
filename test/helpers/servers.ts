/** Starting a real server on 127.0.0.1 and an ephemeral port, and talking to it. */
import { once } from 'node:events';
import net from 'node:net';
import type { Connection, ConnectionState } from '../../src/framework/connection.js';
import type { Protocol } from '../../src/framework/protocol.js';
import { createServer, type LabServer, type ServerOptions } from '../../src/framework/server.js';
import { captureLog, type CapturedLog } from './capture-log.js';

export interface TestServer {
  server: LabServer;
  port: number;
  log: CapturedLog;
  /** Each connection's lifecycle, in order, by connection id. */
  states: Map<number, ConnectionState[]>;
  /** Resolves when connection `id` reaches `closed`. */
  closed(id: number): Promise<Connection>;
}

export async function startServer(protocol: Protocol, options: Partial<ServerOptions> = {}): Promise<TestServer> {
  const log = captureLog();
  const server = createServer({ protocol, host: '127.0.0.1', port: 0, logger: log.logger, ...options });
  const states = new Map<number, ConnectionState[]>();
  const closedConnections = new Map<number, Connection>();
  server.on('connection-state', (conn, from, to) => {
    if (!states.has(conn.id)) states.set(conn.id, [from]);
    states.get(conn.id)!.push(to);
    if (to === 'closed') closedConnections.set(conn.id, conn);
  });
  const { port } = await server.listen();
  const closed = (id: number): Promise<Connection> =>
    new Promise((resolve) => {
      const done = closedConnections.get(id);
      if (done !== undefined) return resolve(done);
      const onState = (conn: Connection, _from: ConnectionState, to: ConnectionState): void => {
        if (conn.id !== id || to !== 'closed') return;
        server.off('connection-state', onState);
        resolve(conn);
      };
      server.on('connection-state', onState);
    });
  return { server, port, log, states, closed };
}

export async function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  const socket = net.connect({ host, port, allowHalfOpen: true });
  await once(socket, 'connect');
  return socket;
}

/** Reads everything until the peer's FIN. */
export async function readAll(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(socket, 'end');
  return Buffer.concat(chunks);
}

/** Sends `data`, half-closes, and returns everything echoed until the server's FIN. */
export async function echoRoundTrip(port: number, data: Buffer): Promise<Buffer> {
  const socket = await connect(port);
  const reply = readAll(socket);
  socket.end(data);
  const bytes = await reply;
  socket.destroy();
  return bytes;
}

/**
 * Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`.
 * For conditions no event announces, such as a state in the kernel's /proc/net/tcp.
 */
export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 5000, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
