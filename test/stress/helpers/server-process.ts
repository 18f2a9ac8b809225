/**
 * The real lab-server, run as a child process so that its memory and descriptors can be read
 * from /proc/<pid>/, as `ps` and `ls /proc/<pid>/fd` would. Linux only.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServerProcess, type RunningServer } from '../../helpers/cli.js';

export interface ProcessStats {
  /** Resident memory (VmRSS), in bytes. */
  rssBytes: number;
  /** Open file descriptors: sockets, pipes, files. */
  fds: number;
}

export function processStats(pid: number): ProcessStats {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN);
  return { rssBytes: rssKiB * 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
}

/** This process's limit on open files (`ulimit -n`), soft and hard, from /proc/self/limits. */
export function openFileLimits(): { soft: number; hard: number } {
  const line = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const parse = (value: string | undefined): number => (value === 'unlimited' ? Infinity : Number(value));
  return { soft: parse(line?.[1]), hard: parse(line?.[2]) };
}

export interface StressServer extends RunningServer {
  pid: number;
  stats(): ProcessStats;
  /** True while the process exists and has not exited. */
  alive(): boolean;
}

/**
 * Starts `lab-server echo --host 127.0.0.1 <args>` with `ulimit -n <openFiles>` (bash sets the
 * limit, then execs node, so the pid is the server's). The limit cannot exceed our hard limit.
 */
export async function startEchoServer(args: string[], { openFiles }: { openFiles?: number } = {}): Promise<StressServer> {
  const prefix = openFiles === undefined ? [] : ['bash', '-c', `ulimit -n ${openFiles} && exec "$@"`, 'bash'];
  const server = await startServerProcess(['echo', '--host', '127.0.0.1', ...args], { prefix });
  const pid = server.child.pid!;
  return {
    ...server,
    pid,
    stats: () => processStats(pid),
    alive: () => server.child.exitCode === null && server.child.signalCode === null,
  };
}

/**
 * Polls until `check` returns a value, or returns undefined after `timeoutMs`. For conditions
 * that no event announces, such as the server's descriptor count falling back.
 */
export async function pollFor<T>(check: () => T | undefined, timeoutMs: number, intervalMs = 50): Promise<T | undefined> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined || performance.now() > deadline) return value;
    await sleep(intervalMs);
  }
}

/** Waits until the server's descriptor count is back to `baseline` (or below); returns the last count. */
export async function fdsBackTo(server: StressServer, baseline: number, timeoutMs = 30_000): Promise<number> {
  await pollFor(() => (server.stats().fds <= baseline ? true : undefined), timeoutMs);
  return server.stats().fds;
}

/** Samples the server's resident memory every `intervalMs` until stopped; keeps the peak. */
export function sampleMemory(server: StressServer, intervalMs = 100): { peakBytes(): number; stop(): number } {
  let peak = server.stats().rssBytes;
  const timer = setInterval(() => {
    if (server.alive()) peak = Math.max(peak, server.stats().rssBytes);
  }, intervalMs);
  return {
    peakBytes: () => peak,
    stop: () => {
      clearInterval(timer);
      return peak;
    },
  };
}
