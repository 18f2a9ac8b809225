/**
 * The listener framework: accept connections, track each connection's lifecycle, enforce the
 * limits, and shut down gracefully. It serves any protocol plugin (src/protocols/) and holds no
 * protocol logic. It does not log: it says what happened as events (events.ts), and observers
 * (src/observers/) turn them into log lines, kernel-state reports, or whatever they watch for.
 *
 * The system calls underneath, as in the textbook's C and Perl servers:
 *   socket() + setsockopt(SO_REUSEADDR) + bind() + listen()   → listen.ts (Node sets SO_REUSEADDR
 *                                                              on every TCP listener)
 *   accept() in a loop, one new socket per client            → the listener's 'connection' event
 *   getpeername(), getsockname()                             → the socket pair, read once at accept
 */
import { lookupService } from 'node:dns/promises';
import { once, setMaxListeners } from 'node:events';
import net from 'node:net';
import type { AccessControl } from './access-control.js';
import { Connection, ORDERLY_CLOSE, type ClosePolicy } from './connection.js';
import { localEndpoint, remoteEndpoint, unmapIPv4, type Endpoint } from './endpoint.js';
import { TokenBucket } from './token-bucket.js';
import { escapeText } from './escape.js';
import { EventStream, type ConnectionIdentity, type ConnectionState, type EventOf, type ProxyHop, type RefusalReason, type ServiceEvents } from './events.js';
import { openTcpListeners, type Bound, type ListenOn } from './listen.js';
import type { ConnectionHandler, Protocol } from './protocol.js';
import { readProxyHeader, type HeaderOutcome, type ProxyVersions } from './proxy-protocol.js';
import { DEFAULT_MAX_SEND_QUEUE_BYTES, SendQueueWatcher } from './send-queue.js';

/**
 * Connection limits. Each connection costs a file descriptor and some memory, so a server
 * must refuse connections beyond what it can hold, and keep one client (or one scanner)
 * from taking every slot: that is what the per-source limit is for.
 */
export interface ConnectionLimits {
  /** All connections at once. */
  maxConnections: number;
  /** Connections from one IP address. */
  maxPerSource: number;
  /**
   * New connections a second, on average, after a burst of `burst` (xinetd's `cps`, without its
   * cliff of switching the service off for a while): a token bucket, so a steady trickle is always
   * served and a flood is cut to the rate. Undefined: no limit.
   */
  rate?: { perSecond: number; burst: number };
  /**
   * When the server is full, a new client takes the place of the connection that has moved no
   * byte either way for longest, if that is at least this long (ms); 0 never evicts.
   */
  evictStalledAfterMs: number;
  /** Bytes one connection may leave unacknowledged before the protocol waits (send-queue.ts); 0: no cap. */
  maxSendQueueBytes: number;
}

/** 1024 is a common default of the soft `ulimit -n`: the descriptors a process may hold. */
export const DEFAULT_MAX_CONNECTIONS = 1024;

/**
 * A quarter of all slots per address. A class behind one NAT, or a load test of 100 connections
 * from one host, shares one address, so the limit must not be strict; and still no single address
 * can take every slot. (xinetd's `per_source` and systemd's `MaxConnectionsPerSource=` are off by
 * default; a quarter keeps most of their openness and some protection.)
 */
/**
 * Slowloris by default: a few addresses opening connections and sending nothing fill every slot
 * (17 × 64 > 1024), and each limit above keeps its count. Making room from connections stalled
 * for 10 s keeps the server usable for newcomers, without timing anyone out while there is room:
 * the labs that hold silent connections on purpose hold far fewer than --max-connections.
 */
export const DEFAULT_EVICT_STALLED_AFTER_MS = 10_000;

export const defaultMaxPerSource = (maxConnections: number): number => Math.max(1, Math.floor(maxConnections / 4));

/** What every service needs, over TCP (this file) or UDP (datagram-server.ts). */
export interface ServiceOptions {
  protocol: Protocol;
  /** The protocol's own option values (see Protocol#options). */
  settings?: Readonly<Record<string, unknown>>;
  /** Where to publish events; a stream of its own when absent (`server.events.stream`). */
  events?: EventStream;
  /** The clock protocols read. Injected so tests can fix the time. */
  now?: () => Date;
}

/** A reverse lookup: the host name of an address, as node:dns lookupService gives it. */
export type PeerNameLookup = (address: string, port: number) => Promise<{ hostname: string }>;

