/**
 * pino, set up for the two audiences of a log: JSON lines for programs (tests, jq, labs),
 * and one readable line per event for a person at a terminal.
 */
import { closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';
import { LabError } from '../errors.js';
import { openForWriting } from '../framework/named-files.js';
import { LogWriter, MAX_QUEUED_LOG_BYTES, openNonBlocking } from './log-writer.js';
import { wantsColour, wrapText } from './terminal.js';

/**
 * pino-pretty (and the colour and date libraries behind it) is loaded only for a pretty log: a
 * server logging JSON into a pipe, a file or a journal, as a daemon does, never uses it, and it cost
 * about 25 ms of startup and some RSS. It is a CommonJS package, so require() loads it on the spot.
 */
const loadPretty = (): typeof PinoPretty => createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;

/** What pino-pretty writes before each message: `[HH:MM:ss.mmm] LEVEL: `, as wide as for INFO and WARN. */
const PRETTY_PREFIX = '[00:00:00.000] INFO: ';

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Where log lines go: standard output (the default) or error, a file opened for appending
 * (--log-file), or nowhere, when a supervisor made both stdout and stderr the client's socket
 * (see socket-activation.ts).
 */
export type LogDestination = { fd: 1 | 2 } | { file: string } | 'nowhere';

const STDOUT: LogDestination = { fd: 1 };

/** The terminal, or pipe, or file, behind a standard descriptor; a log file is never a terminal. */
const streamOf = (destination: LogDestination): { isTTY?: boolean; columns?: number } =>
  destination === 'nowhere' || 'file' in destination ? {} : destination.fd === 1 ? process.stdout : process.stderr;

/** Pretty on a terminal, JSON into a pipe or a file. */
const defaultLogFormat = (destination: LogDestination = STDOUT): LogFormat => (streamOf(destination).isTTY ? 'pretty' : 'json');

/**
 * Where the log's bytes go, apart from how they look: pino writes lines to `stream`. Standard
 * output and error get a LogWriter, which never waits for a slow reader (it drops and counts
 * instead, see log-writer.ts); a --log-file is written synchronously, since a file has no reader
 * to wait for.
 */
export interface LogSink {
  readonly destination: LogDestination;
  readonly stream: pino.DestinationStream;
  /** Lines dropped so far because the reader did not keep up. */
  droppedLines(): number;
  /** Waits (at most `deadlineMs`) until every line is written: before a normal exit. */
  flush(deadlineMs: number): Promise<void>;
  /** One last non-blocking attempt, before an exit that cannot wait. */
  flushNow(): void;
}

/** Opens `destination` for logging; `onDropsEnded` hears how many lines a stuck reader cost, once it reads again. */
export function openLogSink(destination: LogDestination = STDOUT, onDropsEnded?: (dropped: number) => void): LogSink {
  if (destination === 'nowhere' || 'file' in destination) {
    const stream = destination === 'nowhere' ? new Writable({ write: (_chunk, _encoding, done) => done() }) : appendTo(destination.file);
    return { destination, stream, droppedLines: () => 0, flush: () => Promise.resolve(), flushNow: () => {} };
  }
  const writer = new LogWriter(openNonBlocking(destination.fd), MAX_QUEUED_LOG_BYTES, (dropped) => onDropsEnded?.(dropped));
  return {
    destination,
    stream: writer,
    droppedLines: () => writer.dropped,
    flush: async (deadlineMs) => void (await writer.flush(deadlineMs)),
    flushNow: () => writer.flushNow(),
  };
}

/**
 * A logger writing to `sink`, in `format` (by default, the one that suits its destination). When
 * a stuck reader made the sink drop lines, the logger says how many once the reader is back.
 */
export function createLogger(format: LogFormat | undefined, level: LogLevel, destination: LogDestination = STDOUT): { logger: Logger; sink: LogSink } {
  let logger: Logger | undefined;
  const sink = openLogSink(destination, (dropped) =>
    logger?.warn({ event: 'log-dropped', dropped }, `${dropped} log line(s) dropped: the program reading this log stopped reading, and the server does not wait for it`),
  );
  logger = loggerFor(format, level, sink);
  return { logger, sink };
}

function loggerFor(format: LogFormat | undefined, level: LogLevel, { destination, stream: sink }: LogSink): Logger {
  if (destination === 'nowhere') return pino({ level: 'silent' });
  if ((format ?? defaultLogFormat(destination)) === 'pretty') {
    // The message says it all for a person; the structured fields stay in the JSON format.
    const terminal = streamOf(destination);
    const width = terminal.isTTY ? terminal.columns : undefined;
    const stream = loadPretty()({
      destination: sink,
      colorize: wantsColour(terminal),
      translateTime: 'SYS:HH:MM:ss.l',
      hideObject: true,
      messageFormat: (line, messageKey) => {
        // `lab-server all` tags lines by service, and --workers by the worker that served the connection.
        const tags = [line.service, line.worker === undefined ? undefined : `worker ${String(line.worker)}`].filter((tag) => tag !== undefined);
        const text = `${tags.length === 0 ? '' : `[${tags.join(', ')}] `}${String(line[messageKey])}`;
        // A long explanation wraps between words, under the start of the message: wrapped as if
        // the prefix were part of the line, which it is on the screen.
        if (width === undefined) return text;
        const margin = ' '.repeat(PRETTY_PREFIX.length);
        return wrapText(margin + text, Math.max(width, 2 * margin.length), margin).slice(margin.length);
      },
    });
    return remember(pino({ level, base: undefined }, stream), sink, destination);
  }
  return remember(pino({ level, base: { pid: process.pid } }, sink), sink, destination);
}

type FileDestination = ReturnType<typeof pino.destination>;

/** The --log-file of each logger that writes to one, for reopenLogFile(). */
const logFiles = new WeakMap<Logger, { sink: FileDestination; path: string }>();

function remember(logger: Logger, sink: pino.DestinationStream, destination: LogDestination): Logger {
  if (destination !== 'nowhere' && 'file' in destination) logFiles.set(logger, { sink: sink as FileDestination, path: destination.file });
  return logger;
}

/**
 * Reopens `logger`'s --log-file by its name, for logrotate: after `mv lab.log lab.log.1` the open
 * descriptor still points to the renamed file (a rename does not touch open files), so lines keep
 * going there until the name is opened again, which creates a new file. Returns false when the
 * logger writes to no file; throws a LabError when the name cannot be opened, and then the old
 * file is still written to.
 */
export function reopenLogFile(logger: Logger): boolean {
  const file = logFiles.get(logger);
  if (file === undefined) return false;
  try {
    file.sink.reopen();
  } catch (error) {
    throw cannotOpen(file.path, error);
  }
  return true;
}

/**
 * --log-file: opened with O_APPEND, so each line lands at the end even if another process writes
 * there too. Written synchronously: every line is out before the process exits, even on a signal.
 */
function appendTo(file: string): FileDestination {
  try {
    // Checked through a descriptor first (open(2) of a FIFO would block; named-files.ts refuses
    // what is not a file), then opened by name, so that reopen() can open the name again after logrotate.
    closeSync(
      openForWriting(file, {
        append: true,
        refuse: (why) => new LabError('ERR_LOG_FILE', `cannot use --log-file ${JSON.stringify(file)}: ${why}`),
        instead: 'without --log-file the log goes to stdout, and a pipe can take it there (| tee FILE)',
      }),
    );
    return pino.destination({ dest: file, append: true, sync: true });
  } catch (error) {
    if (error instanceof LabError) throw error;
    throw cannotOpen(file, error);
  }
}

function cannotOpen(file: string, error: unknown): LabError {
  const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  const why: Record<string, string> = { ENOENT: 'its folder does not exist', EACCES: 'permission denied', EISDIR: 'it is a folder', EROFS: 'the file system is read-only' };
  return new LabError('ERR_LOG_FILE', `cannot open --log-file ${JSON.stringify(file)} for appending: ${why[code] ?? code}`);
}
