/**
 * Waiting for the kernel. TCP state changes happen in the kernel, on its own time (an ACK
 * crossing loopback, a timer firing), and nothing tells a process when they do. So we ask
 * again and again: read /proc/net/tcp every few milliseconds until the state we expect shows
 * up, or a deadline passes. Never a fixed sleep: a fast machine finishes at once, a slow one
 * gets the whole deadline.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Endpoint } from '../framework/endpoint.js';
import { findConnection, type TcpSocketEntry, type TcpState } from './parse.js';
import { readTcpSockets } from './read.js';

/** 'none': the kernel has no socket for this pair (never had one, or has forgotten it). */
export type ObservedState = TcpState | 'UNKNOWN' | 'none';

/** How often to look. A read of the table costs well under a millisecond on a quiet machine. */
export const POLL_INTERVAL_MS = 20;
/** How long to wait for a state before calling it a disagreement. */
export const STATE_DEADLINE_MS = 5000;

export interface WaitForStateOptions {
  deadlineMs?: number;
  intervalMs?: number;
  /** Reads the kernel's table; injected by tests. Default: readTcpSockets(). */
  read?: () => Promise<TcpSocketEntry[]>;
}

export interface Sighting {
  /** The kernel's row, when there is one. */
  entry?: TcpSocketEntry;
  /** How long it took (the whole deadline when `matches` never held). */
  waitedMs: number;
  /** Whether `matches` held before the deadline. */
  matched: boolean;
}

/**
 * Polls the socket `{local, remote}` until `matches(row)` holds (the row is undefined while the
 * kernel has no such socket), or the deadline passes. Returns the last row seen.
 */
export async function waitForTcpSocket(
  local: Endpoint,
  remote: Endpoint,
  matches: (entry: TcpSocketEntry | undefined) => boolean,
  options: WaitForStateOptions = {},
): Promise<Sighting> {
  // Only the rows of this pair are decoded: on a busy host the table holds tens of thousands.
  const { deadlineMs = STATE_DEADLINE_MS, intervalMs = POLL_INTERVAL_MS, read = () => readTcpSockets({ port: local.port, peerPorts: [remote.port] }) } = options;
  const start = performance.now();
  // Bounded by the deadline: at most deadlineMs / intervalMs reads.
  for (;;) {
    const entry = findConnection(await read(), local, remote);
    const matched = matches(entry);
    const waitedMs = Math.round(performance.now() - start);
    if (matched || waitedMs >= deadlineMs) return entry === undefined ? { matched, waitedMs } : { entry, matched, waitedMs };
    await sleep(intervalMs);
  }
}

/** The state of a row, 'none' for no row. */
export const stateOf = (entry: TcpSocketEntry | undefined): ObservedState => entry?.state ?? 'none';

/** Polls until the socket `{local, remote}` is in `expected`, or the deadline passes. */
export function waitForTcpState(local: Endpoint, remote: Endpoint, expected: ObservedState, options: WaitForStateOptions = {}): Promise<Sighting> {
  return waitForTcpSocket(local, remote, (entry) => stateOf(entry) === expected, options);
}