export interface ServerOptions extends ServiceOptions {
  /**
   * Look up each client's host name (getnameinfo(3), like the tutorial's gethostbyaddr); a function
   * here is called instead of Node's lookupService (tests inject one).
   */
  resolvePeerNames?: boolean | PeerNameLookup;
  /** Close connections whose client stays silent this long (ms); 0 disables the timer. */
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
  /** Read a PROXY protocol header first on every connection (--proxy-protocol); see proxy-protocol.ts. */
  proxyProtocol?: ProxyProtocolOptions;
  /** Where procfs is mounted, for the kernel's send queues (send-queue.ts); tests point it elsewhere. Default `/proc`. */
  procRoot?: string;
  /**
   * Serve admitted connections in other processes (--workers): this server then accepts, admits
   * and counts, and `handOff` passes each connection on (workers/pool.ts). Without it, connections
   * are served here.
   */
  handOff?: ConnectionHandOff;
}

/**
 * Where an admitted connection goes when this process only accepts (workers/pool.ts). Its end comes
 * back as a `closed` event on the server's stream, whichever process served it.
 */
export interface ConnectionHandOff {
  /** Takes the socket (this process keeps no copy) and says which worker serves it (undefined: the first to be ready). */
  hand(socket: net.Socket, connection: AdmittedConnection): number | undefined;
  /**
   * --proxy-protocol: the header is read by a worker, since a socket this process had read from
   * could not move without losing what follows the header. `admit` decides here, with the client's
   * address from it: the connection to serve, or undefined (refused: the worker resets it).
   */
  handForHeader(socket: net.Socket, awaiting: AwaitingHeader, admit: (outcome: HeaderOutcome, worker?: number) => AdmittedConnection | undefined): void;
  /** The service is full: asks every worker to evict its connection stalled longest, if stalled long enough. */
  makeRoom(protocol: string): void;
  /** Stops every worker: each drains for `deadlineMs`; resolves with the connections each service closed by force. */
  drain(deadlineMs: number): Promise<ReadonlyMap<string, number>>;
}

/** A connection from a trusted proxy whose header a worker is to read: the proxy's socket pair, and how to read it. */
export interface AwaitingHeader {
  protocol: string;
  local: Endpoint;
  remote: Endpoint;
  versions: ProxyVersions;
  timeoutMs: number;
}

/** An admitted connection: its number, its socket pair, and what a worker needs to serve it as its own. */
export interface AdmittedConnection extends ConnectionIdentity {
  protocol: string;
  proxy?: ProxyHop;
}

export interface ProxyProtocolOptions {
  versions: ProxyVersions;
  /** The proxies trusted to send a header (--proxy-from); any other peer is refused. */
  trusted: AccessControl;
  /** How long a proxy has to send its whole header (--proxy-timeout). */
  timeoutMs: number;
}

/** 3 s, the and HAProxy's own `timeout client` order of magnitude for a header a proxy writes at once. */
export const DEFAULT_PROXY_TIMEOUT_MS = 3000;

export interface ServerSummary {
  /** Connections accepted since the server started. */
  connections: number;
  bytesIn: number;
  bytesOut: number;
  /** Connections still open at the shutdown deadline, and so closed by force. */
  forced: number;
}

/** A running server's counters: its summary so far, and how many connections are open now. */
export interface ServerProgress extends Omit<ServerSummary, 'forced'> {
  open: number;
}

/** A listening socket, and the local end of every connection it accepts when that is fixed. */
interface Listener {
  server: net.Server;
  /** Bound to one address (not a wildcard): every connection it accepts has this local end. */
  fixedLocal?: Endpoint;
}

const WILDCARD_ADDRESSES = new Set(['::', '0.0.0.0']);

/**
 * Iterative mode: how often the clients waiting their turn are checked for a reset. A queued
 * socket is not read (its bytes wait in the kernel), so nothing would notice a client that gave
 * up until its turn came; a write(2) of zero bytes reports the socket's pending error
 * (ECONNRESET) without sending or reading anything.
 */
const QUEUED_RESET_CHECK_MS = 250;
/** --workers, when full: how often the workers are asked to make room while newcomers keep coming. */
const WORKER_EVICTION_SPACING_MS = 100;
const NOTHING = Buffer.alloc(0);

