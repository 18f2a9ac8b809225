/**
 * The server's log: one subscriber that turns events (src/framework/events.ts) into pino lines,
 * JSON for programs and one sentence each for people. The framework and the protocols never log;
 * this module decides what is written, and it owns every limit on how much:
 *
 * - Connections are sampled whole, at accept: at most `connectionsPerSecond` a second (after a
 *   burst of twice that) are logged from `accepted` to `kernel-state`; the others are served as
 *   usual, and the next logged `accepted` line counts them. A class of 200 connecting at once is
 *   logged whole; a load test of thousands a second is sampled, so that writing the log does not
 *   become the server's main work.
 * - Refusals, accept errors, protocol errors and UDP drops have a budget each (LogBudget): a
 *   flood of them cannot flood the log, and the next line says how many were held back.
 * - Echo's messages need no budget here: a connection reports only its first lines
 *   (framework/messages.ts), so each logged connection adds a bounded number of lines.
 *
 * Time comes from the events themselves (`event.at`), so the budgets need no clock of their own.
 */
import type { Level, Logger } from 'pino';
import { formatEndpoint, formatListeningEndpoint, formatSocketPair, isLoopback } from '../framework/endpoint.js';
import { escapeLines, escapeMessage } from '../framework/escape.js';
import { EVENT_TYPES, type ConnectionIdentity, type EventOf, type EventStream, type EventType, type ProxyHop, type RefusalReason, type ServerEvent } from '../framework/events.js';
import { LINES_REPORTED_PER_CONNECTION } from '../framework/messages.js';
import { heldBackNote, LogBudget } from './log-budget.js';

/** The default of --connection-logs. */
export const DEFAULT_CONNECTION_LOGS_PER_SECOND = 100;
/** Refusals, accept errors, protocol errors and UDP drops: each at most this many lines a second... */
const TROUBLE_LOGS_PER_SECOND = 5;
/** ...after a first burst of this many. */
const TROUBLE_LOG_BURST = 20;
/** Closed connections whose late lines (kernel-state, peer-name) we still recognise as logged. */
const RECENTLY_CLOSED_REMEMBERED = 1000;

/** The level of each event's line. Events at a level the logger does not show are not subscribed to. */
const LEVELS: Record<EventType, Level> = {
  'handed-over': 'info',
  listening: 'info',
  accepted: 'info',
  refused: 'warn',
  'accept-error': 'warn',
  queued: 'info',
  state: 'debug',
  'peer-name': 'info',
  message: 'info',
  sent: 'info',
  evicted: 'warn',
  'idle-timeout': 'info',
  'close-skipped': 'debug',
  'socket-error': 'debug',
  'protocol-error': 'error',
  closed: 'info',
  'kernel-state': 'info',
  'kernel-state-sampled': 'info',
  'kernel-state-skipped': 'info',
  'kernel-state-failed': 'warn',
  'kernel-state-unavailable': 'debug',
  'send-queue-unavailable': 'warn',
  datagram: 'debug',
  'udp-dropped': 'warn',
  'udp-error': 'debug',
  draining: 'info',
  summary: 'info',
};

const REFUSAL_EXPLANATIONS: Record<RefusalReason, (limit?: number, problem?: string) => string> = {
  denied: () => 'the address is not allowed (--allow/--deny)',
  'max-connections': (limit) => `already serving ${limit} connections (--max-connections)`,
  'max-per-source': (limit) => `this address already has ${limit === 1 ? 'a connection' : `${limit} connections`} (--max-per-source)`,
  rate: (limit) => `more new connections than ${limit} a second (--rate)`,
  'proxy-untrusted': () => 'not a trusted proxy (--proxy-from), and every connection here must start with a PROXY protocol header',
  'proxy-incomplete': (_limit, problem) => `no whole PROXY protocol header: ${problem} (--proxy-timeout)`,
  'proxy-malformed': (_limit, problem) => `a bad PROXY protocol header: ${problem}`,
};

/** `via proxy 127.0.0.1:5000 ⇄ 127.0.0.1:40312 (PROXY v2)`: the connection the kernel holds, behind a proxy. */
const viaProxy = (proxy: ProxyHop | undefined): string => (proxy === undefined ? '' : ` via proxy ${formatSocketPair(proxy.local, proxy.remote)} (PROXY v${proxy.version})`);
const proxyFields = (proxy: ProxyHop | undefined) => proxy && { proxy: { pair: formatSocketPair(proxy.local, proxy.remote), version: proxy.version } };

