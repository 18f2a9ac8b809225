/**
 * The kernel's TCP sockets as a student wants to see them: a table like `ss -tan`, limited to one
 * port, that also says which end of each connection is the server.
 *
 * Which side is which? A TCP segment does not say. The textbook's answer (Stevens, UNP §2.10) is
 * the listening socket: the server is the end whose local port has a listener, `{*:5000, *:*}`,
 * and every connection it accepts shares that local port. The client is the other end, whose
 * *remote* port is the listening one and whose own port is ephemeral. This module is pure:
 * entries in, rows and text out.
 */
import { formatEndpoint, formatListeningEndpoint, sameEndpoint, type Endpoint } from '../framework/endpoint.js';
import type { TcpSocketEntry, TcpState } from './parse.js';

/** `server`: the end on the listening port (a LISTEN row is the server too); `client`: the other end; `unknown`: no listener on either port. */
export type Side = 'server' | 'client' | 'unknown';

export interface StateRow {
  state: TcpState | 'UNKNOWN';
  side: Side;
  local: Endpoint;
  remote: Endpoint;
  family: 4 | 6;
  /** Bytes received but not yet read by the application (Recv-Q). */
  rxQueue: number;
  /** Bytes sent but not yet acknowledged (Send-Q). */
  txQueue: number;
  /**
   * Time left on the 2×MSL timer of a TIME_WAIT socket (the same timer ends an orphaned
   * FIN_WAIT2, one whose descriptor is closed); null when that timer is not running.
   */
  remainingMs: number | null;
}

export interface StateTableOptions {
  /** Only sockets with this port at either end; all sockets when undefined. */
  port?: number;
  /** List at most this many sockets (see StateTableBuilder for which); 0 or undefined lists all. */
  limit?: number;
}

