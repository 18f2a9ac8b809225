/** Starting a real server on 127.0.0.1 and an ephemeral port, and talking to it. */
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { EventRecorder } from '../../src/framework/event-recorder.js';
import type { ConnectionState, EventOf } from '../../src/framework/events.js';
import type { Protocol } from '../../src/framework/protocol.js';
import { createServer, type LabServer, type ServerOptions } from '../../src/framework/server.js';

export interface TestServer {
  server: LabServer;
  port: number;
  /** Every event of the server, from before it listened. */
  events: EventRecorder;
  /** Connection `id`'s lifecycle so far, from `accepted`. */
  states(id: number): ConnectionState[];
  /** Connection `id`'s `closed` event, once it comes; fails after 5 s. */
  closed(id: number): Promise<EventOf<'closed'>>;
}

export async function startServer(protocol: Protocol, options: Partial<ServerOptions> = {}): Promise<TestServer> {
  const server = createServer({ protocol, ...options });
  const events = new EventRecorder(server.events.stream);
  const [local] = await server.listen({ host: '127.0.0.1', port: 0 });
  return {
    server,
    port: local!.port,
    events,
    states: (id) => ['accepted', ...events.of('state', (e) => e.conn === id).map((e) => e.to)],
    closed: (id) => events.waitFor('closed', (e) => e.conn === id),
  };
}

export async function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  const socket = net.connect({ host, port, allowHalfOpen: true });
  await once(socket, 'connect', { signal: AbortSignal.timeout(5000) });
  return socket;
}

/**
 * A port that was free on 127.0.0.1 a moment ago, for a program that must be told its port rather
 * than given port 0 (systemd-socket-activate, xinetd): bound with port 0, then closed.
 */
export async function freePort(transport: 'tcp' | 'udp' = 'tcp'): Promise<number> {
  if (transport === 'udp') {
    const socket = dgram.createSocket('udp4');
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    const { port } = socket.address();
    socket.close();
    return port;
  }
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** Reads everything until the peer's FIN; fails if none comes within `deadlineMs`. */
export async function readAll(socket: net.Socket, deadlineMs = 20_000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(socket, 'end', { signal: AbortSignal.timeout(deadlineMs) });
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