const DROP_EXPLANATIONS: Record<EventOf<'udp-dropped'>['reason'], string> = {
  denied: 'the address is not allowed (--allow/--deny)',
  'privileged-source-port': 'its source port is below 1024, where other servers live: answering could start a loop',
  'own-port': "its source port is one of this server's own: answering would start a loop",
  'over-budget': 'this address has had its replies for now (--udp-burst, then --udp-rate a second)',
  'service-over-budget': 'the service has sent all the replies it may for now, to every address together (--udp-service-rate, --udp-service-bytes)',
  'oversized-reply': 'the reply would exceed 512 bytes',
  'protocol-error': "the protocol's handler failed",
};

/** A log line: its structured fields, and the sentence for people. */
type Line = [fields: Record<string, unknown>, message: string];

/** The events about one connection, which carry its number and socket pair. */
type ConnectionEventType = 'queued' | 'state' | 'peer-name' | 'message' | 'sent' | 'idle-timeout' | 'close-skipped' | 'socket-error' | 'closed' | 'kernel-state';

/** For each event type, its line, or undefined when it is not logged (sampled out, over a budget). */
type LineFormats = { [T in EventType]: (event: EventOf<T>) => Line | undefined };

export interface LogObserverOptions {
  /** Connections logged in full per second, after a burst of twice as many; 0 logs every one. */
  connectionsPerSecond?: number;
  /** Several services share the log: tag each line with its service. */
  tagServices?: boolean;
  /** Log lines dropped so far because the log's reader was stuck (see cli/log-writer.ts): told in the summary. */
  droppedLines?: () => number;
}

export class LogObserver {
  /** Connections being logged (sampled at accept), and those closed a moment ago. */
  private readonly logged = new Set<number>();
  private readonly recentlyClosed = new Set<number>();
  private readonly connections: LogBudget;
  private readonly refusals = new LogBudget(TROUBLE_LOGS_PER_SECOND, TROUBLE_LOG_BURST);
  private readonly acceptErrors = new LogBudget(TROUBLE_LOGS_PER_SECOND, TROUBLE_LOG_BURST);
  private readonly protocolErrors = new LogBudget(TROUBLE_LOGS_PER_SECOND, TROUBLE_LOG_BURST);
  private readonly drops = new LogBudget(TROUBLE_LOGS_PER_SECOND, TROUBLE_LOG_BURST);
  private readonly evictions = new LogBudget(TROUBLE_LOGS_PER_SECOND, TROUBLE_LOG_BURST);
  private readonly unsubscribers: (() => void)[];
  private loopbackExplained = false;

  constructor(
    stream: EventStream,
    private readonly logger: Logger,
    private readonly options: LogObserverOptions = {},
  ) {
    const perSecond = options.connectionsPerSecond ?? DEFAULT_CONNECTION_LOGS_PER_SECOND;
    this.connections = new LogBudget(perSecond, 2 * perSecond);
    const lines = this.lineFormats();
    // One listener per event type that the logger's level shows: a level that hides a type does
    // not even subscribe to it, and each listener sees events of one shape.
    const shown = EVENT_TYPES.filter((type) => logger.isLevelEnabled(LEVELS[type]));
    this.unsubscribers = shown.map((type) =>
      stream.on(type, (event) => {
        const line = (lines[type] as (event: ServerEvent) => Line | undefined)(event);
        if (line !== undefined) this.write(event, line);
      }),
    );
  }

  /** Whether connection `conn` is being logged (or just was): for observers that report on it. */
  isLogged(conn: number): boolean {
    return this.logged.has(conn) || this.recentlyClosed.has(conn);
  }

  stop(): void {
    for (const unsubscribe of this.unsubscribers) unsubscribe();
  }

  private write(event: ServerEvent, [fields, message]: Line): void {
    const service = this.options.tagServices ? { service: event.protocol } : {};
    // What a client sent is escaped in the event already; this catches anything else a sentence
    // quotes (an error's message), cheaply: a plain ASCII line is returned as it is.
    // --workers: which worker served the connection (the primary's `accepted` says which it was handed to).
    const worker = event.worker === undefined ? {} : { worker: event.worker };
    this.logger[LEVELS[event.type]]({ ...service, ...worker, ...('conn' in event && event.conn !== undefined ? { conn: event.conn } : {}), event: event.type, ...fields }, escapeMessage(message));
  }

