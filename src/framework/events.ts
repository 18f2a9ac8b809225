/**
 * What the server knows, as data. The framework and the protocols *say what happened* here, as
 * plain objects; everything that *watches* (the log, the kernel-state reporter, a lab, a test) is a
 * subscriber in a module of its own. Go's http.Server does the same with its ConnState hook.
 *
 * Every event carries two timestamps, `at` (milliseconds on the monotonic clock, performance.now:
 * for durations and order; it never jumps) and `time` (milliseconds since the Unix epoch: the
 * wall-clock instant `at` stands for, performance.timeOrigin + at, for people), the service it is about (`protocol`, `transport`), and, for a TCP connection, its
 * number and its socket pair as captured at accept(2). A UDP event carries the datagram's two ends.
 * Text a client sent is escaped before it is put in an event (`escapeForLog`), so any event is safe
 * to print.
 *
 * Why a small stream of our own rather than `node:diagnostics_channel` (which pino uses beside its
 * logger): diagnostics channels are process-wide names, and one process often runs several servers
 * (`lab-server all`, every lab, the tests), each wanting its own listeners. An EventEmitter would do,
 * but it treats an event named 'error' specially and has no "every event" listener. So: a stream per
 * server (or shared by the services of one process), listeners per event type, and `wants(type)` to
 * ask before building an event on a hot path, which makes an event nobody listens to cost one array
 * length check.
 */
import type { Endpoint } from './endpoint.js';
import type { SocketRole } from './socket-probe.js';

export type Transport = 'tcp' | 'udp';

/** The application's view of a TCP connection (see connection.ts); not the kernel's TCP state. */
export type ConnectionState = 'accepted' | 'active' | 'peer-closed' | 'closing' | 'closed';

/** Why the server itself ended a connection, when it did. */
/** `worker-exited`: the worker process serving it (--workers) died, and its descriptors with it. */
export type ServerCloseReason = 'protocol' | 'idle-timeout' | 'shutdown' | 'protocol-error' | 'evicted' | 'worker-exited';

/**
 * Who handed this process a socket it did not open: systemd's socket activation (descriptors 3 and
 * up, counted in LISTEN_FDS), or a supervisor following inetd's convention (descriptor 0: inetd,
 * xinetd, systemd's StandardInput=socket).
 */
export type Supervisor = 'systemd' | 'inetd';

/**
 * Why a connection was reset as soon as it was accepted. The `proxy-` reasons are for
 * --proxy-protocol: a peer not trusted to send a header, or a header that never became whole
 * (timeout, or the peer closed), or one that is not a header at all.
 */
export type RefusalReason = 'denied' | 'max-connections' | 'max-per-source' | 'rate' | 'proxy-untrusted' | 'proxy-incomplete' | 'proxy-malformed';

/** Why a datagram was not answered. */
export type DropReason = 'denied' | 'privileged-source-port' | 'own-port' | 'over-budget' | 'service-over-budget' | 'oversized-reply' | 'protocol-error';

/** The kernel's name for a TCP state (parse.ts has the full list), or 'UNKNOWN'. */
export type KernelStateName = string;

/** How one TCP connection ended, from the server's side. */
export interface CloseReport {
  /** Which end sent the first FIN or RST. */
  closedBy: 'server' | 'client';
  /** `fin` for an orderly close, `rst` for a reset. */
  how: 'fin' | 'rst';
  /** Why the server closed, when it closed first. */
  reason?: ServerCloseReason;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
}

/** Fields of every event about one TCP connection. */
export interface ConnectionIdentity {
  /** The connection's number, unique within its stream: #1, #2, ... */
  conn: number;
  /** The server's end of the socket pair, captured at accept (getsockname). */
  local: Endpoint;
  /** The client's end, captured at accept (getpeername). */
  remote: Endpoint;
}

/**
 * A connection that came through a proxy speaking the PROXY protocol (proxy-protocol.ts): the
 * event's `local` and `remote` are the client's socket pair, from the header; this is the proxy's
 * own connection to us, the socket pair the kernel holds (and its TIME_WAIT).
 */
