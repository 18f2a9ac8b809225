/**
 * Starting the servers and the load generator as separate processes, each pinned to its own
 * CPU with taskset(1) so they never compete for one core: the server on CPU 0, the load on CPU 1.
 * Both start through `bash -c 'ulimit -n ...; exec node ...'` to raise the soft limit on open
 * descriptors (the idle scenario holds 10,000 sockets); `exec` makes node take over bash's
 * process id, so the id we hold is the server's own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { LoadContext, Measurement, ProtocolName, ServerKind } from './scenario.js';
import { sleep } from './stats.js';

export const TASKSET = '/usr/bin/taskset';
export const SERVER_CPU = 0;
export const LOAD_CPU = 1;
/** Descriptors wanted per process; the hard limit caps it (the shell falls back to that). */
const OPEN_FILES = 65536;
const STARTUP_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;

const fromHere = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
/** Compiled paths, relative to dist/bench/. */
export const LAB_SERVER_CLI = fromHere('../src/cli/lab-server.js');
const BASELINE_CLI = fromHere('./baseline-servers.js');
const LOAD_CLI = fromHere('./load-process.js');

export const canPin = (): boolean => existsSync(TASKSET);

/** The command line: pinned when taskset exists, always with the descriptor limit raised. */
function command(cpu: number, argv: readonly string[]): [string, string[]] {
  const script = `ulimit -n ${OPEN_FILES} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  const shell = ['bash', '-c', script, 'bash', ...argv];
  return canPin() ? [TASKSET, ['-c', String(cpu), ...shell]] : [shell[0]!, shell.slice(1)];
}

export interface RunningServer {
  kind: ServerKind;
  pid: number;
  port: number;
  logFile: string;
  /** SIGTERM (a graceful shutdown for lab-server), then SIGKILL if it is still there after a while. */
  stop(): Promise<void>;
}

export interface ServerStartOptions {
  kind: ServerKind;
  protocol: ProtocolName;
  /** Extra lab-server flags (its limits); the baseline takes none. */
  labServerFlags?: readonly string[];
  /** Where the server's stdout (lab-server's JSON log) goes. */
  logFile: string;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeFlags?: readonly string[];
  /** Added to the server's environment. */
  env?: Readonly<Record<string, string>>;
}

/**
 * The server's command line. lab-server with its default flags, as a user runs it, except two the
 * rules of this lab require: loopback only (--host 127.0.0.1) and a free port chosen by the kernel
 * (--port 0); plus, for scenarios with many clients, raised connection limits (Scenario#labServerFlags).
 */
export function serverCommand({ kind, protocol, labServerFlags = [], nodeFlags = [] }: Pick<ServerStartOptions, 'kind' | 'protocol' | 'labServerFlags' | 'nodeFlags'>): string[] {
  return kind === 'lab-server'
    ? ['node', ...nodeFlags, LAB_SERVER_CLI, protocol, '--host', '127.0.0.1', '--port', '0', ...labServerFlags]
    : ['node', ...nodeFlags, BASELINE_CLI, protocol, '0'];
}

export async function startServer({ kind, protocol, labServerFlags = [], logFile, nodeFlags = [], env = {} }: ServerStartOptions): Promise<RunningServer> {
  const argv = serverCommand({ kind, protocol, labServerFlags, nodeFlags });
  const out = openSync(logFile, 'w');
  const [file, args] = command(SERVER_CPU, argv);
  const child = spawn(file, args, { stdio: ['ignore', out, 'pipe'], env: { ...process.env, ...env } });
  closeSync(out);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = once(child, 'exit');
  exited.catch(() => {}); // a spawn failure shows up in waitForListening instead
  const port = await waitForListening(child, logFile, () => stderr);
  return {
    kind,
    pid: child.pid!,
    port,
    logFile,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** Polls the log file for the first line, which says `"event":"listening"` and the port. */
async function waitForListening(child: ChildProcess, logFile: string, stderr: () => string): Promise<number> {
  const deadline = performance.now() + STARTUP_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with status ${child.exitCode}: ${stderr()}`);
    const firstLine = readFileSync(logFile, 'utf8').split('\n', 1)[0] ?? '';
    if (firstLine.endsWith('}')) {
      const line = JSON.parse(firstLine) as { event?: string; port?: number };
      if (line.event === 'listening' && typeof line.port === 'number') return line.port;
    }
    await sleep(20);
  }
  child.kill('SIGKILL');
  throw new Error(`server did not log "listening" within ${STARTUP_TIMEOUT_MS} ms: ${stderr()}`);
}

/** Runs one scenario's load in a fresh, pinned process and returns what it measured. */
export async function runLoad(scenario: string, ctx: LoadContext, timeLimitMs: number): Promise<Measurement> {
  const [file, args] = command(LOAD_CPU, ['node', LOAD_CLI, scenario, JSON.stringify(ctx)]);
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  // The load process bounds itself; this is the backstop should it hang.
  const killer = setTimeout(() => child.kill('SIGKILL'), timeLimitMs);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  clearTimeout(killer);
  if (code !== 0) {
    // The line that names the error, not the stack around it.
    const reason = stderr.split('\n').find((line) => /^\w*Error\b/.test(line)) ?? (stderr.trim() || stdout.trim());
    throw new Error(`load ${scenario} failed (${signal ?? `status ${code}`}): ${reason}`);
  }
  const lastLine = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(lastLine) as Measurement;
}
