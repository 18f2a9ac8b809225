/**
 * A log reader that stops reading (`lab-server echo | less`, a stuck `tee`, Ctrl-S): the pipe
 * fills, and the server must go on serving, answer SIGTERM, and say afterwards how many lines it
 * dropped. Before the log was written without waiting, a connect storm froze the whole server
 * once 64 KiB of log were waiting in the pipe.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { forEachLimited } from '../helpers/echo-cases.js';
import { LAB_SERVER, jsonLines } from '../helpers/cli.js';
import { ms, report } from './helpers/figures.js';
import { attempt, formatTally, loopbackSource, tally, type AttemptOutcome } from './helpers/load.js';
import { pollFor } from './helpers/server-process.js';

/** Each logged connection writes ~5 lines (~1.2 KB): 2,000 of them are far more than a pipe and the queue hold. */
const STORM_CONNECTIONS = 2000;
const STORM_AT_ONCE = 50;
/** The server's flush deadline at exit is 2 s; allowed this much more on a loaded machine. */
const EXIT_DEADLINE_MS = 2000 + 4000;

interface LoggingServer {
  child: ChildProcess;
  port: number;
  /** Every complete line read from its stdout so far. */
  output(): string;
}

/** `lab-server echo` logging every connection (--connection-logs 0) as JSON into a pipe we read, until we stop. */
async function startServer(): Promise<LoggingServer> {
  const child = spawn(process.execPath, [LAB_SERVER, 'echo', '--host', '127.0.0.1', '--port', '0', '--log-format', 'json', '--connection-logs', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
  /** The complete lines so far: a line the pipe has delivered only part of is left for later. */
  const output = (): string => {
    const text = Buffer.concat(chunks).toString();
    return text.slice(0, text.lastIndexOf('\n') + 1);
  };
  const listening = await pollFor(() => jsonLines(output()).find((line) => line.event === 'listening'), 20_000);
  assert.ok(listening, `the server said where it listens: ${output()}`);
  return { child, port: Number(listening.port), output };
}

/** `count` clients, each sending a line and closing: every one is accepted, logged and closed. */
async function connectStorm(port: number, count: number): Promise<Record<string, number>> {
  const outcomes: AttemptOutcome[] = [];
  await forEachLimited(Array.from({ length: count }, (_, i) => i), STORM_AT_ONCE, async (i) => {
    const made = await attempt(port, loopbackSource(30, i % 200), 10_000);
    made.socket.destroy();
    outcomes.push(made.outcome);
  });
  return tally(outcomes);
}

test('a log reader that stops reading: the server serves on, drops and counts lines, and exits 0 on SIGTERM', { timeout: 240_000 }, async (t) => {
  const server = await startServer();
  t.after(() => server.child.exitCode === null && server.child.kill('SIGKILL'));
  // The reader stops: once our stream's buffer is full, nobody drains the pipe.
  server.child.stdout!.pause();

  const stormStarted = performance.now();
  const storm = await connectStorm(server.port, STORM_CONNECTIONS);
  const stormMs = performance.now() - stormStarted;
  const probe = await attempt(server.port, loopbackSource(31, 0), 10_000);
  probe.socket.destroy();

  // The reader is back: the server says what it could not write.
  server.child.stdout!.resume();
  const dropped = await pollFor(() => jsonLines(server.output()).find((line) => line.event === 'log-dropped'), 20_000);

  const exited = once(server.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  server.child.kill('SIGTERM');
  const [code, signal] = await exited;
  const summary = jsonLines(server.output()).find((line) => line.event === 'summary');

  report(t, 'stalled-log-reader', [
    ['connect storm while the reader was stopped', `${STORM_CONNECTIONS} clients (${formatTally(storm)}) in ${ms(stormMs)}`],
    ['a client after the storm', probe.outcome],
    ['lines dropped, reported when the reader came back', String(dropped?.dropped)],
    ['summary: log lines dropped', String(summary?.logLinesDropped)],
  ]);
  assert.deepEqual(storm, { served: STORM_CONNECTIONS }, 'every client of the storm was served');
  assert.equal(probe.outcome, 'served');
  assert.ok(dropped !== undefined && Number(dropped.dropped) > 0, 'a log-dropped line says how many lines were lost');
  assert.equal(code, 0, `exit status 0 (signal ${signal})`);
  assert.ok(Number(summary?.logLinesDropped) >= Number(dropped!.dropped), 'the summary counts the dropped lines');
});

test('a log reader stuck for good: SIGTERM still exits 0, within the flush deadline', { timeout: 240_000 }, async (t) => {
  const server = await startServer();
  t.after(() => server.child.exitCode === null && server.child.kill('SIGKILL'));
  server.child.stdout!.pause();
  await connectStorm(server.port, STORM_CONNECTIONS / 4);
  // Until the pipe is full: the server is now writing into a pipe nobody reads.
  const exited = once(server.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const signalled = performance.now();
  server.child.kill('SIGTERM');
  const [code, signal] = await exited;
  const exitMs = performance.now() - signalled;
  report(t, 'stalled-log-reader', [['exit status / time after SIGTERM, the reader still stopped', `${code ?? signal} / ${ms(exitMs)}`]]);
  assert.equal(code, 0, `exit status 0 (signal ${signal})`);
  assert.ok(exitMs < EXIT_DEADLINE_MS, `exited ${ms(exitMs)} after SIGTERM`);
});