export interface ProxyHop {
  version: 1 | 2;
  local: Endpoint;
  remote: Endpoint;
  /** The header's length: counted in neither bytesIn nor what the protocol reads. */
  headerBytes: number;
}

/** Fields of every event about one UDP datagram: our socket's end and the peer's. */
interface DatagramFields {
  local: Endpoint;
  remote: Endpoint;
}

/** The fields of each event type, besides the ones every event has. */
export interface EventFields {
  /**
   * A supervisor handed over an open socket, and this service serves it: a listening TCP socket, a
   * connection it accepted, or a UDP socket (`role`, found by socket-probe.ts). `name` is systemd's
   * FileDescriptorName= for it, escaped, when one was given.
   */
  'handed-over': { fd: number; by: Supervisor; role: SocketRole; local: Endpoint; remote?: Endpoint; name?: string };
  /** A socket is bound and listening (TCP) or bound (UDP). `inherited`: it came open from elsewhere (a descriptor, a handle). */
  listening: { local: Endpoint; inherited: boolean; rfc: number };
  /**
   * accept(2) returned a connection; the kernel had already completed the handshake. `worker`: the
   * worker process it was handed to (--workers), which serves it from here on.
   */
  accepted: ConnectionIdentity & { proxy?: ProxyHop; worker?: number };
  /**
   * A connection was reset as soon as it was accepted; `limit` is the limit it hit, if any, and
   * `problem` what was wrong with a PROXY protocol header. Behind a proxy, `local` and `remote` are
   * the client's pair from the header when one was read (`proxy` the proxy's), else the proxy's.
   */
  refused: { local: Endpoint; remote: Endpoint; reason: RefusalReason; limit?: number; problem?: string; proxy?: ProxyHop };
  /** accept(2) failed (e.g. EMFILE: out of descriptors); the listener goes on. */
  'accept-error': { code: string; message: string };
  /** Iterative mode: the connection waits until connection `behind` is done. */
  queued: ConnectionIdentity & { behind: number };
  /** A lifecycle transition (see connection.ts). */
  state: ConnectionIdentity & { from: ConnectionState; to: ConnectionState };
  /** --resolve: the client's host name, or null with the lookup's error code. */
  'peer-name': ConnectionIdentity & { host: string | null; code?: string };
  /** A line the client sent (echo): its first bytes, escaped; `line` counts from 1 per connection. */
  message: ConnectionIdentity & { line: number; text: string; length: number; truncated: boolean };
  /** The protocol's last bytes before its close (daytime's line), escaped; `bytes` is their length. */
  sent: ConnectionIdentity & { text: string; bytes: number };
  /**
   * The server was full: this connection, which had moved no byte either way for `stalledMs`, was
   * reset to make room for a new one (--evict-stalled-after).
   */
  evicted: ConnectionIdentity & { stalledMs: number; maxConnections: number };
  /** --idle-timeout: the client sent nothing for this long; the server closes. */
  'idle-timeout': ConnectionIdentity & { idleTimeoutMs: number };
  /** --no-close: the protocol would have closed here. */
  'close-skipped': ConnectionIdentity;
  /** An expected network error on this connection only (ECONNRESET, EPIPE). */
  'socket-error': ConnectionIdentity & { code: string; message: string };
  /** The protocol's handler threw: the connection was reset (TCP) or the datagram dropped (UDP). */
  'protocol-error': { conn?: number; local: Endpoint; remote: Endpoint; message: string; stack?: string };
  /** The descriptor is closed: the application's view. The kernel may keep the pair (TIME_WAIT). */
  closed: ConnectionIdentity & CloseReport & { proxy?: ProxyHop };
  /** What the kernel still holds for the pair a moment after `closed` (observers/kernel-states.ts). */
  'kernel-state': ConnectionIdentity & Pick<CloseReport, 'closedBy' | 'how'> & { state: KernelStateName | null; remainingMs: number | null; explanation: string };
  /** The kernel-state reporter looked up some closed connections and skipped others. */
  'kernel-state-sampled': { reported: number; skipped: number; maxReportsPerRead: number; readSpacingMs: number };
  /** The kernel-state reporter did not look these connections up at all, and why. */
  'kernel-state-skipped':
    | { reason: 'busy'; connections: number; closedSinceLastRead: number; maxClosesBetweenReads: number }
    | { reason: 'table-size'; connections: number; tableSockets: number; timeWait: number; maxTableRows: number };
  'kernel-state-failed': { message: string };
  /** Kernel TCP states cannot be read on this system (not Linux). */
  'kernel-state-unavailable': Record<never, never>;
  /**
   * The per-connection cap on unacknowledged bytes (--max-send-queue, send-queue.ts) is off for this
   * service: the kernel's Send-Q cannot be read here (`message` says why). Once, when first needed.
   */
  'send-queue-unavailable': { message: string; maxSendQueue: number };
  /** A datagram was answered (`bytesOut` > 0) or, by a protocol that never answers, read (`bytesOut` 0). */
  datagram: DatagramFields & { bytesIn: number; bytesOut: number };
  /** A datagram was not answered, and why. */
  'udp-dropped': DatagramFields & { reason: DropReason; bytesIn: number };
  /** The UDP socket reported an error (e.g. a reply's ICMP port unreachable). */
  'udp-error': { code: string; message: string };
  /** Shutdown began with connections still open; they get `deadlineMs` to finish. */
  draining: { open: number; deadlineMs: number };
  /** The service stopped: what it did in its life. */
  summary:
    | { transport: 'tcp'; connections: number; bytesIn: number; bytesOut: number; forced: number }
    | { transport: 'udp'; received: number; answered: number; dropped: number };
}

