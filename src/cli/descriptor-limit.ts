/**
 * Every connection costs a file descriptor, and a process may hold only `ulimit -n` of them.
 * When accept(2) fails with EMFILE, libuv quietly accepts and closes the waiting connections
 * itself, so nobody learns why clients were turned away. Keeping --max-connections below the
 * descriptor limit means excess clients are refused by our own limit instead, and logged.
 */
import { readFileSync } from 'node:fs';

/** Descriptors the process needs besides connections: stdio, the listeners, logs, /proc reads. */
const DESCRIPTORS_IN_RESERVE = 32;

/** The soft "Max open files" limit, from /proc/self/limits (Linux); undefined elsewhere or when unlimited. */
export function openFilesLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    return Number.isFinite(soft) ? soft : undefined;
  } catch {
    return undefined;
  }
}

/** The most connections this process can hold with the given descriptor limit. */
export function connectionsWithin(limit: number): number {
  return Math.max(1, limit - DESCRIPTORS_IN_RESERVE);
}
