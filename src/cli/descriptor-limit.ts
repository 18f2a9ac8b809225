/**
 * Every connection costs a file descriptor, and a process may hold only `ulimit -n` of them.
 * When accept(2) fails with EMFILE, libuv quietly accepts and closes the waiting connections
 * itself, so nobody learns why clients were turned away. Keeping --max-connections below the
 * descriptor limit means excess clients are refused by our own limit instead, and logged.
 */
import { readFileSync } from 'node:fs';
import { ERROR_CODES } from '../errors.js';

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

/**
 * Descriptors each program needs just to load. Node's ESM loader opens the files of a module graph
 * all at once, and with too few descriptors it fails inside the loader, with a stack trace or a
 * crash. Measured on Node 20 by lowering `ulimit -n` until startup failed: lab-server 52 (a server,
 * --help, a lab), lab-client 40; these leave room for another Node line's loader.
 */
export const DESCRIPTORS_TO_LOAD = { 'lab-server': 64, 'lab-client': 48 } as const;

/** Exits with one line, before the program loads, when its descriptor limit is below what loading it needs. */
export function requireDescriptorsToLoad(program: keyof typeof DESCRIPTORS_TO_LOAD): void {
  const needed = DESCRIPTORS_TO_LOAD[program];
  const limit = openFilesLimit();
  if (limit === undefined || limit >= needed) return;
  process.stderr.write(`${program}: needs at least ${needed} open files to start, and this process may open only ${limit}: raise the limit (ulimit -n ${needed} or more; LimitNOFILE= under systemd)\n`);
  process.exit(ERROR_CODES.ERR_TOO_FEW_DESCRIPTORS.exitCode);
}
