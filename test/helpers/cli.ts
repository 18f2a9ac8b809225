/** Running the real command-line programs, as a user would, and reading their JSON logs. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { LogLine } from './capture-log.js';

// The compiled tests live in dist/test/helpers; the compiled programs in dist/src/cli.
export const LAB_SERVER = fileURLToPath(new URL('../../src/cli/lab-server.js', import.meta.url));
export const LAB_CLIENT = fileURLToPath(new URL('../../src/cli/lab-client.js', import.meta.url));

/**
 * The programs start() and startServerProcess() left running. A test that fails (or times out)
 * before it stops its program must not leave it behind: a live child keeps this file's process
 * alive, and node --test would wait for it forever. Once the file's tests are done, the rest are killed.
 */
const running = new Set<ChildProcess>();
after(() => {
  for (const child of running) child.kill('SIGKILL');
});

function track(child: ChildProcess): void {
  running.add(child);
  child.once('exit', () => running.delete(child));
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
}

/** A folder of its own for a test's files, removed afterwards. */
export function scratchFolder(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'lab-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A user mistake: its exit status, and one stderr line that matches, with no stack trace. */
export function assertOneLineError(result: Finished, exitCode: number, message: RegExp): void {
  assert.equal(result.code, exitCode, `exit status (stderr: ${result.stderr})`);
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${result.stderr}`);
  assert.match(lines[0]!, message);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
}

export interface RunOptions {
  input?: Buffer | string;
  cwd?: string;
  /** Run through another program first, e.g. ['setpriv', ...] to drop a privilege. */
  prefix?: string[];
}

/** Runs a program to completion and collects its output. */
export async function run(script: string, args: string[], { input, cwd, prefix = [] }: RunOptions = {}): Promise<Finished> {
  const [command, ...rest] = [...prefix, process.execPath, script, ...args];
  const child = spawn(command!, rest, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  return finish(child, input);
}

async function finish(child: ChildProcess, input?: Buffer | string): Promise<Finished> {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout!.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk));
  child.stdin?.on('error', () => {}); // the program may exit before reading its input
  child.stdin?.end(input);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  const stdoutBytes = Buffer.concat(stdout);
  return { code, signal, stdout: stdoutBytes.toString(), stdoutBytes, stderr: Buffer.concat(stderr).toString() };
}

/** How long to wait for a log line before failing: ample for loopback on a loaded machine. */
const EVENT_DEADLINE_MS = 10_000;
/** How long to wait for a line from a program started with start(). */
const LINE_DEADLINE_MS = 20_000;
/** How long a server may take to exit after a signal (its shutdown deadline, plus slack) before it is killed. */
const STOP_DEADLINE_MS = 15_000;

export interface StartedProcess {
  child: ChildProcess;
  /** The first stdout line (written now or later) that matches; rejects if the process exits first, or after `deadlineMs`. */
  stdoutLine(pattern: RegExp, deadlineMs?: number): Promise<string>;
  /** The same on stderr. */
  stderrLine(pattern: RegExp, deadlineMs?: number): Promise<string>;
  /** Resolves once the process has exited, with everything it wrote. */
  finished: Promise<Finished>;
}

/**
 * Starts a program and leaves its stdin open, for tests that act while it runs: write to
 * `child.stdin`, wait for what it says, then see how it ends. `prefix` runs it through another
 * program first, e.g. ['systemd-socket-activate', '-l', '127.0.0.1:7000'].
 */
export function start(script: string, args: string[], { prefix = [] }: Pick<RunOptions, 'prefix'> = {}): StartedProcess {
  const [command, ...rest] = [...prefix, process.execPath, script, ...args];
  const child = spawn(command!, rest, { stdio: ['pipe', 'pipe', 'pipe'] });
  track(child);
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout!.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk));
  child.stdin!.on('error', () => {}); // the program may exit before reading its input
  const closed = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  const finished = closed.then(([code, signal]) => {
    const stdoutBytes = Buffer.concat(stdout);
    return { code, signal, stdout: stdoutBytes.toString(), stdoutBytes, stderr: Buffer.concat(stderr).toString() };
  });
  const lineOn =
    (stream: NodeJS.ReadableStream, chunks: Buffer[], name: string) =>
    (pattern: RegExp, deadlineMs = LINE_DEADLINE_MS): Promise<string> =>
      new Promise((resolve, reject) => {
        const look = (): boolean => {
          const line = Buffer.concat(chunks).toString().split('\n').find((l) => pattern.test(l));
          if (line !== undefined) resolve(line);
          return line !== undefined;
        };
        if (look()) return;
        const timer = setTimeout(() => stop(`no ${name} line matching ${pattern} within ${deadlineMs / 1000} s`), deadlineMs);
        const stop = (why: string): void => {
          clearTimeout(timer);
          stream.off('data', onData);
          if (!look()) reject(new Error(`${why}: ${Buffer.concat(chunks).toString()}`));
        };
        const onData = (): void => void (look() && stop('found'));
        stream.on('data', onData);
        void closed.then(() => stop(`exited without a ${name} line matching ${pattern}`));
      });
  return { child, stdoutLine: lineOn(child.stdout!, stdout, 'stdout'), stderrLine: lineOn(child.stderr!, stderr, 'stderr'), finished };
}

/** The JSON objects among `text`'s lines (a log, possibly mixed with another program's lines). */
export function jsonLines(text: string): LogLine[] {
  return text.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as LogLine);
}

export interface RunningServer {
  child: ChildProcess;
  port: number;
  /** Every JSON log line so far. */
  lines: LogLine[];
  /** Resolves with the first log line (from now or earlier) with this event; fails after `deadlineMs`. */
  event(name: string, deadlineMs?: number): Promise<LogLine>;
  /** Sends a signal and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<Finished>;
}

/**
 * Starts `lab-server <args> --port 0 --log-format json` and waits for its "listening" line.
 * `prefix` runs it through another program first, e.g. bash to set a `ulimit`; that program must
 * exec node, so that `child.pid` is the server's own process id.
 */
export async function startServerProcess(args: string[], { prefix = [] }: Pick<RunOptions, 'prefix'> = {}): Promise<RunningServer> {
  const [command, ...rest] = [...prefix, process.execPath, LAB_SERVER, ...args, '--port', '0', '--log-format', 'json'];
  const child = spawn(command!, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: LogLine[] = [];
  const waiters: { name: string; resolve: (line: LogLine) => void }[] = [];
  const stderr: Buffer[] = [];
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk));
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const line = JSON.parse(text) as LogLine;
    lines.push(line);
    for (const waiter of waiters.filter((w) => w.name === line.event)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(line);
    }
  });
  const closed = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  const event = (name: string, deadlineMs = EVENT_DEADLINE_MS): Promise<LogLine> => {
    const seen = lines.find((line) => line.event === name);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(new Error(`lab-server logged no ${name} line within ${deadlineMs / 1000} s; last lines: ${lines.slice(-5).map((l) => l.event).join(', ')}`));
      }, deadlineMs);
      const waiter = { name, resolve: (line: LogLine) => (clearTimeout(timer), resolve(line)) };
      waiters.push(waiter);
    });
  };
  track(child);
  const listening = await Promise.race([
    event('listening'),
    closed.then(() => {
      throw new Error(`lab-server exited before listening: ${Buffer.concat(stderr).toString()}`);
    }),
  ]);
  return {
    child,
    port: Number(listening.port),
    lines,
    event,
    async stop(signal = 'SIGINT') {
      child.kill(signal);
      const kill = setTimeout(() => child.kill('SIGKILL'), STOP_DEADLINE_MS);
      const [code, exitSignal] = await closed;
      clearTimeout(kill);
      if (exitSignal === 'SIGKILL' && signal !== 'SIGKILL') throw new Error(`lab-server did not exit within ${STOP_DEADLINE_MS / 1000} s of ${signal}; killed`);
      const stdout = lines.map((l) => JSON.stringify(l)).join('\n');
      return { code, signal: exitSignal, stdout, stdoutBytes: Buffer.from(stdout), stderr: Buffer.concat(stderr).toString() };
    },
  };
}
