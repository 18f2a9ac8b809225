/**
 * Worker processes (--workers N), the primary's side. One process runs on one core; to use several,
 * the primary keeps the listening sockets, calls accept(2), applies every limit with its own exact
 * counts, and passes each admitted connection's descriptor to a worker over a Unix socket
 * (SCM_RIGHTS), round-robin: what Node's cluster module does in its default mode, with the
 * admission step in between. The workers run the same program (child_process.fork with the same
 * arguments and WORKER_ENV set: see worker.ts) and serve the connections as their own.
 *
 * Why not let every worker accept on its own (SO_REUSEPORT, or a shared listening socket): then
 * --max-connections, --max-per-source and --rate would hold per worker, N times looser, unless
 * each accept waited for a shared counter; here the one process that admits also counts.
 *
 * The primary never reads from a connection: the listener accepts sockets paused, and a socket that
 * was never read can move to another process with nothing left behind in this one's buffers.
 *
 * What the workers see comes back as events (messages.ts), re-emitted on the primary's stream
 * marked with the worker's number: the log, --metrics and --dashboard run only here and see every
 * worker's connections, and each `closed` frees its place in the limits. A worker that dies is
 * replaced; its connections died with it (the kernel closed their descriptors), and they are
 * reported closed, so their places are freed too. The listening sockets stay open throughout.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { EVENT_TYPES, type EventStream } from '../events.js';
import type { HeaderOutcome } from '../proxy-protocol.js';
import type { AwaitingHeader, ConnectionHandOff, AdmittedConnection } from '../server.js';
import { WORKER_ENV, type ToPrimary, type ToWorker } from './messages.js';

/** A worker that dies sooner than this after starting is restarted after a growing pause (a crash loop must not become a fork loop). */
const STABLE_AFTER_MS = 1000;
const FIRST_RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 10_000;
/** At shutdown, how long after the drain deadline a worker may take to say it stopped before it is killed. */
const STOP_GRACE_MS = 2000;

/** The program each worker runs: this one, with the same arguments. */
export interface WorkerProgram {
  module: string;
  args: readonly string[];
  execArgv: readonly string[];
}

export interface WorkerPoolEvents {
  /** A worker is ready: its services are set up, and connections go to it. */
  'worker-started': [{ worker: number; pid: number }];
  /** `lost`: its connections, which ended with it; `restartInMs`: null once the pool is stopping. */
  'worker-exited': [{ worker: number; pid: number; code: number | null; signal: NodeJS.Signals | null; lost: number; restartInMs: number | null }];
}

/** Decides on a connection once a worker has read its PROXY header: the connection to serve, or undefined (refused). */
type Admit = (outcome: HeaderOutcome, worker?: number) => AdmittedConnection | undefined;

/** A connection that came while no worker was running: given to the next one that starts, or abandoned at shutdown. */
interface Unassigned {
  socket: net.Socket;
  give(worker: Worker): void;
  abandon(): void;
}

interface Worker {
  readonly number: number;
  readonly child: ChildProcess;
  readonly startedAt: number;
  ready: boolean;
  /** The connections handed to it and not yet closed, and when they were accepted. */
  readonly connections: Map<number, { handed: AdmittedConnection; acceptedAt: number }>;
  /** Connections given to it before it was ready: sent once it is. */
  readonly waiting: { socket: net.Socket; message: ToWorker }[];
  /** --proxy-protocol: connections whose header it is reading, by ticket, and who decides on them. */
  readonly tickets: Map<number, Admit>;
  /** What its servers closed by force at shutdown, per protocol, once it has said so. */
  forced?: Record<string, number>;
}

export class WorkerPool extends EventEmitter<WorkerPoolEvents> implements ConnectionHandOff {
  private readonly workers = new Map<number, Worker>();
  /** Connections that came while no worker was running at all. */
  private readonly unassigned: Unassigned[] = [];
  private nextTicket = 0;
  private nextTurn = 0;
  private restartDelayMs = FIRST_RESTART_DELAY_MS;
  private readonly restarts = new Set<NodeJS.Timeout>();
  private stopping?: Promise<ReadonlyMap<string, number>>;

  constructor(
    private readonly size: number,
    private readonly program: WorkerProgram,
    /** The primary's event stream: what workers report is re-emitted here. */
    private readonly stream: EventStream,
  ) {
    super();
  }

