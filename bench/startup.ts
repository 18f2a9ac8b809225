/**
 * Startup: how long a command takes before it does its job, and what an idle server holds.
 * A student runs `lab-client daytime` dozens of times in a lab, and a supervisor (inetd, systemd's
 * Accept=yes) starts a server per connection: time spent loading modules is paid on every run.
 *
 * - startup-client: `lab-client daytime` against a running lab-server, start to exit, against
 *   `node -e 0`: the least any Node program costs.
 * - startup-server: a fresh server's time from spawn to its first line ("listening"), against
 *   the bare `node:net` server of bench/baseline-servers.ts, which prints the same line.
 *
 * The idle server's resident memory is the idle-rss row, in idle-memory.ts.
 *
 * The load process spawns the programs itself (they inherit its CPU), one at a time, and takes
 * the median of several: a single start on a shared virtual machine varies by tens of ms. The
 * details add each start's CPU time (user + system), which varies less when the machine is busy.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { childrenCpuTimeMs } from './proc-stats.js';
import { serverCommand } from './processes.js';
import type { LoadContext, Measurement, Scenario } from './scenario.js';
import { median } from './stats.js';

/** Starts per run; each takes a few tenths of a second. */
const STARTS = 15;
/** A start that takes longer than this has hung: the run fails rather than waits. */
const START_TIME_LIMIT_MS = 10_000;

const LAB_CLIENT_CLI = fileURLToPath(new URL('../src/cli/lab-client.js', import.meta.url));

/** Runs `argv` until it exits with status 0; returns the milliseconds from spawn to exit. */
async function timeToExit(argv: readonly string[]): Promise<number> {
  const started = performance.now();
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', timeout: START_TIME_LIMIT_MS });
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  if (code !== 0) throw new Error(`${argv.join(' ')} failed (${signal ?? `status ${code}`})`);
  return performance.now() - started;
}

/** Starts a server, returns the milliseconds from spawn to its first line on stdout, and stops it again. */
async function timeToListening(argv: readonly string[]): Promise<number> {
  const started = performance.now();
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = once(child, 'exit');
  const killer = setTimeout(() => child.kill('SIGKILL'), START_TIME_LIMIT_MS);
  try {
    let output = '';
    for await (const chunk of child.stdout!) {
      output += String(chunk);
      if (output.includes('\n')) break;
    }
    if (!output.includes('"listening"')) throw new Error(`${argv.join(' ')}: no "listening" line (${output.trim() || 'it exited'})`);
    return performance.now() - started;
  } finally {
    clearTimeout(killer);
    child.kill('SIGTERM');
    await exited;
  }
}

/** The median wall-clock time of STARTS runs; and their mean CPU time, which a busy machine changes less. */
async function repeat(measure: () => Promise<number>): Promise<Measurement> {
  const times: number[] = [];
  const cpuBefore = childrenCpuTimeMs();
  for (let i = 0; i < STARTS; i++) times.push(await measure());
  return { value: median(times), details: { minMs: Math.min(...times), cpuMs: (childrenCpuTimeMs() - cpuBefore) / STARTS } };
}

export const clientStartup: Scenario = {
  name: 'startup-client',
  summary: `lab-client daytime to a running lab-server, start to exit, against node -e 0: median of ${STARTS}`,
  protocol: 'daytime',
  metric: { name: 'time to exit', unit: 'ms' },
  runs: { full: 3, quick: 1 },
  timed: false,
  load: ({ kind, port }: LoadContext) =>
    repeat(() => timeToExit(kind === 'lab-server' ? ['node', LAB_CLIENT_CLI, 'daytime', '127.0.0.1', String(port)] : ['node', '-e', '0'])),
};

export const serverStartup: Scenario = {
  name: 'startup-server',
  summary: `echo, a fresh server from spawn to its "listening" line, against a bare node:net server: median of ${STARTS}`,
  protocol: 'echo',
  metric: { name: 'time to listening', unit: 'ms' },
  runs: { full: 3, quick: 1 },
  timed: false,
  load: ({ kind }: LoadContext) => repeat(() => timeToListening(serverCommand({ kind, protocol: 'echo' }))),
};
