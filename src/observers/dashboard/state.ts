/**
 * What the classroom page shows, kept up to date from the event stream: the services, a table of
 * recent connections, how many connections are in each TCP state, a log of recent events,
 * refusals and UDP drops, and a lab's narration. An observer like the log: it subscribes to the
 * stream (events.ts) and never changes the server.
 *
 * The server's side of each connection is placed in the RFC 793 diagram from what the events
 * say: open and talking is ESTABLISHED; after the client's FIN (`peer-closed`) it is CLOSE_WAIT;
 * once we close, FIN_WAIT1 (we closed first) or LAST_ACK (we answered the client's FIN). After the
 * descriptor is closed only the kernel knows, so the state comes from the kernel-state reporter
 * (observers/kernel-states.ts), which reads /proc/net/tcp a moment after the close: TIME_WAIT with
 * its timer, or nothing left (CLOSED). The handshake states (SYN_SENT, SYN_RECV) are never seen:
 * accept(2) returns only once the kernel has finished the handshake.
 *
 * Bounded whatever the load: at most MAX_ROWS connections in the table (the oldest go first; the
 * counts still cover all), at most MAX_EVENTS_PER_UPDATE log entries per update (the rest are
 * counted, and the page says so), a fixed number of recent refusals, drops and lab lines.
 */
import { formatEndpoint, formatListeningEndpoint, formatSocketPair } from '../../framework/endpoint.js';
import type { Connection } from '../../capture/connection-tracker.js';
import { ConnectionTracker, statePath, stepToJson, type StepJson } from '../../capture/connection-tracker.js';
import { inferSegments } from '../../capture/inferred.js';
import type { LadderState } from '../../capture/tcp-machine.js';
import { escapeText } from '../../framework/escape.js';
import { SYSTEM_CLOCK, type Clock, type ConnectionState, type EventOf, type EventStream, type EventType, type ServerEvent, type Unsubscribe } from '../../framework/events.js';

/** Connections in the table: a class of 30, several times over; more would not fit a screen anyway. */
export const MAX_ROWS = 200;
/** Log entries per update (4 updates a second): more than anyone reads; the rest are counted. */
export const MAX_EVENTS_PER_UPDATE = 40;
/** Log entries a page gets when it (re)connects. */
const RECENT_EVENTS_KEPT = 200;
/** Recent refusals and UDP drops listed (all are counted). */
const RECENT_TROUBLE_KEPT = 20;
/** A lab's narration is a few hundred lines; this bounds a runaway one. */
const LAB_LINES_KEPT = 5000;
/** Lines a client sent or got kept per connection, for the table. */
const LINES_PER_ROW = 3;
/** A connection's own events kept for its inferred ladder; messages.ts reports at most 20 lines each way. */
const LADDER_EVENTS_KEPT = 40;
/** Captured connections kept for their ladders (a lab's capture). */
const CAPTURED_KEPT = MAX_ROWS;

/** A state the server's side of a connection is in, or 'closed' when the kernel has not been asked yet. */
export type ServerSideState = LadderState | 'closed';

/** States with a count on the diagram: the ones a server's events or the kernel's table show. */
const COUNTED_STATES: readonly LadderState[] = ['LISTEN', 'ESTABLISHED', 'CLOSE_WAIT', 'FIN_WAIT1', 'FIN_WAIT2', 'CLOSING', 'LAST_ACK', 'TIME_WAIT'];

export interface ServiceJson {
  protocol: string;
  transport: 'tcp' | 'udp';
  /** `127.0.0.1:7`, or `*:7` for a wildcard bind. */
  socket: string;
  rfc?: number;
}

export interface KernelReadingJson {
  /** The kernel's name for the state, or null: nothing left for the pair. */
  state: string | null;
  /** TIME_WAIT's timer when it was read. */
  remainingMs: number | null;
  /** When it was read, ms since the Unix epoch. */
  readAt: number;
  explanation: string;
}

export interface ConnectionJson {
  key: string;
  /** `#3` as the log says it; `s2#3` for a lab's second server. */
  label: string;
  protocol: string;
  client: string;
  server: string;
  /** The client's host name (--resolve), escaped. */
  host?: string;
  openedAt: number;
  closedAt?: number;
  appState: ConnectionState;
  state: ServerSideState;
  bytesIn?: number;
  bytesOut?: number;
  closedBy?: 'server' | 'client';
  how?: 'fin' | 'rst';
  kernel?: KernelReadingJson;
  /** The last lines the client sent (`>`) or the server sent (`<`), escaped. */
  lines: string[];
}

