/**
 * The listener framework: bind, listen, accept, track each connection's lifecycle, and shut
 * down gracefully. It serves any protocol plugin (src/protocols/) and holds no protocol logic.
 *
 * The system calls underneath, as in the textbook's C and Perl servers:
 *   socket() + setsockopt(SO_REUSEADDR) + bind() + listen()   → net.Server#listen (Node sets
 *                                                              SO_REUSEADDR on every TCP listener)
 *   accept() in a loop, one new socket per client            → the 'connection' event
 */
import { EventEmitter } from 'node:events';
import { lookupService } from 'node:dns/promises';
import net from 'node:net';
import type { Logger } from 'pino';
import { Connection, ORDERLY_CLOSE, type ClosePolicy, type ConnectionState } from './connection.js';
import type { AccessControl } from './access-control.js';
import { formatEndpoint, formatListeningEndpoint, formatSocketPair, socketEnds, unmapIPv4, type Endpoint } from './endpoint.js';
import { describeListenError } from './listen.js';
import type { ConnectionHandler, Protocol } from './protocol.js';
import { RateLimiter } from './token-bucket.js';

/**
 * Connection limits. Each connection costs a file descriptor and some memory, so a server
 * must refuse connections beyond what it can hold, and keep one client (or one scanner)
 * from taking every slot: that is what the per-source limit is for.
 */
export interface ConnectionLimits {
  /** All connections at once. 1024 is a common default of the soft `ulimit -n`. */
  maxConnections: number;
  /** Connections from one IP address. A classroom behind one NAT shares an address, so not too low. */
  maxPerSource: number;
}

export const DEFAULT_LIMITS: ConnectionLimits = { maxConnections: 1024, maxPerSource: 64 };

/**
 * Connections logged in full (accepted, what was sent, closed, kernel state) per second, after a
 * burst of twice as many. A class of 200 connecting at once is logged whole; a load test of
 * thousands a second is sampled, so that writing the log does not become the server's main work.
 * Connections beyond it are served as usual, and counted in the next logged `accepted` line.
 */
export const DEFAULT_CONNECTION_LOGS_PER_SECOND = 100;

/** Refusals are logged at most this often, so that a flood cannot flood the log as well. */
const REFUSAL_LOGS_PER_SECOND = 5;
const REFUSAL_LOG_BURST = 20;

export type RefusalReason = 'denied' | 'max-connections' | 'max-per-source';

/** What every service needs, over TCP (this file) or UDP (datagram-server.ts). */
export interface ServiceOptions {
  protocol: Protocol;
  /** The protocol's own option values (see Protocol#options). */
  settings?: Readonly<Record<string, unknown>>;
  /** Local address to bind. Default: `::` (IPv6 and IPv4), or `0.0.0.0` where IPv6 is unavailable. */
  host?: string;
  /** 0 asks the kernel for an ephemeral port; `address()` tells which one it chose. */
  port: number;
  logger: Logger;
  /** The clock protocols read. Injected so tests can fix the time. */
  now?: () => Date;
}

export interface ServerOptions extends ServiceOptions {
  /** Look up each client's host name (getnameinfo(3), like the tutorial's gethostbyaddr). */
  resolvePeerNames?: boolean;
  /** Close connections that stay silent this long (ms); 0 disables the timer. */
  idleTimeoutMs?: number;
  /** How a protocol's active close is carried out. */
  closePolicy?: ClosePolicy;
  /**
   * Serve one connection at a time, like the tutorial's Perl loop (accept, serve, close,
   * accept again). Later clients still connect, since the kernel completes the handshake
   * and queues them (the listen backlog), but they get no service until their turn.
   */
  iterative?: boolean;
  limits?: Partial<ConnectionLimits>;
  /** Which client addresses may connect (--allow/--deny); everyone when absent. */
  access?: AccessControl;
  /** Connections logged per second (see DEFAULT_CONNECTION_LOGS_PER_SECOND); 0 logs every one. */
  connectionLogsPerSecond?: number;
}

export interface ServerSummary {
  protocol: string;
  /** Connections accepted since the server started. */
  connections: number;
  bytesIn: number;
  bytesOut: number;
  /** Connections still open at the shutdown deadline, and so closed by force. */
  forced: number;
}