export class LabServer {
  readonly protocol: Protocol;
  /** Where this server's events go: subscribe with `server.events.stream.subscribe(...)`. */
  readonly events: ServiceEvents;
  /** Every connection whose descriptor is still open. */
  readonly connections = new Set<Connection>();
  readonly limits: ConnectionLimits;
  private readonly listeners: Listener[] = [];
  private readonly handler: ConnectionHandler;
  private readonly totals = { connections: 0, bytesIn: 0, bytesOut: 0 };
  /** Open connections per client IP address, for the per-source limit. */
  private readonly perSource = new Map<string, number>();
  /** Aborted when shutdown begins; protocols see it as `context.shutdown`. */
  private readonly shutdown = new AbortController();
  private whenAllClosed?: () => void;
  /** Iterative mode: the connection being served, and those accepted behind it. */
  private serving?: Connection;
  private readonly waiting: Connection[] = [];
  private waitingCheck?: NodeJS.Timeout;
  /** When the server is full: no connection can have stalled long enough to be evicted before this time. */
  private noEvictionBefore = -Infinity;
  private readonly closePolicy: ClosePolicy;
  /** --rate: the tokens new connections spend. */
  private readonly newConnections?: TokenBucket;
  /** --proxy-protocol: connections accepted whose header has not arrived yet. */
  private awaitingHeader = 0;
  /** --max-send-queue: reads the kernel's send queues for connections that wait for room. */
  private readonly sendQueues?: SendQueueWatcher;
  /** --workers: connections handed to a worker and not closed yet, with their client's address. */
  private readonly handedOff = new Map<number, string>();

  constructor(private readonly options: ServerOptions) {
    this.protocol = options.protocol;
    this.events = (options.events ?? new EventStream()).forService(options.protocol.name, 'tcp');
    const maxConnections = options.limits?.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    const rate = options.limits?.rate;
    this.limits = {
      maxConnections,
      maxPerSource: options.limits?.maxPerSource ?? defaultMaxPerSource(maxConnections),
      evictStalledAfterMs: options.limits?.evictStalledAfterMs ?? DEFAULT_EVICT_STALLED_AFTER_MS,
      maxSendQueueBytes: options.limits?.maxSendQueueBytes ?? DEFAULT_MAX_SEND_QUEUE_BYTES,
      ...(rate && { rate }),
    };
    if (rate !== undefined) this.newConnections = new TokenBucket(rate.perSecond, rate.burst);
    if (this.limits.maxSendQueueBytes > 0) this.sendQueues = new SendQueueWatcher(this.limits.maxSendQueueBytes, this.events, options.procRoot);
    this.closePolicy = options.closePolicy ?? ORDERLY_CLOSE;
    // Every connection of a long-lived protocol (chargen) listens for the shutdown: no leak warning.
    setMaxListeners(0, this.shutdown.signal);
    const context = { now: options.now ?? (() => new Date()), shutdown: this.shutdown.signal };
    this.handler = options.protocol.createHandlers(options.settings ?? {}, context).tcp;
    // A connection served by a worker ends there; its `closed` event, relayed here, frees its place.
    if (options.handOff !== undefined) this.events.stream.on('closed', (closed) => this.forgetHandedOff(closed));
  }

  /**
   * Listens where `on` says: an address and port (both loopback addresses when no host is given),
   * an inherited descriptor, or a listening net.Server. Resolves with the local ends; rejects with
   * a LabError that says what to do.
   */
  async listen(on: ListenOn<net.Server>): Promise<Endpoint[]> {
    // allowHalfOpen: a client's FIN closes only its direction; the protocol decides when we
    // close ours. (Node's default would answer every FIN with our own at once.)
    // pauseOnConnect: read nothing until the protocol starts serving; until then, the
    // client's bytes wait in the kernel's receive buffer, as they would for a busy C server.
    const bound = await openTcpListeners(on, () => net.createServer({ allowHalfOpen: true, pauseOnConnect: true }));
    for (const listening of bound) this.serve(listening);
    return bound.map(({ local }) => local);
  }

  /**
   * Serves one connection that another process accepted, on an inherited descriptor: inetd's
   * `nowait` services and systemd's Accept=yes call accept(2) themselves and start one server
   * process per connection, the way a forking C server does after accept. The connection meets
   * the same access rules and lifecycle as one accepted here. Resolves once it is closed.
   */
  async serveConnection(fd: number): Promise<void> {
    // Node documents a socket made from a descriptor as neither readable nor writable unless told.
    const socket = new net.Socket({ fd, allowHalfOpen: true, readable: true, writable: true });
    const closed = once(socket, 'close');
    this.onConnection(socket);
    await closed;
  }