export interface LogEntryJson {
  time: number;
  kind: 'service' | 'connection' | 'refusal' | 'udp' | 'kernel' | 'error';
  text: string;
}

export interface Totals {
  accepted: number;
  open: number;
  closed: number;
  refused: Record<string, number>;
  udp: { received: number; answered: number; dropped: Record<string, number> };
}

/** Where the page is shown less than everything, and why. */
export interface SamplingJson {
  /** Log entries not sent since the page connected: more than MAX_EVENTS_PER_UPDATE in one update. */
  eventsNotListed: number;
  /** Connections that left the table to keep it at MAX_ROWS. */
  rowsDropped: number;
  maxRows: number;
  /** The kernel-state reporter looked up only some closed connections (its own sampling). */
  kernelStatesSkipped: number;
}

/** One update for the page: `full` replaces everything, otherwise it adds to what the page has. */
export interface UpdateJson {
  full: boolean;
  /** The server's clock when this was made, ms since the Unix epoch: the page counts TIME_WAIT down from it. */
  now: number;
  services: ServiceJson[];
  counts: Partial<Record<LadderState, number>>;
  totals: Totals;
  sampling: SamplingJson;
  rows: ConnectionJson[];
  removed: string[];
  events: LogEntryJson[];
  troubles: LogEntryJson[];
  lab: string[];
}

export interface LadderJson {
  key: string;
  source: 'captured' | 'inferred';
  client: string;
  server: string;
  steps: StepJson[];
  /** The states each end went through, in order (for the diagram's highlight). */
  paths: { client: LadderState[]; server: LadderState[] };
}

/** What the page does with each event type it follows. */
type Handlers = { [T in EventType]?: (event: EventOf<T>) => void };

interface Row {
  json: ConnectionJson;
  /** The connection's own events, for an inferred ladder. */
  accepted: EventOf<'accepted'>;
  messages: EventOf<'message'>[];
  sent: EventOf<'sent'>[];
  closed?: EventOf<'closed'>;
}

/** The server's side, from the application's lifecycle (connection.ts) while the descriptor is open. */
function openState(from: ConnectionState | undefined, to: ConnectionState): LadderState {
  if (to === 'peer-closed') return 'CLOSE_WAIT';
  // We closed: first (our FIN starts the close) or second (answering the client's FIN).
  if (to === 'closing') return from === 'peer-closed' ? 'LAST_ACK' : 'FIN_WAIT1';
  return 'ESTABLISHED';
}

const pairKey = (client: string, server: string): string => `${client} ${server}`;