  /** For each event type, how its line reads: the structured fields, and the sentence for people. */
  private lineFormats(): LineFormats {
    // Lines about one connection: written only for the connections sampled at accept.
    const ifLogged =
      <T extends ConnectionEventType>(format: (event: EventOf<T>, id: number) => Line | undefined) =>
      (event: EventOf<T>): Line | undefined => {
        const { conn } = event as unknown as ConnectionIdentity;
        return this.isLogged(conn) ? format(event, conn) : undefined;
      };
    return {
      'handed-over': (event) => {
        const { fd, by, role, local, remote, name, transport } = event;
        const who = by === 'systemd' ? 'systemd' : 'the supervisor (inetd convention)';
        const how = `handed over as descriptor ${fd}${name === undefined ? '' : ` (FileDescriptorName=${name})`}`;
        const listening = `${formatListeningEndpoint(local)}${transport === 'udp' ? '/udp' : ''}`;
        const pair = remote === undefined ? undefined : formatSocketPair(local, remote);
        const [socket, what] =
          pair !== undefined
            ? [pair, `connection ${pair}, which ${who} accepted and ${how}: one process per connection`]
            : [listening, `${listening}, a ${role === 'datagram' ? 'UDP' : 'listening TCP'} socket ${who} opened and ${how}`];
        return [
          { protocol: event.protocol, ...(transport === 'udp' && { transport }), fd, by, role, socket, ...(name !== undefined && { name }) },
          `${event.protocol}: serving ${what}`,
        ];
      },
      listening: (event) => {
        const { local, transport } = event;
        const socket = `${formatListeningEndpoint(local)}${transport === 'udp' ? '/udp' : ''}`;
        // Said once: a service on loopback has two listeners, and `all` has many services.
        // Not for an inherited socket: where it listens is its supervisor's choice, not --host.
        const loopback = isLoopback(local.address) && !event.inherited && !this.loopbackExplained ? ' (loopback: only this machine can connect; --host :: serves other machines too)' : '';
        if (loopback !== '') this.loopbackExplained = true;
        return [
          { protocol: event.protocol, ...(transport === 'udp' && { transport }), address: local.address, port: local.port, socket, ...(event.inherited && { inherited: true }) },
          `${event.protocol} (RFC ${event.rfc}) listening on ${socket}${event.inherited ? ' (an inherited socket)' : ''}${loopback}`,
        ];
      },
      accepted: (event) => {
        const unlogged = this.connections.admit(event.at);
        if (unlogged === undefined) return undefined;
        this.logged.add(event.conn);
        const pair = formatSocketPair(event.local, event.remote);
        const note = unlogged > 0 ? ` (${unlogged} connections before it were served but not logged: over ${this.options.connectionsPerSecond ?? DEFAULT_CONNECTION_LOGS_PER_SECOND} a second)` : '';
        return [
          { local: formatEndpoint(event.local), remote: formatEndpoint(event.remote), pair, ...proxyFields(event.proxy), ...(unlogged > 0 && { unlogged }) },
          `accepted connection #${event.conn} ${pair}${viaProxy(event.proxy)}${note}`,
        ];
      },
      refused: (event) => {
        const skipped = this.refusals.admit(event.at);
        if (skipped === undefined) return undefined;
        const pair = formatSocketPair(event.local, event.remote);
        return [
          { reason: event.reason, pair, ...proxyFields(event.proxy), ...(event.limit !== undefined && { limit: event.limit }), ...(event.problem !== undefined && { problem: event.problem }), ...(skipped > 0 && { skipped }) },
          `refused ${pair}${viaProxy(event.proxy)}: ${REFUSAL_EXPLANATIONS[event.reason](event.limit, event.problem)}${heldBackNote(skipped, 'refusals')}`,
        ];
      },
      'accept-error': (event) => {
        const skipped = this.acceptErrors.admit(event.at);
        if (skipped === undefined) return undefined;
        return [{ code: event.code, ...(skipped > 0 && { skipped }) }, `accept failed: ${event.message}${heldBackNote(skipped, 'accept errors')}`];
      },
      'protocol-error': (event) => {
        const skipped = this.protocolErrors.admit(event.at);
        if (skipped === undefined) return undefined;
        const udp = event.conn === undefined;
        const where = udp ? `a datagram from ${formatEndpoint(event.remote)} was dropped` : `connection #${event.conn} was reset`;
        return [
          // A protocol's exception may quote the client's input: escaped for the JSON too (jq -r prints it raw).
          { ...(udp ? { from: formatEndpoint(event.remote) } : { pair: formatSocketPair(event.local, event.remote) }), error: escapeMessage(event.message), stack: event.stack === undefined ? undefined : escapeLines(event.stack), ...(skipped > 0 && { skipped }) },
          `the ${event.protocol} protocol's handler failed (${event.message}): ${where}; the server goes on${heldBackNote(skipped, 'protocol errors')}`,
        ];
      },
      // Logged for every connection, sampled or not, like a refusal: the server was full.
      evicted: (event) => {
        const skipped = this.evictions.admit(event.at);
        if (skipped === undefined) return undefined;
        const pair = formatSocketPair(event.local, event.remote);
        return [
          { pair, stalledMs: event.stalledMs, maxConnections: event.maxConnections, ...(skipped > 0 && { skipped }) },
          `evicted connection #${event.conn} ${pair}: the server is full (${event.maxConnections} connections, --max-connections) and it had moved no byte ` +
            `either way for ${event.stalledMs} ms, so a new client takes its place (--evict-stalled-after)${heldBackNote(skipped, 'evictions')}`,
        ];
      },
      'udp-dropped': (event) => {
        const skipped = this.drops.admit(event.at);
        if (skipped === undefined) return undefined;
        const from = formatEndpoint(event.remote);
        return [{ reason: event.reason, from, bytesIn: event.bytesIn, ...(skipped > 0 && { skipped }) }, `udp: not answering ${from} (${event.reason}): ${DROP_EXPLANATIONS[event.reason]}${heldBackNote(skipped, 'drops')}`];
      },
      datagram: (event) => {
        const from = formatEndpoint(event.remote);
        return [{ from, bytesIn: event.bytesIn, bytesOut: event.bytesOut }, `udp ${from}: ${event.bytesIn} bytes in, ${event.bytesOut} out`];
      },
      'udp-error': (event) => {
        return [{ code: event.code }, `udp: ${event.message}`];
      },
      draining: (event) => {
        return [{ open: event.open, deadlineMs: event.deadlineMs }, `${this.serviceName(event)}waiting up to ${event.deadlineMs} ms for ${event.open} open connection(s)`];
      },
      summary: (event) => {
        if (event.transport === 'udp') {
          const { received, answered, dropped } = event;
          return [{ protocol: event.protocol, transport: 'udp', received, answered, dropped }, `${this.serviceName(event)}${received} datagram(s) received, ${answered} answered, ${dropped} dropped`];
        }
        const logLinesDropped = this.options.droppedLines?.() ?? 0;
        return [
          { protocol: event.protocol, connections: event.connections, bytesIn: event.bytesIn, bytesOut: event.bytesOut, forced: event.forced, ...(logLinesDropped > 0 && { logLinesDropped }) },
          `${this.serviceName(event)}served ${event.connections} connection(s): ${event.bytesIn} bytes in, ${event.bytesOut} bytes out` +
            (event.forced > 0 ? `; ${event.forced} closed at the shutdown deadline` : '') +
            (logLinesDropped > 0 ? `; ${logLinesDropped} log line(s) dropped while the log's reader was not reading` : ''),
        ];
      },
      'kernel-state-sampled': (event) => {
        return [
          { reported: event.reported, skipped: event.skipped, maxReportsPerRead: event.maxReportsPerRead, readSpacingMs: event.readSpacingMs },
          `kernel states: sampled ${event.reported} closed connection(s) and skipped ${event.skipped}, to read the kernel's table at most once per ${event.readSpacingMs} ms`,
        ];
      },
      'kernel-state-skipped': (event) => {
        return event.reason === 'busy'
          ? [
              { reason: event.reason, connections: event.connections, closedSinceLastRead: event.closedSinceLastRead, maxClosesBetweenReads: event.maxClosesBetweenReads },
              `kernel states: not looked up for ${event.connections} closed connection(s): ${event.closedSinceLastRead} connections closed since the last look, ` +
                "and reading the kernel's table while sockets come and go that fast costs more than serving them; the lookups resume when closes slow down",
            ]
          : [
              { reason: event.reason, connections: event.connections, tableSockets: event.tableSockets, timeWait: event.timeWait, maxTableRows: event.maxTableRows },
              `kernel states: not looked up for ${event.connections} closed connection(s): the kernel holds ${event.tableSockets} TCP sockets ` +
                `(${event.timeWait} in TIME_WAIT); printing more than ${event.maxTableRows} of them from /proc/net/tcp after each close ` +
                'would cost more than serving, and ss(8), which has the kernel pick out our port, is not installed (Debian: apt install iproute2)',
            ];
      },
      'kernel-state-failed': (event) => {
        return [{ err: { message: event.message } }, `could not read the kernel's TCP states: ${event.message}`];
      },
      'kernel-state-unavailable': () => {
        return [{}, 'kernel TCP states are not reported: /proc/net/tcp is Linux only'];
      },
      'send-queue-unavailable': (event) => {
        return [
          { err: { message: event.message }, maxSendQueue: event.maxSendQueue },
          `--max-send-queue ${event.maxSendQueue} is off: the kernel's send queues cannot be read (${event.message}); ` +
            "a client that does not read may fill the kernel's send buffer, up to net.ipv4.tcp_wmem's maximum",
        ];
      },
      queued: ifLogged((event, id) => {
        return [{ behind: event.behind }, `connection #${id} waits: the iterative server is busy with #${event.behind}`];
      }),
      state: ifLogged((event, id) => {
        return [{ from: event.from, to: event.to }, `connection #${id}: ${event.from} → ${event.to}`];
      }),
      'peer-name': ifLogged((event, id) => {
        return event.host === null
          ? [{ host: null, code: event.code }, `connection #${id}: no host name for ${event.remote.address} (${event.code})`]
          : [{ host: event.host }, `connection #${id} is from ${event.host}`];
      }),
      message: ifLogged((event, id) => {
        const { line, text, length, truncated } = event;
        const last = line === LINES_REPORTED_PER_CONNECTION ? ` (the first ${line} lines of a connection are logged; later ones are not)` : '';
        return [{ text, length, truncated, line }, `#${id} message: ${text}${truncated ? ` … (${length} bytes)` : ''}${last}`];
      }),
      sent: ifLogged((event, id) => {
        return [{ text: event.text, bytes: event.bytes }, `#${id} sent: ${event.text}`];
      }),
      'idle-timeout': ifLogged((event, id) => {
        return [{ idleTimeoutMs: event.idleTimeoutMs }, `connection #${id}: the client sent nothing for ${event.idleTimeoutMs} ms: closing it`];
      }),
      'close-skipped': ifLogged((_event, id) => {
        return [{}, `connection #${id}: not closing (--no-close)`];
      }),
      'socket-error': ifLogged((event, id) => {
        return [{ code: event.code }, `connection #${id}: ${event.message}`];
      }),
      closed: ifLogged((event, id) => {
          const pair = formatSocketPair(event.local, event.remote);
        this.logged.delete(id);
        this.remember(id);
        const { closedBy, how, reason, bytesIn, bytesOut, durationMs } = event;
        const why = reason === undefined || reason === 'protocol' ? '' : ` (${reason})`;
        return [
          { pair, closedBy, how, ...(reason !== undefined && { reason }), bytesIn, bytesOut, durationMs },
          `closed connection #${id}: ${closedBy} closed first with ${how.toUpperCase()}${why}; ${bytesIn} bytes in, ${bytesOut} out, ${durationMs} ms`,
        ];
      }),
      'kernel-state': ifLogged((event, id) => {
          const pair = formatSocketPair(event.local, event.remote);
        const { closedBy, how, state, remainingMs, explanation } = event;
        return [{ pair, closedBy, how, state, remainingMs, explanation }, `kernel state of connection #${id} ${pair}: ${explanation}`];
      }),
    };
  }

  /** `echo: ` or `echo/udp: ` before a line about a whole service; with lines tagged by service, only `udp: `. */
  private serviceName({ protocol, transport }: ServerEvent): string {
    const udp = transport === 'udp' ? 'udp' : '';
    if (this.options.tagServices) return udp === '' ? '' : `${udp}: `;
    return `${protocol}${udp === '' ? '' : `/${udp}`}: `;
  }

  private remember(id: number): void {
    this.recentlyClosed.add(id);
    if (this.recentlyClosed.size > RECENTLY_CLOSED_REMEMBERED) this.recentlyClosed.delete(this.recentlyClosed.values().next().value!);
  }
}