  /**
   * Serves a connection another process accepted and admitted (a --workers primary): the same
   * lifecycle as one accepted here, under the number the primary gave it. Its `accepted` event was
   * the primary's.
   */
  serveFromPrimary(socket: net.Socket, { conn: id, local, remote, proxy }: AdmittedConnection): void {
    // The primary accepted it paused (pauseOnConnect) and never read from it; Node wraps a received
    // descriptor with Node's defaults, so it gets ours back: a client's FIN closes only its direction.
    socket.allowHalfOpen = true;
    socket.pause();
    this.start(this.adopt(id, socket, local, remote, proxy));
  }

  /** Connections accepted and bytes moved so far, and the connections open now (for a status line). */
  summary(): ServerProgress {
    return { ...this.totals, open: this.openConnections() };
  }

  /** The first listening socket's local end (the port is the same on every one). */
  address(): Endpoint {
    const first = this.listeners[0];
    if (first === undefined) throw new Error('the server is not listening');
    const { address, port } = first.server.address() as net.AddressInfo;
    return { address, port };
  }

  /**
   * A graceful stop in two speeds, like Go's http.Server: stop accepting at once, tell the
   * protocols (context.shutdown), let open connections finish until `deadlineMs`, then close
   * whatever is left.
   */
  async close(deadlineMs: number): Promise<ServerSummary> {
    // Closing the listening sockets: new SYNs to this port are now answered with RST.
    for (const { server } of this.listeners) server.close();
    this.shutdown.abort();
    if (this.options.handOff !== undefined) {
      // The workers drain their connections; every `closed` event comes back before they exit.
      const forced = (await this.options.handOff.drain(deadlineMs)).get(this.protocol.name) ?? 0;
      return this.summarize(forced);
    }
    const open = this.connections.size;
    if (open > 0) {
      this.events.emit('draining', { open, deadlineMs });
      const allClosed = new Promise<void>((resolve) => (this.whenAllClosed = resolve));
      let deadline: NodeJS.Timeout | undefined;
      await Promise.race([allClosed, new Promise((resolve) => (deadline = setTimeout(resolve, deadlineMs)))]);
      clearTimeout(deadline);
    }
    const forced = this.closeAll();
    if (this.connections.size > 0) await new Promise<void>((resolve) => (this.whenAllClosed = resolve));
    return this.summarize(forced);
  }

  private summarize(forced: number): ServerSummary {
    const summary = { ...this.totals, forced };
    this.events.emit('summary', { transport: 'tcp', ...summary });
    return summary;
  }

  /** Served here, or handed to a worker and not closed yet. */
  private openConnections(): number {
    return this.connections.size + this.handedOff.size;
  }

  /** Destroys every open connection now; returns how many there were. */
  closeAll(): number {
    const open = [...this.connections];
    for (const conn of open) conn.destroy('shutdown');
    return open.length;
  }

  /** Accepts connections on one listening socket. */
  private serve({ handle: server, local, inherited }: Bound<net.Server>): void {
    // A handle we did not create: give it the options we would have (net.Server reads them at each accept).
    Object.assign(server, { allowHalfOpen: true, pauseOnConnect: true });
    const listener: Listener = { server, ...(WILDCARD_ADDRESSES.has(local.address) ? {} : { fixedLocal: local }) };
    this.listeners.push(listener);
    server.on('connection', (socket: net.Socket) => this.onConnection(socket, listener.fixedLocal));
    // After listen succeeds, errors come from accept(2), e.g. EMFILE when out of descriptors.
    // They concern one would-be connection; the listener keeps going.
    server.on('error', (error: NodeJS.ErrnoException) => this.events.emit('accept-error', { code: error.code ?? 'ERROR', message: error.message }));
    this.events.emit('listening', { local, inherited, rfc: this.protocol.rfc });
  }

