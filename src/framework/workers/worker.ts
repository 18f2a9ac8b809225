/**
 * Worker processes (--workers N), a worker's side: serve the connections the primary hands over
 * (pool.ts), and report what happens as events. A worker binds nothing and logs nothing; it has
 * the same services as the primary, made from the same command line, and serves each connection
 * with its protocol's server, under the number the primary gave it.
 *
 * Signals are the primary's to act on: Ctrl-C reaches every process of the terminal's process
 * group, and systemd signals every process of the service, but only the primary knows when the
 * workers should stop; it says so with a `stop` message. If the primary goes away without one
 * (the IPC channel closes), the worker closes its connections and exits: no orphans.
 */
import type net from 'node:net';
import type { EventStream, EventType, ServerEvent } from '../events.js';
import { readProxyHeader, type HeaderOutcome } from '../proxy-protocol.js';
import { resetNow, type AdmittedConnection, type LabServer } from '../server.js';
import type { ToPrimary, ToWorker } from './messages.js';

/** Signals whose default action (or Node's: SIGUSR1 opens the inspector) a worker must not take. */
const PRIMARY_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGQUIT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'];
/**
 * Events the primary makes itself: `accepted` (it accepted), `listening` (it listens) and
 * `summary` (it adds the workers up). A worker never reports those.
 */
const PRIMARY_EVENTS = new Set<EventType>(['accepted', 'listening', 'summary']);

/** Serves handed-over connections with `servers` (by protocol name) until the primary says stop. Resolves once stopped. */
export function serveForPrimary(servers: ReadonlyMap<string, LabServer>, stream: EventStream): Promise<void> {
  for (const signal of PRIMARY_SIGNALS) process.on(signal, () => {});
  const send = (message: ToPrimary): void => {
    if (process.connected) process.send!(message);
  };
  // Events go in batches, one message per turn of the event loop: a connection's few events, or a
  // busy turn's hundreds, cost one write(2) on the channel.
  let batch: ServerEvent[] = [];
  const flush = (): void => {
    if (batch.length > 0) send({ kind: 'events', events: batch });
    batch = [];
  };
  const forward = (event: ServerEvent): void => {
    if (batch.length === 0) setImmediate(flush);
    batch.push(event);
  };

  /**
   * --proxy-protocol: the header comes first, read here; then the primary, told what it says,
   * decides. A socket whose header is no header is reset at once (the primary says why).
   */
  const awaitingVerdict = new Map<number, net.Socket>();
  // Once stopping, no connection starts here: a verdict that comes late resets it.
  let stopping = false;
  const readHeader = async ({ ticket, versions, timeoutMs }: Extract<ToWorker, { kind: 'read-header' }>, socket: net.Socket | undefined): Promise<void> => {
    // As serveFromPrimary() does, before anything is read: a proxy's FIN closes only its direction.
    if (socket !== undefined) socket.allowHalfOpen = true;
    const outcome: HeaderOutcome = socket === undefined ? { problem: 'the peer closed before its header was complete', incomplete: true } : await readProxyHeader(socket, versions, timeoutMs);
    if (socket !== undefined) {
      if ('problem' in outcome || stopping) resetNow(socket);
      else awaitingVerdict.set(ticket, socket);
    }
    send({ kind: 'header', ticket, outcome });
  };

  return new Promise((resolve) => {
    const stop = async (deadlineMs: number): Promise<void> => {
      if (stopping) return;
      stopping = true;
      // A verdict may never come now: a header read but not yet judged ends here.
      for (const socket of awaitingVerdict.values()) resetNow(socket);
      awaitingVerdict.clear();
      const forced: Record<string, number> = {};
      await Promise.all([...servers].map(async ([protocol, server]) => (forced[protocol] = (await server.close(deadlineMs)).forced)));
      flush();
      send({ kind: 'stopped', forced });
      process.disconnect?.();
      resolve();
    };
    process.on('message', (message: ToWorker, socket?: net.Socket) => {
      switch (message.kind) {
        case 'start':
          stream.subscribe(forward, message.forward.filter((type) => !PRIMARY_EVENTS.has(type)));
          send({ kind: 'ready' });
          return;
        case 'connection':
          return takeConnection(servers, stream, message, socket);
        case 'read-header':
          return void readHeader(message, socket);
        case 'verdict': {
          const waiting = awaitingVerdict.get(message.ticket);
          awaitingVerdict.delete(message.ticket);
          if (waiting === undefined) return;
          if (message.admitted === undefined || stopping) return resetNow(waiting);
          return takeConnection(servers, stream, message.admitted, waiting);
        }
        case 'make-room':
          servers.get(message.protocol)?.makeRoom();
          return;
        case 'stop':
          void stop(message.deadlineMs);
          return;
      }
    });
    process.on('disconnect', () => void stop(0));
  });
}

/** A connection the primary admitted: served by its protocol's server, or, if its socket is gone, reported closed. */
function takeConnection(servers: ReadonlyMap<string, LabServer>, stream: EventStream, admitted: AdmittedConnection, socket: net.Socket | undefined): void {
  const { protocol, conn, local, remote } = admitted;
  const server = servers.get(protocol);
  // Node's documentation warns that the socket may be gone (the client closed) by the time it arrives.
  if (server === undefined || socket === undefined) {
    socket?.destroy();
    stream.forService(protocol, 'tcp').emitAbout({ conn, local, remote }, 'closed', { closedBy: 'client', how: 'rst', bytesIn: 0, bytesOut: 0, durationMs: 0 });
    return;
  }
  server.serveFromPrimary(socket, admitted);
}