export type EventType = keyof EventFields;

/** Fields every event has. */
export interface EventStamp {
  /** Milliseconds on the monotonic clock (performance.now()). */
  at: number;
  /** Milliseconds since the Unix epoch: timeOrigin + at (it does not follow later steps of the system clock). */
  time: number;
  protocol: string;
  transport: Transport;
  /** The worker process the event happened in (--workers), when it was relayed from one. */
  worker?: number;
}

/** One event: its type, its stamp and its fields. `switch (event.type)` narrows it. */
export type ServerEvent = { [T in EventType]: { type: T } & EventStamp & EventFields[T] }[EventType];

export type EventOf<T extends EventType> = Extract<ServerEvent, { type: T }>;

export type EventListener<T extends EventType = EventType> = (event: EventOf<T>) => void;

/**
 * The clock events are stamped with; tests inject their own. One reading per event: the wall-clock
 * time is the monotonic reading plus the wall-clock time at which the monotonic clock started.
 */
export interface Clock {
  monotonicMs(): number;
  /** Milliseconds since the Unix epoch at monotonic time 0. */
  readonly timeOrigin: number;
}

export const SYSTEM_CLOCK: Clock = { monotonicMs: () => performance.now(), timeOrigin: performance.timeOrigin };

export const EVENT_TYPES: readonly EventType[] = [
  'handed-over', 'listening', 'accepted', 'refused', 'accept-error', 'queued', 'state', 'peer-name', 'message', 'sent',
  'evicted', 'idle-timeout', 'close-skipped', 'socket-error', 'protocol-error', 'closed', 'kernel-state',
  'kernel-state-sampled', 'kernel-state-skipped', 'kernel-state-failed', 'kernel-state-unavailable',
  'send-queue-unavailable', 'datagram', 'udp-dropped', 'udp-error', 'draining', 'summary',
];

/** Returned by `subscribe` and `on`: call it to stop listening. */
export type Unsubscribe = () => void;

export class EventStream {
  private readonly listeners = new Map<EventType, EventListener[]>(EVENT_TYPES.map((type) => [type, []]));
  private lastConnectionId = 0;

  constructor(readonly clock: Clock = SYSTEM_CLOCK) {}

  /** Whether anyone listens to `type`: ask before building an event that costs something to build. */
  wants(type: EventType): boolean {
    return this.listeners.get(type)!.length > 0;
  }