  /** A new connection, from one of our listeners (whose address may be `fixedLocal`) or handed over. */
  private onConnection(socket: net.Socket, fixedLocal?: Endpoint): void {
    // The socket pair, read once now, while the kernel still has it: getpeername(2) for the
    // peer's end, and getsockname(2) for ours unless the listener's own address says it.
    const remote = remoteEndpoint(socket);
    const local = fixedLocal ?? localEndpoint(socket);
    if (this.options.proxyProtocol === undefined) this.accept(socket, local, remote);
    else void this.acceptProxied(socket, local, remote, this.options.proxyProtocol);
  }

  /**
   * Behind a proxy: the peer must be a trusted proxy, and its header comes first. Until the header
   * is whole nothing is sent; then the connection is the client's, for the limits, the protocol and
   * the events. Connections still waiting for a header count against --max-connections.
   */
  private async acceptProxied(socket: net.Socket, local: Endpoint, remote: Endpoint, { versions, trusted, timeoutMs }: ProxyProtocolOptions): Promise<void> {
    if (!trusted.permits(remote.address)) return this.refuse(socket, local, remote, 'proxy-untrusted');
    if (this.openConnections() + this.awaitingHeader >= this.limits.maxConnections) return this.refuse(socket, local, remote, 'max-connections');
    this.awaitingHeader += 1;
    const { handOff } = this.options;
    if (handOff !== undefined) {
      const awaiting = { protocol: this.protocol.name, local, remote, versions, timeoutMs };
      return handOff.handForHeader(socket, awaiting, (outcome, worker) => this.admitProxied(local, remote, outcome, worker));
    }
    const outcome = await readProxyHeader(socket, versions, timeoutMs);
    const admitted = this.admitProxied(local, remote, outcome);
    if (admitted === undefined) return resetNow(socket);
    this.serveAdmitted(socket, admitted);
  }

  /**
   * A proxy's header has been read (here, or by a worker): the client it names is admitted or
   * refused like a direct one. A header that never became whole, or is not one, is refused.
   */
  private admitProxied(local: Endpoint, remote: Endpoint, outcome: HeaderOutcome, worker?: number): AdmittedConnection | undefined {
    this.awaitingHeader -= 1;
    if ('problem' in outcome) {
      this.refused(local, remote, outcome.incomplete ? 'proxy-incomplete' : 'proxy-malformed', { problem: outcome.problem });
      return undefined;
    }
    const { header } = outcome;
    // LOCAL and UNKNOWN: the proxy's own connection (a health check), served as a direct one.
    const proxy: ProxyHop | undefined = header.client && { version: header.version, local, remote, headerBytes: header.length };
    const admitted = header.client === undefined ? this.admit(local, remote) : this.admit(header.client.local, header.client.remote, proxy);
    // --workers: the worker that read the header serves it.
    if (admitted !== undefined && this.options.handOff !== undefined) this.acceptedBy(admitted, worker);
    return admitted;
  }

  /** A direct connection: admitted, then served here or handed to a worker; or refused. */
  private accept(socket: net.Socket, local: Endpoint, remote: Endpoint): void {
    const admitted = this.admit(local, remote);
    if (admitted === undefined) return resetNow(socket);
    const { handOff } = this.options;
    if (handOff === undefined) return this.serveAdmitted(socket, admitted);
    this.acceptedBy(admitted, handOff.hand(socket, admitted));
  }

  /**
   * Admission: the limits, for the client at `remote`. Refused, it is said (`refused`) and
   * undefined returned; admitted, it gets its number and its place in the per-source count (and,
   * with --workers, in the count of connections handed to workers).
   */
  private admit(local: Endpoint, remote: Endpoint, proxy?: ProxyHop): AdmittedConnection | undefined {
    const source = unmapIPv4(remote.address);
    const refusal = this.admission(source);
    if (refusal !== undefined) {
      this.refused(local, remote, refusal, proxy && { proxy });
      return undefined;
    }
    countSource(this.perSource, source, +1);
    const admitted: AdmittedConnection = { protocol: this.protocol.name, conn: this.events.stream.nextConnectionId(), local, remote, ...(proxy && { proxy }) };
    if (this.options.handOff !== undefined) {
      this.handedOff.set(admitted.conn, source);
      this.totals.connections += 1;
    }
    return admitted;
  }

  /** --workers: an admitted connection went to this worker (undefined: whichever is ready first). */
  private acceptedBy({ proxy, ...identity }: AdmittedConnection, worker: number | undefined): void {
    this.events.emitAbout(identity, 'accepted', { ...(proxy && { proxy }), ...(worker !== undefined && { worker }) });
  }