  /** Starts the workers. Call it once the services exist: they subscribe to the events workers report. */
  start(): void {
    for (let number = 1; number <= this.size; number++) this.startWorker(number);
  }

  hand(socket: net.Socket, handed: AdmittedConnection): number | undefined {
    return this.toWorker({
      socket,
      give: (worker) => this.assign(worker, socket, handed),
      abandon: () => this.reportClosed(handed, 'shutdown', this.stream.clock.monotonicMs()),
    });
  }

  handForHeader(socket: net.Socket, awaiting: AwaitingHeader, admit: Admit): void {
    this.toWorker({
      socket,
      give: (worker) => {
        const ticket = ++this.nextTicket;
        worker.tickets.set(ticket, admit);
        this.deliver(worker, socket, { kind: 'read-header', ticket, ...awaiting });
      },
      abandon: () => void admit({ problem: 'the server stopped before its header was read', incomplete: true }),
    });
  }

  makeRoom(protocol: string): void {
    const message: ToWorker = { kind: 'make-room', protocol };
    for (const worker of this.workers.values()) if (worker.ready) worker.child.send(message);
  }

  drain(deadlineMs: number): Promise<ReadonlyMap<string, number>> {
    this.stopping ??= this.stopAll(deadlineMs);
    return this.stopping;
  }

  /** Round-robin over the workers, ready ones first: one still starting gets connections only when none is ready. */
  private nextWorker(): Worker | undefined {
    const workers = [...this.workers.values()];
    const ready = workers.filter((worker) => worker.ready);
    const candidates = ready.length > 0 ? ready : workers;
    if (candidates.length === 0) return undefined;
    return candidates[this.nextTurn++ % candidates.length];
  }

  /** The next worker's turn, or, with none running, the first to start. Returns its number, if known. */
  private toWorker(connection: Unassigned): number | undefined {
    const worker = this.nextWorker();
    if (worker === undefined) {
      this.unassigned.push(connection);
      return undefined;
    }
    connection.give(worker);
    return worker.number;
  }

  /** The connection is this worker's from now on. */
  private assign(worker: Worker, socket: net.Socket, handed: AdmittedConnection): void {
    worker.connections.set(handed.conn, { handed, acceptedAt: this.stream.clock.monotonicMs() });
    this.deliver(worker, socket, { kind: 'connection', ...handed });
  }

  /** Sends the socket now, or as soon as the worker is ready. */
  private deliver(worker: Worker, socket: net.Socket, message: ToWorker): void {
    if (worker.ready) this.send(worker, socket, message);
    else worker.waiting.push({ socket, message });
  }

  private send(worker: Worker, socket: net.Socket, message: ToWorker): void {
    // Node passes the descriptor and closes this process's copy once the worker has it. If the
    // worker is gone by then, its exit reports the connection lost.
    worker.child.send(message, socket, () => {});
  }

