/**
 * python3 for the lab steps Node cannot take. Node sets SO_REUSEADDR on every TCP listener
 * (libuv's uv__tcp_bind), and its sockets read for us: a lab that needs a plain bind(2), or
 * a plain read(2) whose every return value it sees, runs a few lines of python3 instead, whose
 * socket module is a thin layer over the system calls. Each script prints one line of JSON.
 *
 * When python3 is not installed, the step says so and is skipped: it is reported, never passed.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { LabError } from '../errors.js';
import { LAB_HOST, type LabContext } from './context.js';

export const PYTHON = 'python3';

/** What a script printed, or why it could not run at all. */
export type PythonResult<T> = { ran: true; value: T } | { ran: false; why: string };

/** The last line a failed script wrote to stderr: Python's one-line summary of the exception. */
const lastLine = (text: string): string => text.trim().split('\n').at(-1) ?? '';

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

/** A python3 process that keeps running while the lab looks at the kernel. */
export interface PythonProcess<T> {
  /** The JSON line the script printed once it was ready. */
  ready: T;
  /** Closes its stdin: the script's last line, `sys.stdin.read()`, returns and it exits. */
  stop(): void;
}

/**
 * Starts `script` and resolves with the first line of JSON it prints. The script must end by
 * waiting on stdin (`sys.stdin.read()`), so that it holds its sockets until `stop()`; it is
 * killed, by its own PID, if the lab ends first.
 */
export async function startPython<T>(ctx: LabContext, script: string, args: readonly string[] = []): Promise<PythonResult<PythonProcess<T>>> {
  const child = spawn(PYTHON, ['-c', script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  ctx.defer(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const firstLine = new Promise<string>((resolve, reject) => {
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
      const end = stdout.indexOf('\n');
      if (end >= 0) resolve(stdout.slice(0, end));
    });
    child.once('error', reject);
    child.once('exit', () => {
      // A program that never started (no pid) is reported by the 'error' event instead.
      if (child.pid !== undefined) reject(new LabError('ERR_LAB_SCRIPT', `the lab's ${PYTHON} script exited early: ${lastLine(stderr)}`));
    });
  });
  try {
    const line = await ctx.within(firstLine, `${PYTHON} to start`);
    return { ran: true, value: { ready: JSON.parse(line) as T, stop: () => child.stdin.end() } };
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
  const server = net.createServer();
  ctx.defer(() => new Promise((resolve) => server.close(resolve)));
  server.listen({ host: LAB_HOST, port: 0 });
  await ctx.until(server, 'listening', 'the server to listen');
  const { port } = server.address() as net.AddressInfo;
  ctx.watchPort(port);
  const accepted = ctx.until<[net.Socket]>(server, 'connection', 'the client to connect');
  accepted.catch(() => undefined); // when python3 is missing, nobody connects and nobody awaits this
  const client = runPythonJson<T>(ctx, script, [LAB_HOST, String(port), ...args]);
  const first = await Promise.race([accepted.then(([socket]) => ({ socket })), client.then((result) => ({ result }))]);
  if ('result' in first) {
    if (!first.result.ran) {
      reportSkipped(ctx, skip.id, skip.subject, first.result.why);
      return undefined;
    }
    throw new LabError('ERR_LAB_SCRIPT', 'the client finished before the server accepted it');
  }
  ctx.defer(() => first.socket.destroy());
  return { socket: first.socket, client };
}

/** Records a step that could not run, with the reason. A report, so it neither passes nor fails. */
export function reportSkipped(ctx: LabContext, id: string, subject: string, why: string): void {
  ctx.report(id, subject, `skipped (${why}); Node cannot take this step, so it needs ${PYTHON}`);
}