  /** An admitted connection that this process serves: now, or in --iterative mode when its turn comes. */
  private serveAdmitted(socket: net.Socket, { conn: id, local, remote, proxy }: AdmittedConnection): void {
    const conn = this.adopt(id, socket, local, remote, proxy);
    conn.emit('accepted', proxy === undefined ? {} : { proxy });
    if (this.options.iterative && this.serving !== undefined) {
      this.waiting.push(conn);
      conn.emit('queued', { behind: this.serving.id });
      this.checkWaitingForResets();
      return;
    }
    this.start(conn);
  }

  /** A connection this process serves: counted, watched, and started. */
  private adopt(id: number, socket: net.Socket, local: Endpoint, remote: Endpoint, proxy?: ProxyHop): Connection {
    const conn = new Connection(id, socket, local, remote, this.events, this.closePolicy, this.onStateChange, proxy, this.sendQueues);
    this.connections.add(conn);
    this.totals.connections += 1;
    if (this.options.resolvePeerNames) this.resolvePeerName(conn);
    return conn;
  }

  /**
   * While clients wait their turn, look for resets among them every QUEUED_RESET_CHECK_MS: a
   * reset one fails its empty write, closes, and forget() takes it out of the queue.
   */
  private checkWaitingForResets(): void {
    if (this.waitingCheck !== undefined) return;
    this.waitingCheck = setInterval(() => {
      if (this.waiting.length === 0) {
        clearInterval(this.waitingCheck);
        this.waitingCheck = undefined;
        return;
      }
      for (const conn of this.waiting) conn.socket.write(NOTHING);
    }, QUEUED_RESET_CHECK_MS).unref();
  }

  /**
   * The server is full: resets the connection stalled longest, if long enough, to make room.
   * Each look walks every connection, so after a look that found none, the next waits until one
   * could have become old enough (a flood of refusals costs one walk, not one per refusal).
   * With --workers, the stalled connections are the workers' to find: each is asked to reset its
   * own stalled longest, and the room is there for the next newcomer, not this one.
   */
  makeRoom(): boolean {
    const after = this.limits.evictStalledAfterMs;
    const now = this.events.now();
    if (after <= 0 || now < this.noEvictionBefore) return false;
    if (this.options.handOff !== undefined) {
      this.options.handOff.makeRoom(this.protocol.name);
      this.noEvictionBefore = now + WORKER_EVICTION_SPACING_MS;
      return false;
    }
    let victim: Connection | undefined;
    let longest = -Infinity;
    for (const conn of this.connections) {
      const stalled = conn.stalledFor(now);
      if (stalled > longest) [victim, longest] = [conn, stalled];
    }
    if (victim === undefined || longest < after) {
      this.noEvictionBefore = now + after - Math.max(longest, 0);
      return false;
    }
    victim.emit('evicted', { stalledMs: Math.round(longest), maxConnections: this.limits.maxConnections });
    victim.abort('evicted');
    // abort() closes the descriptor at once, but 'close' (and forget()) comes a tick later.
    this.forget(victim);
    return true;
  }

  /** Why this client may not have a connection now, if it may not. */
  private admission(source: string): RefusalReason | undefined {
    if (this.options.access !== undefined && !this.options.access.permits(source)) return 'denied';
    if (this.openConnections() >= this.limits.maxConnections && !this.makeRoom()) return 'max-connections';
    if ((this.perSource.get(source) ?? 0) >= this.limits.maxPerSource) return 'max-per-source';
    // Last: only a connection every other limit admits spends a token.
    if (this.newConnections !== undefined && !this.newConnections.take(this.events.now())) return 'rate';
    return undefined;
  }

  /** Refuses a connection before anything is read from it: reset (resetNow), and said. */
  private refuse(socket: net.Socket, local: Endpoint, remote: Endpoint, reason: RefusalReason): void {
    resetNow(socket);
    this.refused(local, remote, reason);
  }

  /** Says that a connection was refused, and for which limit. */
  private refused(local: Endpoint, remote: Endpoint, reason: RefusalReason, detail?: { problem?: string; proxy?: ProxyHop }): void {
    const limits: Record<RefusalReason, number | undefined> = {
      denied: undefined,
      'max-connections': this.limits.maxConnections,
      'max-per-source': this.limits.maxPerSource,
      rate: this.limits.rate?.perSecond,
      'proxy-untrusted': undefined,
      'proxy-incomplete': undefined,
      'proxy-malformed': undefined,
    };
    const limit = limits[reason];
    this.events.emit('refused', { local, remote, reason, ...(limit === undefined ? {} : { limit }), ...detail });
  }