/** The table: the rows listed, and what the limit left out. */
export interface StateTable {
  rows: StateRow[];
  /** Every socket found (on the port), listed or not. */
  total: number;
  /** For each state, how many sockets in it the limit left out; empty when none were. */
  omitted: Partial<Record<TcpState | 'UNKNOWN', number>>;
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

/** Does this LISTEN socket own `end`, that is, would a SYN to `end` reach it? */
function listensOn(listener: TcpSocketEntry, end: Endpoint): boolean {
  if (listener.local.port !== end.port) return false;
  return WILDCARDS.has(listener.local.address) || sameEndpoint(listener.local, end);
}

/**
 * Which side `entry` is. Without a listener on either port (the server has stopped, and its
 * old connections linger in TIME_WAIT) the port the user asked about is taken as the server's.
 */
export function sideOf(entry: TcpSocketEntry, listeners: readonly TcpSocketEntry[], port?: number): Side {
  if (entry.state === 'LISTEN') return 'server';
  if (listeners.some((l) => listensOn(l, entry.local))) return 'server';
  if (listeners.some((l) => listensOn(l, entry.remote))) return 'client';
  if (port !== undefined && entry.local.port === port) return 'server';
  if (port !== undefined && entry.remote.port === port) return 'client';
  return 'unknown';
}

/** The server's port of a row's connection, and the client's: the two ends of one connection share both. */
const serverPort = (row: StateRow): number => (row.side === 'client' ? row.remote.port : row.local.port);
const clientPort = (row: StateRow): number => (row.side === 'client' ? row.local.port : row.remote.port);

/** LISTEN rows first, then connection by connection (server end, then client end): a stable order to read. */
function compareRows(a: StateRow, b: StateRow): number {
  return (
    Number(b.state === 'LISTEN') - Number(a.state === 'LISTEN') ||
    serverPort(a) - serverPort(b) ||
    clientPort(a) - clientPort(b) ||
    Number(a.side === 'client') - Number(b.side === 'client') ||
    a.local.address.localeCompare(b.local.address)
  );
}

const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Which sockets a limit keeps: LISTEN first, then by the connection's lower port and its higher
 * one, which in the common case (a server port below the clients' ephemeral ones) is the order the
 * table prints, and needs no listener to compute: a row can be kept or dropped as it is read.
 */
function selectionOrder(a: TcpSocketEntry, b: TcpSocketEntry): number {
  const low = (e: TcpSocketEntry): number => Math.min(e.local.port, e.remote.port);
  const high = (e: TcpSocketEntry): number => Math.max(e.local.port, e.remote.port);
  return (
    Number(b.state === 'LISTEN') - Number(a.state === 'LISTEN') ||
    low(a) - low(b) ||
    high(a) - high(b) ||
    a.local.port - b.local.port ||
    compareText(a.local.address, b.local.address) ||
    compareText(a.remote.address, b.remote.address)
  );
}

/**
 * Builds the table from the kernel's rows as they are read, one at a time, in memory bounded by the
 * limit: a client that leaves 125,000 sockets in TIME_WAIT on a daytime server (one per
 * connection) must not make `states` hold 125,000 rows, or print them every second.
 *
 * With a limit, the listed sockets are the listeners and the connections on the lowest ports
 * (selectionOrder); the others are only counted, by state. Rows are kept until there are twice the
 * limit, then sorted and cut back to the limit: O(n log limit) work, and never more than 2 × limit
 * rows held. Every LISTEN row is kept aside (there are few: a remote client cannot make one), since
 * it decides which end of a connection on its port is the server.
 */
export class StateTableBuilder {
  /** LISTEN rows by port: what sideOf needs, found without scanning every listener for every row. */
  private readonly listeners = new Map<number, TcpSocketEntry[]>();
  private kept: TcpSocketEntry[] = [];
  private readonly counts = new Map<TcpState | 'UNKNOWN', number>();
  private total = 0;

  constructor(private readonly options: StateTableOptions = {}) {}

  add(entry: TcpSocketEntry): void {
    const { port, limit = 0 } = this.options;
    if (entry.state === 'LISTEN') {
      const onPort = this.listeners.get(entry.local.port) ?? [];
      this.listeners.set(entry.local.port, onPort);
      onPort.push(entry);
    }
    if (port !== undefined && entry.local.port !== port && entry.remote.port !== port) return;
    this.total += 1;
    this.counts.set(entry.state, (this.counts.get(entry.state) ?? 0) + 1);
    this.kept.push(entry);
    if (limit > 0 && this.kept.length >= 2 * limit) this.cutTo(limit);
  }

  finish(): StateTable {
    const { port, limit = 0 } = this.options;
    if (limit > 0) this.cutTo(limit);
    const listenersOn = (entry: TcpSocketEntry): TcpSocketEntry[] => [...(this.listeners.get(entry.local.port) ?? []), ...(this.listeners.get(entry.remote.port) ?? [])];
    const rows = this.kept.map((entry) => toRow(entry, sideOf(entry, listenersOn(entry), port))).sort(compareRows);
    const listed = new Map<TcpState | 'UNKNOWN', number>();
    for (const row of rows) listed.set(row.state, (listed.get(row.state) ?? 0) + 1);
    const omitted: StateTable['omitted'] = {};
    for (const [state, count] of this.counts) if (count > (listed.get(state) ?? 0)) omitted[state] = count - (listed.get(state) ?? 0);
    return { rows, total: this.total, omitted };
  }

  private cutTo(limit: number): void {
    if (this.kept.length <= limit) return;
    this.kept.sort(selectionOrder);
    this.kept.length = limit;
  }
}

function toRow(entry: TcpSocketEntry, side: Side): StateRow {
  return {
    state: entry.state,
    side,
    local: entry.local,
    remote: entry.remote,
    family: entry.family,
    rxQueue: entry.rxQueue,
    txQueue: entry.txQueue,
    remainingMs: entry.timer.kind === 'time-wait' ? entry.timer.remainingMs : null,
  };
}

/** The rows of the table: the sockets on `port` (or all of them), each with its side. */
export function buildStateRows(entries: readonly TcpSocketEntry[], options: StateTableOptions = {}): StateRow[] {
  const builder = new StateTableBuilder(options);
  for (const entry of entries) builder.add(entry);
  return builder.finish().rows;
}

/** `59.3 s`, as a student reads a countdown. */
export function formatRemaining(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

const HEADINGS = ['State', 'Side', 'Recv-Q', 'Send-Q', 'Local', 'Remote', 'Timer'] as const;

/**
 * The rows as aligned text. A listener is written as Stevens does, `{*:5000, *:*}`: its local
 * address may be a wildcard and it has no remote end.
 */
export function formatStateTable(rows: readonly StateRow[], options: StateTableOptions = {}): string {
  if (rows.length === 0) {
    return options.port === undefined ? 'no TCP sockets' : `no TCP sockets on port ${options.port}`;
  }
  const cells = rows.map((row) => {
    const listening = row.state === 'LISTEN';
    return [
      row.state,
      row.side,
      String(row.rxQueue),
      String(row.txQueue),
      listening ? formatListeningEndpoint(row.local) : formatEndpoint(row.local),
      listening ? '*:*' : formatEndpoint(row.remote),
      row.remainingMs === null ? '' : `${formatRemaining(row.remainingMs)} left`,
    ];
  });
  const table = [[...HEADINGS], ...cells];
  // A loop, not Math.max(...column): spreading 125,000 values as arguments overflows the stack.
  const widths = HEADINGS.map(() => 0);
  for (const line of table) line.forEach((cell, column) => (widths[column] = Math.max(widths[column]!, cell.length)));
  return table.map((line) => line.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()).join('\n');
}