/** ANSI colour sequences that a terminal's ladder carries; the page has its own colours. */
const COLOUR_SEQUENCES = /\x1b\[[0-9;]*m/g;

export class DashboardState {
  /** The listening sockets, each with the stream (prefix) whose service it is. */
  private readonly services: { prefix: string; json: ServiceJson }[] = [];
  private readonly rows = new Map<string, Row>();
  /** Every open connection's state, even those no longer in the table: the counts cover all. */
  private readonly openStates = new Map<string, LadderState>();
  /** Closed connections the kernel still holds (TIME_WAIT, FIN_WAIT2), until their timer runs out. */
  private readonly lingering = new Map<string, { state: LadderState; until: number }>();
  private readonly captured = new Map<string, Connection>();
  private readonly totals: Totals = { accepted: 0, open: 0, closed: 0, refused: {}, udp: { received: 0, answered: 0, dropped: {} } };
  private readonly sampling: SamplingJson = { eventsNotListed: 0, rowsDropped: 0, maxRows: MAX_ROWS, kernelStatesSkipped: 0 };
  private readonly recentEvents: LogEntryJson[] = [];
  private readonly recentTroubles: LogEntryJson[] = [];
  private readonly labLines: string[] = [];
  private streams = 0;
  // What changed since the last update.
  private readonly changedRows = new Set<string>();
  private removedRows: string[] = [];
  private newEvents: LogEntryJson[] = [];
  private newTroubles: LogEntryJson[] = [];
  private newLabLines: string[] = [];
  private changed = false;

  constructor(private readonly clock: Clock = SYSTEM_CLOCK) {}

  /** Follows a stream's events; a lab has one stream per server it starts. */
  follow(stream: EventStream): Unsubscribe {
    const prefix = this.streams === 0 ? '' : `s${this.streams + 1}`;
    this.streams += 1;
    const unsubscribers = Object.entries(this.handlers(prefix)).map(([type, handler]) =>
      stream.on(type as EventType, (event) => {
        this.changed = true;
        (handler as (event: ServerEvent) => void)(event);
      }),
    );
    return () => unsubscribers.forEach((unsubscribe) => unsubscribe());
  }

  /** One line of a lab's narration. Our own text, but it quotes the kernel and programs: escaped all the same. */
  addLabLine(line: string): void {
    const text = escapeText(line.replace(COLOUR_SEQUENCES, ''));
    this.labLines.push(text);
    if (this.labLines.length > LAB_LINES_KEPT) this.labLines.shift();
    this.newLabLines.push(text);
    this.changed = true;
  }

  /** A connection a packet capture followed: its ladder replaces the inferred one. */
  addCaptured(connection: Connection): void {
    this.captured.set(pairKey(formatEndpoint(connection.client), formatEndpoint(connection.server)), connection);
    if (this.captured.size > CAPTURED_KEPT) this.captured.delete(this.captured.keys().next().value!);
    this.changed = true;
  }

  /** Whether the table shows this connection: the kernel-state reporter looks such ones up. */
  shows(closed: Pick<EventOf<'closed'>, 'conn'>, prefix = ''): boolean {
    return this.rows.has(`${prefix}#${closed.conn}`);
  }

  /** Everything, for a page that has just connected. */
  snapshot(): UpdateJson {
    this.expireLingering();
    return {
      ...this.common(true),
      rows: [...this.rows.values()].map((row) => row.json),
      removed: [],
      events: [...this.recentEvents],
      troubles: [...this.recentTroubles],
      lab: [...this.labLines],
    };
  }

  /** What changed since the last call, or undefined when nothing did. */
  takeUpdate(): UpdateJson | undefined {
    const expired = this.expireLingering();
    if (!this.changed && !expired) return undefined;
    const update: UpdateJson = {
      ...this.common(false),
      rows: [...this.changedRows].flatMap((key) => {
        const row = this.rows.get(key);
        return row === undefined ? [] : [row.json];
      }),
      removed: this.removedRows,
      events: this.newEvents,
      troubles: this.newTroubles,
      lab: this.newLabLines,
    };
    this.changedRows.clear();
    this.removedRows = [];
    this.newEvents = [];
    this.newTroubles = [];
    this.newLabLines = [];
    this.changed = false;
    return update;
  }

  /** A connection's ladder: from the capture when there is one, otherwise inferred from its events. */
  ladder(key: string): LadderJson | undefined {
    const row = this.rows.get(key);
    if (row === undefined) return undefined;
    const { client, server } = row.json;
    const captured = this.captured.get(pairKey(client, server));
    const connection = captured ?? this.inferredConnection(row);
    if (connection === undefined) return undefined;
    return {
      key,
      source: captured === undefined ? 'inferred' : 'captured',
      client,
      server,
      steps: connection.steps.map(stepToJson),
      paths: { client: statePath(connection, 'client'), server: statePath(connection, 'server') },
    };
  }

  private inferredConnection(row: Row): Connection | undefined {
    let finished: Connection | undefined;
    const tracker = new ConnectionTracker({ serverPorts: [row.accepted.local.port], onFinished: (c) => (finished = c) });
    const segments = inferSegments({ accepted: row.accepted, messages: row.messages, sent: row.sent, closed: row.closed });
    for (const segment of segments) tracker.add(segment);
    return finished ?? tracker.open()[0];
  }

  private common(full: boolean): Omit<UpdateJson, 'rows' | 'removed' | 'events' | 'troubles' | 'lab'> {
    return { full, now: this.now(), services: this.services.map((s) => s.json), counts: this.counts(), totals: this.totals, sampling: this.sampling };
  }

  private now(): number {
    return this.clock.timeOrigin + this.clock.monotonicMs();
  }

  private counts(): Partial<Record<LadderState, number>> {
    const counts: Partial<Record<LadderState, number>> = Object.fromEntries(COUNTED_STATES.map((state) => [state, 0]));
    counts.LISTEN = this.services.filter((s) => s.json.transport === 'tcp').length;
    for (const state of this.openStates.values()) counts[state] = (counts[state] ?? 0) + 1;
    for (const { state } of this.lingering.values()) counts[state] = (counts[state] ?? 0) + 1;
    return counts;
  }

  /** Forgets kernel states whose timer has run out (TIME_WAIT's 60 s); true if any did. */
  private expireLingering(): boolean {
    const now = this.now();
    let expired = false;
    for (const [key, { until }] of this.lingering) {
      if (until > now) continue;
      this.lingering.delete(key);
      expired = true;
    }
    return expired;
  }

  /**
   * What each event type changes, for the stream whose connections are labelled with `prefix`. One
   * listener per type, each seeing events of one shape (as the log observer does): cheaper than one
   * listener with a switch over every type. Types not here are not subscribed to at all.
   */
  private handlers(prefix: string): Handlers {
    return {
      listening: (event) => {
        this.services.push({ prefix, json: { protocol: event.protocol, transport: event.transport, socket: formatListeningEndpoint(event.local), rfc: event.rfc } });
        this.log(event, 'service', `${event.protocol}${event.transport === 'udp' ? '/udp' : ''} listening on ${formatListeningEndpoint(event.local)}`);
      },
      'handed-over': (event) => {
        if (event.role !== 'connected') this.services.push({ prefix, json: { protocol: event.protocol, transport: event.transport, socket: formatListeningEndpoint(event.local) } });
        this.log(event, 'service', `${event.protocol}: serving descriptor ${event.fd} from ${event.by}`);
      },
      accepted: (event) => this.onAccepted(event, prefix),
      state: (event) => this.onState(event, prefix),
      'peer-name': (event) =>
        this.updateRow(event, prefix, (row) => {
          if (event.host !== null) row.json.host = event.host;
        }),
      message: (event) => {
        this.updateRow(event, prefix, (row) => {
          this.keepLine(row, `> ${event.text}`);
          if (row.messages.length < LADDER_EVENTS_KEPT) row.messages.push(event);
        });
        this.log(event, 'connection', `${prefix}#${event.conn} message: ${event.text}${event.truncated ? ` … (${event.length} bytes)` : ''}`);
      },
      sent: (event) => {
        this.updateRow(event, prefix, (row) => {
          this.keepLine(row, `< ${event.text}`);
          if (row.sent.length < LADDER_EVENTS_KEPT) row.sent.push(event);
        });
        this.log(event, 'connection', `${prefix}#${event.conn} sent: ${event.text}`);
      },
      closed: (event) => this.onClosed(event, prefix),
      'kernel-state': (event) => this.onKernelState(event, prefix),
      'kernel-state-sampled': (event) => void (this.sampling.kernelStatesSkipped += event.skipped),
      'kernel-state-skipped': (event) => void (this.sampling.kernelStatesSkipped += event.connections),
      'kernel-state-failed': (event) => this.log(event, 'error', `could not read the kernel's TCP states: ${event.message}`),
      'kernel-state-unavailable': (event) => this.log(event, 'error', 'kernel TCP states are not shown: /proc/net/tcp is Linux only'),
      'send-queue-unavailable': (event) => this.log(event, 'error', `--max-send-queue is off: the kernel's send queues cannot be read (${event.message})`),
      refused: (event) => {
        this.totals.refused[event.reason] = (this.totals.refused[event.reason] ?? 0) + 1;
        this.trouble(event, 'refusal', `${event.protocol}: refused ${formatEndpoint(event.remote)} (${event.reason}${event.limit === undefined ? '' : ` ${event.limit}`}): reset at once`);
      },
      datagram: (event) => {
        this.totals.udp.received += 1;
        if (event.bytesOut > 0) this.totals.udp.answered += 1;
      },
      'udp-dropped': (event) => {
        this.totals.udp.received += 1;
        this.totals.udp.dropped[event.reason] = (this.totals.udp.dropped[event.reason] ?? 0) + 1;
        this.trouble(event, 'udp', `${event.protocol}/udp: not answering ${formatEndpoint(event.remote)} (${event.reason})`);
      },
      'accept-error': (event) => this.trouble(event, 'error', `${event.protocol}: accept failed: ${event.message}`),
      'protocol-error': (event) => this.trouble(event, 'error', `${event.protocol}: the protocol's handler failed: ${escapeText(event.message)}`),
      'idle-timeout': (event) => this.log(event, 'connection', `${prefix}#${event.conn}: idle for ${event.idleTimeoutMs} ms, closing`),
      'socket-error': (event) => this.log(event, 'connection', `${prefix}#${event.conn}: ${event.code}`),
      queued: (event) => this.log(event, 'connection', `${prefix}#${event.conn} waits behind #${event.behind} (iterative server)`),
      draining: (event) => this.log(event, 'service', `${event.protocol}: shutting down, waiting for ${event.open} open connection(s)`),
      summary: (event) => {
        // The service stopped: its sockets no longer listen (a lab stops its servers as it goes).
        const stopped = (s: { prefix: string; json: ServiceJson }): boolean => s.prefix === prefix && s.json.protocol === event.protocol && s.json.transport === event.transport;
        this.services.splice(0, this.services.length, ...this.services.filter((s) => !stopped(s)));
        this.log(event, 'service', `${event.protocol}${event.transport === 'udp' ? '/udp' : ''} stopped`);
      },
    };
  }

  private onAccepted(event: EventOf<'accepted'>, prefix: string): void {
    const key = `${prefix}#${event.conn}`;
    this.totals.accepted += 1;
    this.totals.open += 1;
    this.openStates.set(key, 'ESTABLISHED');
    const json: ConnectionJson = {
      key,
      label: key,
      protocol: event.protocol,
      client: formatEndpoint(event.remote),
      server: formatEndpoint(event.local),
      openedAt: event.time,
      appState: 'accepted',
      state: 'ESTABLISHED',
      lines: [],
    };
    this.rows.set(key, { json, accepted: event, messages: [], sent: [] });
    this.changedRows.add(key);
    if (this.rows.size > MAX_ROWS) {
      const oldest = this.rows.keys().next().value!;
      this.rows.delete(oldest);
      this.changedRows.delete(oldest);
      this.removedRows.push(oldest);
      this.sampling.rowsDropped += 1;
    }
    this.log(event, 'connection', `${key} ${event.protocol}: accepted ${formatSocketPair(event.local, event.remote)}`);
  }

  private onState(event: EventOf<'state'>, prefix: string): void {
    const key = `${prefix}#${event.conn}`;
    if (event.to === 'closed' || !this.openStates.has(key)) return; // `closed` says more
    const state = openState(event.from, event.to);
    this.openStates.set(key, state);
    this.updateRow(event, prefix, (row) => {
      row.json.appState = event.to;
      row.json.state = state;
    });
  }

  private onClosed(event: EventOf<'closed'>, prefix: string): void {
    const key = `${prefix}#${event.conn}`;
    if (this.openStates.delete(key)) this.totals.open -= 1;
    this.totals.closed += 1;
    this.updateRow(event, prefix, (row) => {
      row.closed = event;
      Object.assign(row.json, { appState: 'closed', state: 'closed', closedAt: event.time, bytesIn: event.bytesIn, bytesOut: event.bytesOut, closedBy: event.closedBy, how: event.how });
    });
    const why = event.reason === undefined || event.reason === 'protocol' ? '' : ` (${event.reason})`;
    this.log(event, 'connection', `${key} closed: the ${event.closedBy} closed first with ${event.how.toUpperCase()}${why}; ${event.bytesIn} bytes in, ${event.bytesOut} out`);
  }

  private onKernelState(event: EventOf<'kernel-state'>, prefix: string): void {
    const key = `${prefix}#${event.conn}`;
    const state = (event.state ?? 'CLOSED') as LadderState;
    if (event.remainingMs !== null && event.remainingMs > 0) this.lingering.set(key, { state, until: event.time + event.remainingMs });
    // A lab may run a reporter of its own besides ours: the same reading twice is logged once.
    const repeated = this.rows.get(key)?.json.kernel?.state === event.state;
    this.updateRow(event, prefix, (row) => {
      row.json.state = state;
      row.json.kernel = { state: event.state, remainingMs: event.remainingMs, readAt: event.time, explanation: event.explanation };
    });
    if (!repeated) this.log(event, 'kernel', `${key} kernel: ${event.state ?? 'nothing left'}`);
  }

  private updateRow(event: { conn: number }, prefix: string, change: (row: Row) => void): void {
    const key = `${prefix}#${event.conn}`;
    const row = this.rows.get(key);
    if (row === undefined) return;
    change(row);
    this.changedRows.add(key);
  }

  private keepLine(row: Row, line: string): void {
    row.json.lines.push(line);
    if (row.json.lines.length > LINES_PER_ROW) row.json.lines.shift();
  }

  private log(event: ServerEvent, kind: LogEntryJson['kind'], text: string): void {
    if (this.newEvents.length >= MAX_EVENTS_PER_UPDATE) {
      this.sampling.eventsNotListed += 1;
      return;
    }
    const entry = { time: event.time, kind, text };
    this.newEvents.push(entry);
    this.recentEvents.push(entry);
    if (this.recentEvents.length > RECENT_EVENTS_KEPT) this.recentEvents.shift();
  }

  /** Refusals, drops and errors: counted always, listed apart (the most recent ones), and logged. */
  private trouble(event: ServerEvent, kind: LogEntryJson['kind'], text: string): void {
    const entry = { time: event.time, kind, text };
    this.newTroubles.push(entry);
    if (this.newTroubles.length > RECENT_TROUBLE_KEPT) this.newTroubles.shift();
    this.recentTroubles.push(entry);
    if (this.recentTroubles.length > RECENT_TROUBLE_KEPT) this.recentTroubles.shift();
    this.log(event, kind, text);
  }
}