  private start(conn: Connection): void {
    if (this.options.iterative) this.serving = conn;
    this.watchIdleTime(conn);
    conn.activate();
    try {
      this.handler(conn);
    } catch (error) {
      conn.fail(error); // a protocol that throws loses this connection, not the server
    }
  }

  private readonly onStateChange = (conn: Connection, _from: ConnectionState, to: ConnectionState): void => {
    if (to !== 'closed') return;
    this.forget(conn);
    if (conn === this.serving) {
      this.serving = undefined;
      const next = this.waiting.shift();
      if (next !== undefined) this.start(next);
    }
  };

  /** A handed-off connection's `closed` event (relayed from its worker): its place is free again. */
  private forgetHandedOff({ protocol, conn, bytesIn, bytesOut }: EventOf<'closed'>): void {
    const source = protocol === this.protocol.name ? this.handedOff.get(conn) : undefined;
    if (source === undefined) return;
    this.handedOff.delete(conn);
    this.totals.bytesIn += bytesIn;
    this.totals.bytesOut += bytesOut;
    countSource(this.perSource, source, -1);
  }

  private forget(conn: Connection): void {
    if (!this.connections.delete(conn)) return; // forgotten already: evicted, then closed
    this.totals.bytesIn += conn.socket.bytesRead - (conn.proxy?.headerBytes ?? 0);
    this.totals.bytesOut += conn.socket.bytesWritten;
    countSource(this.perSource, unmapIPv4(conn.remote.address), -1);
    const queuedAt = this.waiting.indexOf(conn);
    if (queuedAt !== -1) this.waiting.splice(queuedAt, 1);
    if (this.connections.size === 0) this.whenAllClosed?.();
  }

  /**
   * An inactivity timer, like SO_RCVTIMEO in Berkeley systems: it counts the client's silence.
   * Bytes from the client restart it; our own writes do not (a chargen client that never sends
   * anything is timed out, however much it reads). Node's socket.setTimeout() would count both.
   */
  private watchIdleTime(conn: Connection): void {
    const idleTimeoutMs = this.options.idleTimeoutMs ?? 0;
    if (idleTimeoutMs <= 0) return;
    let lastInput = this.events.now();
    // A 'data' listener does not start a paused socket: the protocol still decides when to read.
    conn.socket.on('data', () => (lastInput = this.events.now()));
    const check = (): void => {
      const silentMs = this.events.now() - lastInput;
      if (silentMs < idleTimeoutMs) {
        timer = setTimeout(check, idleTimeoutMs - silentMs);
        return;
      }
      conn.emit('idle-timeout', { idleTimeoutMs });
      conn.destroy('idle-timeout');
    };
    let timer = setTimeout(check, idleTimeoutMs);
    conn.socket.once('close', () => clearTimeout(timer));
  }

  /**
   * Reverse lookup (getnameinfo(3)); it runs beside the connection and never delays it. The name is
   * escaped: whoever runs the DNS for the client's address writes its PTR record, ESC bytes and all.
   */
  private resolvePeerName(conn: Connection): void {
    const address = unmapIPv4(conn.remote.address);
    const lookup = typeof this.options.resolvePeerNames === 'function' ? this.options.resolvePeerNames : lookupService;
    lookup(address, conn.remote.port).then(
      ({ hostname }) => conn.emit('peer-name', { host: escapeText(hostname) }),
      (error: NodeJS.ErrnoException) => conn.emit('peer-name', { host: null, code: error.code ?? 'ERROR' }),
    );
  }
}

/**
 * Refuses a connection the kernel has already accepted: reset it at once (SO_LINGER 0, then
 * close), so the client learns immediately and this side keeps no TIME_WAIT for it.
 */
export function resetNow(socket: net.Socket): void {
  socket.on('error', () => {}); // the client may be gone already; there is nothing to report
  socket.resetAndDestroy();
}

function countSource(counts: Map<string, number>, source: string, change: 1 | -1): void {
  const count = (counts.get(source) ?? 0) + change;
  if (count > 0) counts.set(source, count);
  else counts.delete(source);
}

export function createServer(options: ServerOptions): LabServer {
  return new LabServer(options);
}