export interface ServerEvents {
  /** A connection moved through its lifecycle (see connection.ts). */
  'connection-state': [conn: Connection, from: ConnectionState, to: ConnectionState];
}

/** The wildcard addresses tried, in order, when no host is given. */
const DUAL_STACK_WILDCARD = '::';
const IPV4_WILDCARD = '0.0.0.0';

export class LabServer extends EventEmitter<ServerEvents> {
  readonly protocol: Protocol;
  /** Every connection whose descriptor is still open. */
  readonly connections = new Set<Connection>();
  private readonly listener: net.Server;
  private readonly handler: ConnectionHandler;
  private readonly log: Logger;
  private nextConnectionId = 1;
  private readonly totals = { connections: 0, bytesIn: 0, bytesOut: 0 };
  private whenAllClosed?: () => void;
  /** Iterative mode: the connection being served, and those accepted behind it. */
  private serving?: Connection;
  private readonly waiting: Connection[] = [];
  private readonly limits: ConnectionLimits;
  /**
   * Open connections per client IP address, for the per-source limit; undefined while fewer
   * connections are open than that limit, since then no address can be over it. Until then we
   * need not ask the kernel who each client is: getpeername(2), with Node building the address
   * object, is 4% of a daytime connection's cost. Counting starts when the limit comes within
   * reach and stops when the server has no connection left.
   */
  private perSource?: Map<string, number>;
  private readonly refusalLogBudget = new RateLimiter(REFUSAL_LOGS_PER_SECOND, REFUSAL_LOG_BURST);
  private readonly acceptErrorLogBudget = new RateLimiter(REFUSAL_LOGS_PER_SECOND, REFUSAL_LOG_BURST);
  private readonly connectionLogBudget?: RateLimiter;
  /** The logger of connections over the log budget: every call is a no-op. */
  private readonly unloggedLog: Logger;