  private startWorker(number: number): void {
    const child = fork(this.program.module, this.program.args, {
      env: { ...process.env, [WORKER_ENV]: String(number) },
      execArgv: [...this.program.execArgv],
      // Workers never log (the primary does, from their events); a crash still shows on stderr.
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const worker: Worker = { number, child, startedAt: this.stream.clock.monotonicMs(), ready: false, connections: new Map(), waiting: [], tickets: new Map() };
    this.workers.set(number, worker);
    for (const connection of this.unassigned.splice(0)) connection.give(worker);
    child.on('message', (message: ToPrimary) => this.onMessage(worker, message));
    child.on('exit', (code, signal) => this.onExit(worker, code, signal));
    child.on('error', () => {}); // a failed send to a dying worker: its exit says the rest
    // The types of event someone here listens to: the worker sends only those.
    const start: ToWorker = { kind: 'start', forward: EVENT_TYPES.filter((type) => this.stream.wants(type)) };
    child.send(start);
  }

  private onMessage(worker: Worker, message: ToPrimary): void {
    switch (message.kind) {
      case 'ready':
        worker.ready = true;
        this.emit('worker-started', { worker: worker.number, pid: worker.child.pid ?? 0 });
        for (const { socket, message } of worker.waiting.splice(0)) this.send(worker, socket, message);
        return;
      case 'header': {
        const admit = worker.tickets.get(message.ticket);
        worker.tickets.delete(message.ticket);
        const admitted = admit?.(message.outcome, worker.number);
        if (admitted !== undefined) worker.connections.set(admitted.conn, { handed: admitted, acceptedAt: this.stream.clock.monotonicMs() });
        const verdict: ToWorker = { kind: 'verdict', ticket: message.ticket, ...(admitted && { admitted }) };
        worker.child.send(verdict);
        return;
      }
      case 'events':
        for (const event of message.events) {
          if (event.type === 'closed') worker.connections.delete(event.conn);
          this.stream.relay(event, worker.number);
        }
        return;
      case 'stopped':
        worker.forced = message.forced;
        return;
    }
  }

  private onExit(worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(worker.number);
    // Those it never received are still open here: closed with the rest of its share.
    for (const { socket } of worker.waiting) socket.destroy();
    const lost = worker.connections.size;
    for (const { handed, acceptedAt } of worker.connections.values()) this.reportClosed(handed, 'worker-exited', acceptedAt, worker.number);
    for (const admit of worker.tickets.values()) admit({ problem: 'the worker reading its header exited', incomplete: true }, worker.number);
    const restartInMs = this.stopping === undefined ? this.restartDelay(worker) : null;
    this.emit('worker-exited', { worker: worker.number, pid: worker.child.pid ?? 0, code, signal, lost, restartInMs });
    if (restartInMs === null) return;
    const timer = setTimeout(() => {
      this.restarts.delete(timer);
      if (this.stopping === undefined) this.startWorker(worker.number);
    }, restartInMs);
    this.restarts.add(timer);
  }

  /** Immediately after a worker that ran a while; after a doubling pause after one that died young. */
  private restartDelay(worker: Worker): number {
    if (this.stream.clock.monotonicMs() - worker.startedAt >= STABLE_AFTER_MS) {
      this.restartDelayMs = FIRST_RESTART_DELAY_MS;
      return 0;
    }
    const delay = this.restartDelayMs;
    this.restartDelayMs = Math.min(2 * delay, MAX_RESTART_DELAY_MS);
    return delay;
  }

  /**
   * A connection nobody else will report closed: its worker died (the kernel closed the descriptor
   * with the process: a FIN, or an RST if data was left unread), or no worker ever came to take it
   * before the shutdown. Said here, so that its place is freed and every observer sees it end.
   */
  private reportClosed(handed: AdmittedConnection, reason: 'worker-exited' | 'shutdown', acceptedAt: number, worker?: number): void {
    const { protocol, conn, local, remote, proxy } = handed;
    const at = this.stream.clock.monotonicMs();
    const durationMs = Math.round(at - acceptedAt);
    const closed = { closedBy: 'server' as const, how: 'fin' as const, reason, bytesIn: 0, bytesOut: 0, durationMs, ...(proxy && { proxy }) };
    this.stream.relay({ type: 'closed', at, time: this.stream.clock.timeOrigin + at, protocol, transport: 'tcp', conn, local, remote, ...closed }, worker);
  }

  private async stopAll(deadlineMs: number): Promise<ReadonlyMap<string, number>> {
    for (const timer of this.restarts) clearTimeout(timer);
    // Never handed over: no worker came up in time. Closed here, as at a shutdown deadline.
    for (const { socket, abandon } of this.unassigned.splice(0)) {
      socket.destroy();
      abandon();
    }
    const workers = [...this.workers.values()];
    await Promise.all(workers.map((worker) => this.stopWorker(worker, deadlineMs)));
    const forced = new Map<string, number>();
    for (const worker of workers) {
      for (const [protocol, count] of Object.entries(worker.forced ?? {})) forced.set(protocol, (forced.get(protocol) ?? 0) + count);
    }
    return forced;
  }

  /** Asks a worker to drain and waits for it to exit; one that overstays is killed (SIGKILL). */
  private async stopWorker(worker: Worker, deadlineMs: number): Promise<void> {
    const { child } = worker;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const stop: ToWorker = { kind: 'stop', deadlineMs };
    if (child.connected) child.send(stop);
    const kill = setTimeout(() => child.kill('SIGKILL'), deadlineMs + STOP_GRACE_MS);
    await exited;
    clearTimeout(kill);
  }
}
