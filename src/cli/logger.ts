/**
 * pino, set up for the two audiences of a log: JSON lines for programs (tests, jq, labs),
 * and one readable line per event for a person at a terminal.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { LabError } from '../errors.js';
import { wantsColour, wrapText } from './terminal.js';

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

/** A logger writing to `destination`, in `format` (by default, the one that suits the destination). */
export function createLogger(format: LogFormat | undefined, level: LogLevel, destination: LogDestination = STDOUT): Logger {
  if (destination === 'nowhere') return pino({ level: 'silent' });
  // Synchronous writes: every line is out before the process exits, even on a signal.
  const sink = 'file' in destination ? appendTo(destination.file) : destination.fd;
  if ((format ?? defaultLogFormat(destination)) === 'pretty') {
    // The message says it all for a person; the structured fields stay in the JSON format.
    const terminal = streamOf(destination);
    const width = terminal.isTTY ? terminal.columns : undefined;
    const stream = pretty({
      destination: sink,
      sync: true,
      colorize: wantsColour(terminal),
      translateTime: 'SYS:HH:MM:ss.l',
      hideObject: true,
      messageFormat: (line, messageKey) => {
        // `lab-server all` tags lines by service.
        const text = `${line.service === undefined ? '' : `[${String(line.service)}] `}${String(line[messageKey])}`;
        // A long explanation wraps between words, under the start of the message: wrapped as if
        // the prefix were part of the line, which it is on the screen.
        if (width === undefined) return text;
        const margin = ' '.repeat(PRETTY_PREFIX.length);
        return wrapText(margin + text, Math.max(width, 2 * margin.length), margin).slice(margin.length);
      },
    });
    return remember(pino({ level, base: undefined }, stream), sink, destination);
  }
  return remember(pino({ level, base: { pid: process.pid } }, typeof sink === 'number' ? pino.destination({ dest: sink, sync: true }) : sink), sink, destination);
}

type FileDestination = ReturnType<typeof pino.destination>;

/** The --log-file of each logger that writes to one, for reopenLogFile(). */
const logFiles = new WeakMap<Logger, { sink: FileDestination; path: string }>();

function remember(logger: Logger, sink: number | FileDestination, destination: LogDestination): Logger {
  if (typeof sink !== 'number' && destination !== 'nowhere' && 'file' in destination) logFiles.set(logger, { sink, path: destination.file });
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

/** --log-file: opened with O_APPEND, so each line lands at the end even if another process writes there too. */
function appendTo(file: string): FileDestination {
  try {
    return pino.destination({ dest: file, append: true, sync: true });
  } catch (error) {
    throw cannotOpen(file, error);
  }
}

function cannotOpen(file: string, error: unknown): LabError {
  const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  const why: Record<string, string> = { ENOENT: 'its folder does not exist', EACCES: 'permission denied', EISDIR: 'it is a folder', EROFS: 'the file system is read-only' };
  return new LabError('ERR_LOG_FILE', `cannot open --log-file ${JSON.stringify(file)} for appending: ${why[code] ?? code}`);
}
