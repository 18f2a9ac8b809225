/**
 * Writing the log without ever waiting for its reader. A pipe holds 64 KiB; when the program
 * reading it stops (`| less` at a screenful, a stuck `tee`, a throttled journald, Ctrl-S on a
 * terminal), a blocking write(2) waits until the reader takes more, and a server that logs with
 * blocking writes stops serving, and stops handling signals, with it. So the log is written here
 * as a C daemon would with O_NONBLOCK: write(2) takes what fits and says EAGAIN for the rest;
 * lines wait in a queue of at most `maxQueuedBytes`, and beyond that new lines are dropped,
 * counted, and reported in a line of their own once the reader catches up.
 *
 * The descriptor: we open our own, through /proc/self/fd/N (a new open file description of the
 * same pipe or terminal), so that O_NONBLOCK is ours alone. Setting it on descriptor 1 itself
 * would change it for every process sharing that description, such as the shell. A regular
 * file is written on descriptor N itself: its writes never wait for a reader, and reopening it
 * would lose the shell's offset (`> log`). A socket (journald's stream) cannot be reopened
 * through /proc: it is written as it is, in a background thread, so the server goes on even if
 * that thread waits.
 *
 * pino's own asynchronous destination (sonic-boom, `sync: false`, with `maxLength` to drop) does
 * the queueing too, but at exit it flushes with blocking, retrying writes that never end while
 * the reader is stuck; here the last flush has a deadline.
 */
import fs from 'node:fs';
import { Writable } from 'node:stream';

/** Log bytes that may wait for a slow reader: 16 pipefuls, thousands of lines. */
export const MAX_QUEUED_LOG_BYTES = 1024 * 1024;
/** How often to try again after EAGAIN: write(2) on a plain descriptor has no 'drain' to wait for. */
const RETRY_MS = 50;

export class LogWriter extends Writable {
  private readonly queue: Buffer[] = [];
  private queuedBytes = 0;
  private writing = false;
  private retry?: NodeJS.Timeout;
  /** The reader has gone (EPIPE) or the descriptor failed: every later line is dropped. */
  private broken = false;
  private droppedTotal = 0;
  private droppedUnreported = 0;
  private readonly drainWaiters: (() => void)[] = [];

  /**
   * `fd`: the descriptor to write (opened by openNonBlocking when it can be). `onDropsEnded` is
   * told how many lines were dropped, once the queue has room again after dropping some.
   */
  constructor(
    private readonly fd: number,
    private readonly maxQueuedBytes = MAX_QUEUED_LOG_BYTES,
    private readonly onDropsEnded: (dropped: number) => void = () => {},
  ) {
    super({ decodeStrings: true });
  }

  /** Lines dropped since the start because the reader did not keep up (or had gone). */
  get dropped(): number {
    return this.droppedTotal;
  }

  /** Bytes written by the logger but not yet taken by the reader. */
  get pendingBytes(): number {
    return this.queuedBytes;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.broken || this.queuedBytes + chunk.length > this.maxQueuedBytes) {
      this.droppedTotal += 1;
      this.droppedUnreported += 1;
    } else {
      this.queue.push(chunk);
      this.queuedBytes += chunk.length;
      this.pump();
    }
    // Never backpressure: the logger must not wait, so a line is either queued or dropped now.
    done();
  }

  /**
   * Resolves true once every queued line is written, or false after `deadlineMs` if the reader is
   * still stuck: what a normal exit waits for, so that the last lines (the summary) are out.
   */
  flush(deadlineMs: number): Promise<boolean> {
    if (this.queuedBytes === 0 || this.broken) return Promise.resolve(this.queuedBytes === 0);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), deadlineMs);
      this.drainWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** One non-blocking attempt to write what is queued, now: before an exit that cannot wait. */
  flushNow(): void {
    if (this.writing || this.broken) return;
    try {
      this.consume(fs.writevSync(this.fd, this.queue));
    } catch {
      // EAGAIN (the reader is stuck) or EPIPE (it has gone): nothing more can be done now.
    }
  }

  private pump(): void {
    if (this.writing || this.retry !== undefined || this.queue.length === 0) return;
    this.writing = true;
    // The whole queue in one writev(2): a burst of lines costs one system call.
    fs.writev(this.fd, this.queue.slice(), (error, written) => {
      this.writing = false;
      if (error?.code === 'EAGAIN') {
        // The pipe is full. The timer must not keep a finishing process alive: exit uses flush().
        this.retry = setTimeout(() => {
          this.retry = undefined;
          this.pump();
        }, RETRY_MS).unref();
        return;
      }
      if (error !== null) return this.breakDown();
      this.consume(written);
      this.pump();
    });
  }

  /** Removes `written` bytes from the front of the queue, and says so to whoever waits. */
  private consume(written: number): void {
    this.queuedBytes -= written;
    while (written > 0) {
      const first = this.queue[0]!;
      if (first.length > written) {
        this.queue[0] = first.subarray(written);
        break;
      }
      written -= first.length;
      this.queue.shift();
    }
    // Report the drops once there is room again (half the queue), so the report itself gets through.
    if (this.droppedUnreported > 0 && this.queuedBytes <= this.maxQueuedBytes / 2) {
      const dropped = this.droppedUnreported;
      this.droppedUnreported = 0;
      // Not from inside a write: the report is itself a log line.
      setImmediate(() => this.onDropsEnded(dropped));
    }
    if (this.queuedBytes === 0) for (const wake of this.drainWaiters.splice(0)) wake();
  }

  /** The reader has gone (EPIPE: `| head` has its lines) or the descriptor broke: serve on, log nothing. */
  private breakDown(): void {
    this.broken = true;
    this.droppedTotal += this.queue.length;
    this.queue.length = 0;
    this.queuedBytes = 0;
    for (const wake of this.drainWaiters.splice(0)) wake();
  }
}

/**
 * A descriptor of our own for standard output or error, in non-blocking mode, when `fd` is a
 * pipe or a terminal (see the top of this file); `fd` itself otherwise.
 */
export function openNonBlocking(fd: 1 | 2): number {
  let kind: fs.Stats;
  try {
    kind = fs.fstatSync(fd);
  } catch {
    return fd;
  }
  if (!kind.isFIFO() && !kind.isCharacterDevice()) return fd;
  try {
    return fs.openSync(`/proc/self/fd/${fd}`, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK | fs.constants.O_APPEND);
  } catch {
    return fd; // not Linux (no /proc), or /dev/null-like devices that refuse: write as before
  }
}
