/**
 * What a lab works with: a narrator (numbered steps, indented notes), predictions checked
 * against the kernel, servers on 127.0.0.1 port 0, child processes, and a cleanup list so that
 * whatever a lab starts is stopped even when a step fails. What it says and sees goes out as
 * records (records.ts), for the narration, --json and the class modes alike.
 */
import { execFile, spawn } from 'node:child_process';
import { once, type EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { formatSocketPair, type Endpoint } from '../framework/endpoint.js';
import { LabError } from '../errors.js';
import { escapeMessage } from '../framework/escape.js';
import { EventRecorder } from '../framework/event-recorder.js';
import type { EventOf, EventStream, EventType } from '../framework/events.js';
import { createServer, type LabServer, type ServerOptions } from '../framework/server.js';
import type { TcpSocketEntry } from '../tcp-states/parse.js';
import { readTcpSockets } from '../tcp-states/read.js';
import { stateOf, waitForTcpSocket, waitForTcpState, type ObservedState, type WaitForStateOptions } from '../tcp-states/wait.js';
import type { Observation } from './lab.js';
import { choicesFor } from './quiz.js';
import type { RecordSink } from './records.js';
import type { LabPackets } from './packets.js';
import type { Connection } from '../capture/connection-tracker.js';

/** Every lab server binds here: loopback only, so a lab never opens a port to the network. */
export const LAB_HOST = '127.0.0.1';
/** How long a lab waits for an event (a connection, a reply, a close) before giving up. */
export const EVENT_DEADLINE_MS = 5000;
/** How long a child process may run before it is killed. */
const PROCESS_DEADLINE_MS = 10_000;

export type LabServerOptions = ServerOptions & { port?: number };

/** A server a lab started, with a record of its events. */
export interface StartedServer {
  server: LabServer;
  port: number;
  events: EventRecorder;
  /** Stops it now, closing its open connections at once, like a killed server. */
  stop: () => Promise<void>;
}

export interface ProcessOutcome {
  /** The exit status, or null when a signal ended it (or it never started). */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the program could not be started at all, e.g. ENOENT. */
  startError?: string;
}

/** A program a lab started that keeps running while the lab looks at the kernel (ctx.startProcess). */
export interface RunningProcess<T> {
  /** The first line of JSON it printed, which says it is ready: a server's `listening` line, a script's connected socket. */
  ready: T;
  pid: number;
  /** The next line of JSON it prints; fails the lab if it exits first, or after the deadline (EVENT_DEADLINE_MS). */
  next<U>(what: string, deadlineMs?: number): Promise<U>;
  /** Closes its stdin: a script waiting for the end of its input (`sys.stdin.read()`) goes on. */
  endInput(): void;
  /** Writes one line to its stdin: a command, for a program that reads them (netns-peer.ts). */
  send(line: string): void;
  /** Sends `signal` to it, by its PID, and resolves once it has ended: with the signal's name, or `exit N`. */
  kill(signal: NodeJS.Signals): Promise<string>;
}

export interface StateExpectation {
  id: string;
  /** Which end of the connection this socket is. */
  end: 'server' | 'client';
  local: Endpoint;
  remote: Endpoint;
  /** The textbook's state, or 'none' when it says the kernel keeps nothing. */
  predicted: ObservedState;
  /** Whose table to read: `/proc/PID` for a socket in another network namespace (namespaces.ts). Default `/proc`. */
  procRoot?: string;
}

/** For a fact a quiz may ask about: the answers to choose from, the prediction among them (quiz.ts has the default lists). */
export interface FactOptions {
  choices?: readonly string[];
}

/** The socket pair as each end sees it: each end's local is the other's remote. */
export interface ConnectionEnds {
  client: { local: Endpoint; remote: Endpoint };
  server: { local: Endpoint; remote: Endpoint };
}

export function bothEnds(client: Endpoint, server: Endpoint): ConnectionEnds {
  return { client: { local: client, remote: server }, server: { local: server, remote: client } };
}

/** Reads another network namespace's table, through a process of it (`/proc/PID/net/tcp`), when `procRoot` says so. */
const readerOf = (local: Endpoint, remote: Endpoint, procRoot: string | undefined): WaitForStateOptions =>
  procRoot === undefined ? {} : { read: () => readTcpSockets({ procRoot, port: local.port, peerPorts: [remote.port] }) };

/** The last line a program wrote to stderr: for a failed python3 script, its one-line summary of the exception. */
export const lastLine = (text: string): string => text.trim().split('\n').at(-1) ?? '';

/**
 * Who holds a kernel socket, from the last column of /proc/net/tcp, its inode: 0 once no
 * descriptor refers to it (its program closed it, or exited), an orphan that the kernel
 * finishes alone.
 */
export const describeHolder = (entry: TcpSocketEntry | undefined): string =>
  entry === undefined ? 'no socket' : entry.inode === 0 ? 'no descriptor (orphan)' : 'an open descriptor';

export class LabContext {
  readonly observations: Observation[] = [];
  private stepNumber = 0;
  private readonly cleanups: Array<() => unknown> = [];

  constructor(
    /** Where the lab's steps, notes and observations go, as records. */
    private readonly emit: RecordSink,
    /** The lab's packet capture, when the ladder is wanted (see packets.ts). */
    private readonly packets?: LabPackets,
    /** Told of each server's event stream as it starts: observers such as --dashboard follow them. */
    private readonly onServer?: (events: EventStream) => void,
  ) {}

  /** Starts the next numbered step. */
  step(text: string): void {
    this.stepNumber += 1;
    this.emit({ type: 'step', step: this.stepNumber, text: escapeMessage(text) });
  }

  /** A note under the current step; it may quote what a client or a helper program printed, hence escaped. */
  say(text: string): void {
    this.emit({ type: 'note', step: this.stepNumber, text: escapeMessage(text) });
  }

  /** Runs `cleanup` when the lab ends, pass or fail; the last registered runs first. */
  defer(cleanup: () => unknown): void {
    this.cleanups.push(cleanup);
  }

  /** Runs every cleanup, even when one fails: no server or process may outlive the lab. */
  async cleanup(): Promise<void> {
    const cleanups = this.cleanups.splice(0).reverse();
    const failures: unknown[] = [];
    for (const cleanup of cleanups) await Promise.resolve().then(cleanup).catch((error: unknown) => failures.push(error));
    if (failures.length > 0) throw failures[0];
  }

  /**
   * A LabServer on 127.0.0.1, port 0 unless given, stopped at the end of the lab; `stop()`
   * stops it sooner (closing its open connections at once, like a killed server). Its events
   * are recorded from the start, for `ctx.event()`.
   */
  async startServer({ port = 0, ...options }: LabServerOptions): Promise<StartedServer> {
    const server = createServer(options);
    const events = new EventRecorder(server.events.stream);
    this.onServer?.(server.events.stream);
    this.defer(() => events.stop());
    await server.listen({ host: LAB_HOST, port });
    this.packets?.watch(server.address().port, events);
    let stopped = false;
    const stop = async (): Promise<void> => {
      if (stopped) return;
      stopped = true;
      await server.close(0);
    };
    this.defer(stop);
    return { server, port: server.address().port, events, stop };
  }

  /** A port a lab opened itself (a python3 listener): its connections are the lab's, to capture. */
  watchPort(port: number): void {
    this.packets?.watch(port);
  }

  /**
   * The connection between these ends as the capture saw it, once it has ended; undefined when
   * nothing is captured (no ladder wanted, or no tcpdump or rights: `packetsUnavailable` says which).
   */
  async packetsOf(ends: ConnectionEnds): Promise<Connection | undefined> {
    return this.packets?.connection(ends.client.local, ends.server.local);
  }

  /** Whether the lab's packets are being captured (a ladder was asked for, and tcpdump could run). */
  get capturing(): boolean {
    return this.packets?.captured ?? false;
  }

  /** Why the lab's packets are not captured, or undefined when they are (or when no ladder was asked for). */
  get packetsUnavailable(): string | undefined {
    return this.packets?.unavailable;
  }

  /** The server's first event of `type` (or types; seen already or still to come) for which `where` holds; fails the lab after EVENT_DEADLINE_MS. */
  event<T extends EventType>(events: EventRecorder, type: T | readonly T[], what: string, where?: (event: EventOf<T>) => boolean): Promise<EventOf<T>> {
    return events.waitFor(type, where, EVENT_DEADLINE_MS).catch(() => {
      throw this.stuck(what, EVENT_DEADLINE_MS);
    });
  }

  /**
   * Asks the kernel for one end's state, polling until it matches the prediction or
   * STATE_DEADLINE_MS passes, and records the outcome.
   */
  async expectState({ id, end, local, remote, predicted, procRoot }: StateExpectation): Promise<Observation> {
    const { entry } = await waitForTcpState(local, remote, predicted, readerOf(local, remote, procRoot));
    const observed = stateOf(entry);
    this.packets?.recordReading({ timeUs: Math.round((performance.timeOrigin + performance.now()) * 1000), end, local, remote, state: observed });
    const remainingMs = entry?.timer.kind === 'time-wait' ? entry.timer.remainingMs : undefined;
    return this.record(
      { id, step: this.stepNumber, subject: `${end} ${formatSocketPair(local, remote)}`, kind: 'tcp-state', predicted, observed, agreed: observed === predicted, ...(remainingMs === undefined ? {} : { remainingMs }) },
      'kernel',
    );
  }

  /**
   * Like expectState, for another column of the kernel's row: `describe` turns the row (or its
   * absence) into the text compared with `predicted`, e.g. `Recv-Q 2`.
   */
  async expectKernel(id: string, subject: string, local: Endpoint, remote: Endpoint, predicted: string, describe: (entry: TcpSocketEntry | undefined) => string, options: FactOptions & { procRoot?: string } = {}): Promise<Observation> {
    const { entry } = await waitForTcpSocket(local, remote, (row) => describe(row) === predicted, readerOf(local, remote, options.procRoot));
    const observed = describe(entry);
    return this.record({ id, step: this.stepNumber, subject, kind: 'fact', predicted, observed, agreed: observed === predicted }, 'kernel', options.choices);
  }

  /** Records a prediction about anything else the lab can see (a bind result, an error code). */
  expectFact(id: string, subject: string, predicted: string, observed: string, options: FactOptions = {}): Observation {
    return this.record({ id, step: this.stepNumber, subject, kind: 'fact', predicted, observed, agreed: predicted === observed }, 'observed', options.choices);
  }

  /** Records what this system did where the textbooks say systems differ. Never a failure. */
  report(id: string, subject: string, observed: string): Observation {
    return this.record({ id, step: this.stepNumber, subject, kind: 'report', observed, agreed: true }, 'observed');
  }

  /** Resolves with the event's arguments, or fails the lab after EVENT_DEADLINE_MS. */
  async until<T extends unknown[] = unknown[]>(emitter: EventEmitter, event: string, what: string, deadlineMs = EVENT_DEADLINE_MS): Promise<T> {
    return this.within(once(emitter, event, { signal: AbortSignal.timeout(deadlineMs) }) as Promise<T>, what, deadlineMs);
  }

  /** Resolves with `promise`, or fails the lab if it takes longer than `deadlineMs`. */
  async within<T>(promise: Promise<T>, what: string, deadlineMs = EVENT_DEADLINE_MS): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.stuck(what, deadlineMs)), deadlineMs);
    });
    try {
      return await Promise.race([promise, deadline]);
    } catch (error) {
      throw (error as Error).name === 'AbortError' ? this.stuck(what, deadlineMs) : error;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Runs a program to its end (killed, by its own PID, after PROCESS_DEADLINE_MS) and returns
   * what it printed and its exit status. A program that cannot start is an outcome too.
   */
  runProcess(file: string, args: readonly string[]): Promise<ProcessOutcome> {
    return new Promise((resolve) => {
      const child = execFile(file, args, { timeout: PROCESS_DEADLINE_MS, encoding: 'utf8' }, (error, stdout, stderr) => {
        const startError = error !== null && typeof error.code === 'string' ? error.code : undefined;
        resolve({ code: child.exitCode, stdout, stderr, ...(startError === undefined ? {} : { startError }) });
      });
      // If the lab fails mid-step, the child must not outlive it.
      this.defer(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill();
      });
    });
  }

  /**
   * Starts a program that keeps running (a server, a script holding its sockets) and resolves once
   * it has printed its first line of JSON. It is killed, by its own PID, when the lab ends. A
   * program that cannot start rejects with the spawn error (ENOENT: not installed).
   */
  async startProcess<T>(file: string, args: readonly string[], name = file): Promise<RunningProcess<T>> {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.defer(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill();
    });
    let startError: Error | undefined;
    child.once('error', (error) => (startError = error));
    // 'close' comes after the output has ended, also when the program never started.
    const closed = new Promise<string>((resolve) => child.once('close', (code, signal) => resolve(signal ?? `exit ${code}`)));
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.stdin.on('error', () => {}); // it may exit before reading its input
    const lines = createInterface({ input: child.stdout, crlfDelay: Infinity })[Symbol.asyncIterator]();
    const next = async <U>(what: string, deadlineMs = EVENT_DEADLINE_MS): Promise<U> => {
      const line = await this.within(lines.next(), what, deadlineMs);
      if (!line.done) return JSON.parse(line.value as string) as U;
      await this.within(closed, `${name} to exit`);
      if (startError !== undefined) throw startError;
      throw new LabError('ERR_LAB_SCRIPT', `${name} exited before ${what}: ${lastLine(stderr)}`);
    };
    return {
      // Starting a program (Node loading its modules, python3 its own) is slower than an event.
      ready: await next<T>(`${name} to start`, PROCESS_DEADLINE_MS),
      pid: child.pid!,
      next,
      endInput: () => child.stdin.end(),
      send: (line) => void child.stdin.write(`${line}\n`),
      kill: (signal) => {
        child.kill(signal);
        return this.within(closed, `${name} to end`);
      },
    };
  }

  private record(observation: Observation, source: 'kernel' | 'observed', explicitChoices?: readonly string[]): Observation {
    this.observations.push(observation);
    const choices = choicesFor(observation.kind, observation.predicted, explicitChoices);
    this.emit({ type: 'observation', ...observation, source, ...(choices === undefined ? {} : { choices }) });
    return observation;
  }

  private stuck(what: string, deadlineMs: number): LabError {
    return new LabError('ERR_LAB_STUCK', `step ${this.stepNumber}: gave up waiting for ${what} after ${deadlineMs / 1000} s`);
  }
}
