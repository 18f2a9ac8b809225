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

/** The rows of the table: the sockets on `port` (or all of them), each with its side. */
export function buildStateRows(entries: readonly TcpSocketEntry[], options: StateTableOptions = {}): StateRow[] {
  const { port } = options;
  const listeners = entries.filter((entry) => entry.state === 'LISTEN');
  const shown = port === undefined ? entries : entries.filter((e) => e.local.port === port || e.remote.port === port);
  return shown
    .map((entry) => ({
      state: entry.state,
      side: sideOf(entry, listeners, port),
      local: entry.local,
      remote: entry.remote,
      family: entry.family,
      rxQueue: entry.rxQueue,
      txQueue: entry.txQueue,
      remainingMs: entry.timer.kind === 'time-wait' ? entry.timer.remainingMs : null,
    }))
    .sort(compareRows);
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
  const widths = HEADINGS.map((_, column) => Math.max(...table.map((line) => line[column]?.length ?? 0)));
  return table.map((line) => line.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd()).join('\n');
}