  /** Calls `listener` with every event of the given types (all types when omitted), in order. */
  subscribe(listener: EventListener, types: readonly EventType[] = EVENT_TYPES): Unsubscribe {
    for (const type of types) this.listeners.set(type, [...this.listeners.get(type)!, listener]);
    return () => {
      for (const type of types) this.listeners.set(type, this.listeners.get(type)!.filter((l) => l !== listener));
    };
  }

  /** Calls `listener` with each event of one type. */
  on<T extends EventType>(type: T, listener: EventListener<T>): Unsubscribe {
    return this.subscribe(listener as unknown as EventListener, [type]);
  }

  /**
   * Stamps an event and hands it to its listeners, synchronously: when `emit` returns, every
   * observer has seen it. Costs nothing beyond a lookup when nobody listens to `type`. A listener
   * that throws does not stop the others, and its error is thrown again from the event loop.
   */
  emit<T extends EventType>(source: EventSource, type: T, fields: EventFields[T]): void {
    // The array is replaced, never changed, on (un)subscribe: a listener may unsubscribe mid-loop.
    const listeners = this.listeners.get(type)!;
    if (listeners.length === 0) return;
    const at = this.clock.monotonicMs();
    // One object literal per event: this runs for every connection a busy server accepts.
    const event = { type, at, time: this.clock.timeOrigin + at, protocol: source.protocol, transport: source.transport, ...fields };
    this.dispatch(listeners, event as unknown as EventOf<T>);
  }

  /** The same, for an event about one TCP connection: its number and socket pair come from `about`. */
  emitAbout<T extends EventType>(source: EventSource, about: ConnectionIdentity, type: T, fields: Omit<EventFields[T], keyof ConnectionIdentity>): void {
    const listeners = this.listeners.get(type)!;
    if (listeners.length === 0) return;
    const at = this.clock.monotonicMs();
    const event = { type, at, time: this.clock.timeOrigin + at, protocol: source.protocol, transport: source.transport, conn: about.conn, local: about.local, remote: about.remote, ...fields };
    this.dispatch(listeners, event as unknown as EventOf<T>);
  }

  /**
   * Hands listeners an event that happened in another process (a --workers worker), marked with
   * that worker's number when it has one. Its `at` is made ours from its wall-clock `time`: each
   * process's monotonic clock starts at its own birth.
   */
  relay(event: ServerEvent, worker?: number): void {
    const listeners = this.listeners.get(event.type)!;
    if (listeners.length === 0) return;
    this.dispatch(listeners, { ...event, at: event.time - this.clock.timeOrigin, ...(worker !== undefined && { worker }) });
  }

  private dispatch<T extends EventType>(listeners: EventListener[], event: EventOf<T>): void {
    for (const listener of listeners) {
      try {
        listener(event as never);
      } catch (error) {
        // An observer that throws is a bug in the observer, not in the connection or the protocol
        // whose event it was watching: let it surface on its own, outside the emitter's stack.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  /** Connection numbers are handed out by the stream, so that they are unique among its services. */
  nextConnectionId(): number {
    return ++this.lastConnectionId;
  }

  /** An emitter bound to one service: `service.emit('accepted', {...})`. */
  forService(protocol: string, transport: Transport): ServiceEvents {
    return new ServiceEvents(this, { protocol, transport });
  }
}

/** Which service an event is about. */
export interface EventSource {
  protocol: string;
  transport: Transport;
}

/** The stream, as one service (one protocol on one transport) uses it. */
export class ServiceEvents {
  constructor(
    readonly stream: EventStream,
    readonly source: EventSource,
  ) {}

  wants(type: EventType): boolean {
    return this.stream.wants(type);
  }

  emit<T extends EventType>(type: T, fields: EventFields[T]): void {
    this.stream.emit(this.source, type, fields);
  }

  emitAbout<T extends EventType>(about: ConnectionIdentity, type: T, fields: Omit<EventFields[T], keyof ConnectionIdentity>): void {
    this.stream.emitAbout(this.source, about, type, fields);
  }

  /** Now, on the stream's monotonic clock. */
  now(): number {
    return this.stream.clock.monotonicMs();
  }
}