  constructor(private readonly options: ServerOptions) {
    super();
    this.protocol = options.protocol;
    this.log = options.logger;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    const logsPerSecond = options.connectionLogsPerSecond ?? DEFAULT_CONNECTION_LOGS_PER_SECOND;
    if (logsPerSecond > 0) this.connectionLogBudget = new RateLimiter(logsPerSecond, 2 * logsPerSecond);
    this.unloggedLog = options.logger.child({}, { level: 'silent' });
    const now = options.now ?? (() => new Date());
    this.handler = options.protocol.createHandlers(options.settings ?? {}, { now }).tcp;
    // allowHalfOpen: a client's FIN closes only its direction; the protocol decides when we
    // close ours. (Node's default would answer every FIN with our own at once.)
    // pauseOnConnect: read nothing until the protocol starts serving; until then, the
    // client's bytes wait in the kernel's receive buffer, as they would for a busy C server.
    this.listener = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.accept(socket));
  }

  /** Binds and listens. Resolves with the local address, rejects with a LabError. */
  async listen(): Promise<Endpoint> {
    const { host, port } = this.options;
    try {
      await this.bind(host ?? DUAL_STACK_WILDCARD, port);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const ipv6Unavailable = code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL';
      if (host !== undefined || !ipv6Unavailable) throw describeListenError(error, host, port);
      await this.bind(IPV4_WILDCARD, port).catch((e: unknown) => {
        throw describeListenError(e, IPV4_WILDCARD, port);
      });
    }
    // After listen succeeds, errors come from accept(2), e.g. EMFILE when out of descriptors.
    // They concern one would-be connection; the listener keeps going.
    this.listener.on('error', (error) => {
      const skipped = this.acceptErrorLogBudget.take();
      if (skipped !== undefined) this.log.warn({ event: 'accept-error', code: (error as NodeJS.ErrnoException).code, skipped }, `accept failed: ${error.message}`);
    });
    const local = this.address();
    this.log.info(
      { event: 'listening', protocol: this.protocol.name, address: local.address, port: local.port, socket: formatListeningEndpoint(local) },
      `${this.protocol.name} (RFC ${this.protocol.rfc}) listening on ${formatListeningEndpoint(local)}`,
    );
    return local;
  }

  address(): Endpoint {
    const bound = this.listener.address();
    if (bound === null || typeof bound === 'string') throw new Error('the server is not listening on a TCP port');
    return { address: bound.address, port: bound.port };
  }

  /**
   * A graceful stop in two speeds, like Go's http.Server: stop accepting at once, let open
   * connections finish until `deadlineMs`, then close whatever is left.
   */
  async close(deadlineMs: number): Promise<ServerSummary> {
    // Closing the listening socket: new SYNs to this port are now answered with RST.
    this.listener.close();
    const open = this.connections.size;
    if (open > 0) {
      this.log.info({ event: 'draining', open, deadlineMs }, `waiting up to ${deadlineMs} ms for ${open} open connection(s)`);
      const allClosed = new Promise<void>((resolve) => (this.whenAllClosed = resolve));
      let deadline: NodeJS.Timeout | undefined;
      await Promise.race([allClosed, new Promise((resolve) => (deadline = setTimeout(resolve, deadlineMs)))]);
      clearTimeout(deadline);
    }
    const forced = this.closeAll();
    if (this.connections.size > 0) await new Promise<void>((resolve) => (this.whenAllClosed = resolve));
    return { protocol: this.protocol.name, ...this.totals, forced };
  }

  /** Destroys every open connection now; returns how many there were. */
  closeAll(): number {
    const open = [...this.connections];
    for (const conn of open) conn.destroy('shutdown');
    return open.length;
  }

  private bind(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.listener.once('error', reject);
      this.listener.listen({ host, port }, () => {
        this.listener.off('error', reject);
        resolve();
      });
    });
  }

  private accept(socket: net.Socket): void {
    const refusal = this.admission(socket);
    if (refusal !== undefined) return this.refuse(socket, refusal);
    if (this.perSource !== undefined) countSource(this.perSource, clientAddress(socket), +1);
    const id = this.nextConnectionId++;
    // The number of connections not logged since the last logged one, or undefined: don't log this one.
    const unloggedBefore = this.connectionLogBudget === undefined ? 0 : this.connectionLogBudget.take();
    const log = unloggedBefore === undefined ? this.unloggedLog : this.log.child({ conn: id });
    const conn = new Connection(id, socket, log, this.options.closePolicy ?? ORDERLY_CLOSE, (c, from, to) => this.onStateChange(c, from, to));
    this.connections.add(conn);
    this.totals.connections += 1;
    if (unloggedBefore !== undefined) {
      const unlogged = unloggedBefore > 0 ? ` (${unloggedBefore} connections before it were served but not logged: over ${this.connectionLogBudget?.perSecond} a second)` : '';
      conn.log.info(
        { event: 'accepted', local: formatEndpoint(conn.local), remote: formatEndpoint(conn.remote), pair: conn.socketPair, ...(unloggedBefore > 0 && { unlogged: unloggedBefore }) },
        `accepted connection #${id} ${conn.socketPair}${unlogged}`,
      );
    }
    if (this.options.resolvePeerNames) this.resolvePeerName(conn);
    if (this.options.iterative && this.serving !== undefined) {
      this.waiting.push(conn);
      conn.log.info({ event: 'queued', behind: this.serving.id }, `connection #${id} waits: the iterative server is busy with #${this.serving.id}`);
      return;
    }
    this.serve(conn);
  }

  /** Why this client may not have a connection now, if it may not. */
  private admission(socket: net.Socket): RefusalReason | undefined {
    if (this.options.access !== undefined && !this.options.access.permits(clientAddress(socket))) return 'denied';
    if (this.connections.size >= this.limits.maxConnections) return 'max-connections';
    if (this.connections.size >= this.limits.maxPerSource) {
      this.perSource ??= this.countSources();
      if ((this.perSource.get(clientAddress(socket)) ?? 0) >= this.limits.maxPerSource) return 'max-per-source';
    }
    return undefined;
  }

  /** Open connections per client address, counted from scratch. */
  private countSources(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const conn of this.connections) countSource(counts, clientAddress(conn.socket), +1);
    return counts;
  }

  /**
   * Refuses a connection the kernel has already accepted: reset it at once (SO_LINGER 0,
   * then close), so the client learns immediately and this side keeps no TIME_WAIT for it.
   */
  private refuse(socket: net.Socket, reason: RefusalReason): void {
    const { local, remote } = socketEnds(socket);
    socket.on('error', () => {}); // the client may be gone already; there is nothing to report
    socket.resetAndDestroy();
    const skipped = this.refusalLogBudget.take();
    if (skipped === undefined) return;
    const pair = formatSocketPair(local, remote);
    this.log.warn(
      { event: 'refused', reason, pair, ...(skipped > 0 && { skipped }) },
      `refused ${pair}: ${REFUSAL_EXPLANATIONS[reason](this.limits)}${skipped > 0 ? ` (${skipped} earlier refusals not logged)` : ''}`,
    );
  }

  private serve(conn: Connection): void {
    if (this.options.iterative) this.serving = conn;
    this.watchIdleTime(conn);
    conn.activate();
    this.handler(conn);
  }

  private onStateChange(conn: Connection, from: ConnectionState, to: ConnectionState): void {
    // Checked first: three transitions per connection, and under load most are not logged.
    if (conn.log.isLevelEnabled('debug')) conn.log.debug({ event: 'state', from, to }, `connection #${conn.id}: ${from} → ${to}`);
    if (to === 'closed') this.forget(conn);
    this.emit('connection-state', conn, from, to);
    if (to === 'closed' && conn === this.serving) {
      this.serving = undefined;
      const next = this.waiting.shift();
      if (next !== undefined) this.serve(next);
    }
  }

  private forget(conn: Connection): void {
    this.totals.bytesIn += conn.socket.bytesRead;
    this.totals.bytesOut += conn.socket.bytesWritten;
    this.connections.delete(conn);
    if (this.perSource !== undefined) countSource(this.perSource, clientAddress(conn.socket), -1);
    const queuedAt = this.waiting.indexOf(conn);
    if (queuedAt !== -1) this.waiting.splice(queuedAt, 1);
    if (this.connections.size === 0) {
      this.perSource = undefined; // idle: no address can be near the per-source limit
      this.whenAllClosed?.();
    }
    if (!conn.log.isLevelEnabled('info')) return;
    const report = conn.report();
    const why = report.reason === undefined || report.reason === 'protocol' ? '' : ` (${report.reason})`;
    conn.log.info(
      { event: 'closed', pair: conn.socketPair, ...report },
      `closed connection #${conn.id}: ${report.closedBy} closed first with ${report.how.toUpperCase()}${why}; ` +
        `${report.bytesIn} bytes in, ${report.bytesOut} out, ${report.durationMs} ms`,
    );
  }

  /** An inactivity timer, like SO_RCVTIMEO in Berkeley systems: it restarts on every byte. */
  private watchIdleTime(conn: Connection): void {
    const idleTimeoutMs = this.options.idleTimeoutMs ?? 0;
    if (idleTimeoutMs <= 0) return;
    conn.socket.setTimeout(idleTimeoutMs, () => {
      conn.log.info({ event: 'idle-timeout', idleTimeoutMs }, `connection #${conn.id} idle for ${idleTimeoutMs} ms: closing it`);
      conn.destroy('idle-timeout');
    });
  }

  /** Reverse lookup (getnameinfo(3)); it runs beside the connection and never delays it. */
  private resolvePeerName(conn: Connection): void {
    const address = unmapIPv4(conn.remote.address);
    lookupService(address, conn.remote.port).then(
      ({ hostname }) => conn.log.info({ event: 'peer-name', host: hostname }, `connection #${conn.id} is from ${hostname}`),
      (error: NodeJS.ErrnoException) =>
        conn.log.info({ event: 'peer-name', host: null, code: error.code }, `connection #${conn.id}: no host name for ${address} (${error.code})`),
    );
  }
}

/** The client's IP address, as the per-source limit and --allow/--deny see it (Node caches getpeername). */
const clientAddress = (socket: net.Socket): string => unmapIPv4(socket.remoteAddress ?? '');

function countSource(counts: Map<string, number>, source: string, change: 1 | -1): void {
  const count = (counts.get(source) ?? 0) + change;
  if (count > 0) counts.set(source, count);
  else counts.delete(source);
}

const REFUSAL_EXPLANATIONS: Record<RefusalReason, (limits: ConnectionLimits) => string> = {
  denied: () => 'the address is not allowed (--allow/--deny)',
  'max-connections': ({ maxConnections }) => `already serving ${maxConnections} connections (--max-connections)`,
  'max-per-source': ({ maxPerSource }) => `this address already has ${maxPerSource} connections (--max-per-source)`,
};

export function createServer(options: ServerOptions): LabServer {
  return new LabServer(options);
}
