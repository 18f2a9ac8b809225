/**
 * python3 for the lab steps Node cannot take. Node sets SO_REUSEADDR on every TCP listener
 * (libuv's uv__tcp_bind), and its sockets read for us: a lab that needs a plain bind(2), or
 * a plain read(2) whose every return value it sees, runs a few lines of python3 instead, whose
 * socket module is a thin layer over the system calls. Each script prints its results as a line
 * of JSON.
 *
 * When python3 is not installed, the step says so and is skipped: it is reported, never passed.
 */
import type net from 'node:net';
import { LabError } from '../errors.js';
import { LAB_HOST, lastLine, type LabContext, type RunningProcess } from './context.js';
import { listenPlain, nextConnection } from './sockets.js';

export const PYTHON = 'python3';

/** What a script printed, or why it could not run at all. */
export type PythonResult<T> = { ran: true; value: T } | { ran: false; why: string };

/**
 * Runs `script` to its end (ctx.runProcess: killed after its deadline) and parses its stdout
 * as JSON. A missing python3 is `{ ran: false }`; a script that fails is a bug in the lab, and
 * fails the lab loudly.
 */
export async function runPythonJson<T>(ctx: LabContext, script: string, args: readonly string[] = []): Promise<PythonResult<T>> {
  const outcome = await ctx.runProcess(PYTHON, ['-c', script, ...args]);
  if (outcome.startError === 'ENOENT') return { ran: false, why: `${PYTHON} is not installed` };
  if (outcome.startError !== undefined || outcome.code !== 0) {
    throw new LabError('ERR_LAB_SCRIPT', `the lab's ${PYTHON} script failed: ${outcome.startError ?? lastLine(outcome.stderr)}`);
  }
  return { ran: true, value: JSON.parse(outcome.stdout) as T };
}

/**
 * Starts `script` (ctx.startProcess) and resolves once it has printed its first line of JSON. The
 * script must then wait on stdin (`sys.stdin.read()`), so that it holds its sockets until the lab
 * calls `endInput()`; it may go on and print more lines, which `next()` reads.
 */
export async function startPython<T>(ctx: LabContext, script: string, args: readonly string[] = []): Promise<PythonResult<RunningProcess<T>>> {
  try {
    return { ran: true, value: await ctx.startProcess<T>(PYTHON, ['-c', script, ...args], `the lab's ${PYTHON} script`) };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ran: false, why: `${PYTHON} is not installed` };
    throw error;
  }
}

/** A plain node:net server's side of the connection a python3 client made, and the client's outcome. */
export interface PythonPeer<T> {
  /** The server's socket: what it sees (data, an end of file, a reset) is what the lab checks. */
  socket: net.Socket;
  /** The client script's JSON, once it has finished. */
  client: Promise<PythonResult<T>>;
}

/**
 * A plain node:net server on loopback (no protocol, no framework: the lab drives the socket by
 * hand), and `script` run as its client with `[host, port, ...args]`. Resolves once the server
 * has accepted the client, or with undefined after reporting the step skipped when python3 is
 * missing (`skip` names it).
 */
export async function servePythonClient<T>(ctx: LabContext, script: string, args: readonly string[], skip: { id: string; subject: string }): Promise<PythonPeer<T> | undefined> {
  const { server, port } = await listenPlain(ctx);
  const accepted = nextConnection(ctx, server);
  accepted.catch(() => undefined); // when python3 is missing, nobody connects and nobody awaits this
  const client = runPythonJson<T>(ctx, script, [LAB_HOST, String(port), ...args]);
  const first = await Promise.race([accepted.then((socket) => ({ socket })), client.then((result) => ({ result }))]);
  if ('result' in first) {
    if (!first.result.ran) {
      reportSkipped(ctx, skip.id, skip.subject, first.result.why);
      return undefined;
    }
    throw new LabError('ERR_LAB_SCRIPT', 'the client finished before the server accepted it');
  }
  return { socket: first.socket, client };
}

/** Records a step that could not run, with the reason. A report, so it neither passes nor fails. */
export function reportSkipped(ctx: LabContext, id: string, subject: string, why: string): void {
  ctx.report(id, subject, `skipped (${why}); Node cannot take this step, so it needs ${PYTHON}`);
}
