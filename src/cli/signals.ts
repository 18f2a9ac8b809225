/**
 * What each signal does to a running server. Every signal a user or a supervisor may send gets a
 * meaning chosen on purpose, because Node's defaults are wrong for a server: SIGHUP, SIGUSR2 and
 * SIGQUIT would kill it with no drain and no summary, and SIGUSR1 would open Node's inspector on
 * 127.0.0.1:9229, through which any local user can run code as the server. A listener for a signal
 * replaces Node's default, so each one below has a listener from the start.
 *
 * | signal           | does                                                                      |
 * |------------------|---------------------------------------------------------------------------|
 * | SIGINT, SIGTERM  | stop accepting, drain (--shutdown-timeout), summaries, exit 0             |
 * | SIGQUIT          | stop accepting, close every connection now, summaries, exit 0             |
 * | SIGHUP           | reload --config and reopen --log-file; with neither, as SIGTERM           |
 * | SIGUSR1          | reopen --log-file (nginx's signal for it); never the inspector            |
 * | SIGUSR2          | log one status line: each service's open and served connections          |
 *
 * Once a stop has begun, SIGINT, SIGTERM or SIGQUIT again exits at once, with status 128 + n.
 * SIGHUP without a config or a log file stops the server because that is what it meant first:
 * the terminal has gone (a closed ssh session), and a server with nobody left to press Ctrl-C
 * should drain and go, not die mid-connection.
 */
import { constants } from 'node:os';
import type { Logger } from 'pino';
import { LabError } from '../errors.js';
import { escapeText } from '../framework/escape.js';
import { reopenLogFile, type LogSink } from './logger.js';

/** How fast to stop: let connections finish (up to --shutdown-timeout), or close them now. */
export type StopSpeed = 'drain' | 'now';

export interface StopRequest {
  signal: NodeJS.Signals;
  speed: StopSpeed;
}

export interface SignalActions {
  /** SIGHUP with a --config: read it again and apply it. Never rejects: it logs its own outcome. */
  reload?: () => Promise<void>;
  /** SIGUSR2: one line about what is being served. */
  status: () => void;
}

const STOPPING: Partial<Record<NodeJS.Signals, StopSpeed>> = { SIGINT: 'drain', SIGTERM: 'drain', SIGQUIT: 'now' };

/**
 * Installs a listener for every signal above, at once (before a socket exists: a signal during
 * startup is handled too), and resolves when one asks the server to stop.
 */
export function handleSignals(logger: Logger, sink: Pick<LogSink, 'flushNow'>, { reload, status }: SignalActions): Promise<StopRequest> {
  let stopping = false;
  // A SIGHUP during a reload is not lost: one more reload runs after it, with the file as it is then.
  let reloading: Promise<void> | undefined;
  let reloadAgain = false;
  const reloadSoon = (): void => {
    if (reloading !== undefined) {
      reloadAgain = true;
      return;
    }
    reloading = reload!().finally(() => {
      reloading = undefined;
      if (reloadAgain && !stopping) {
        reloadAgain = false;
        reloadSoon();
      }
    });
  };
  const reopenLog = (signal: NodeJS.Signals): boolean => {
    try {
      const reopened = reopenLogFile(logger);
      if (reopened) logger.info({ event: 'log-reopened', signal }, `${signal}: log file reopened`);
      return reopened;
    } catch (error) {
      // Not fatal: the lines keep going to the file that was open (renamed or not).
      const message = error instanceof LabError ? error.message : String(error);
      logger.error({ event: 'log-reopened', signal, error: escapeText(message) }, `${signal}: ${escapeText(message)}; still writing to the file that was open`);
      return true;
    }
  };
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals, speed: StopSpeed): void => {
      if (stopping) return forceExit(logger, sink, signal);
      stopping = true;
      const what = speed === 'drain' ? 'no longer accepting connections or datagrams (press Ctrl-C again to exit now)' : 'closing every connection now';
      logger.info({ event: 'shutdown', signal }, `${signal}: shutting down, ${what}`);
      resolve({ signal, speed });
    };
    for (const [signal, speed] of Object.entries(STOPPING) as [NodeJS.Signals, StopSpeed][]) process.on(signal, () => stop(signal, speed));
    process.on('SIGHUP', () => {
      const reopened = reopenLog('SIGHUP');
      if (reload !== undefined && !stopping) reloadSoon();
      else if (reload === undefined && !reopened) stop('SIGHUP', 'drain');
    });
    process.on('SIGUSR1', () => {
      if (!reopenLog('SIGUSR1')) logger.info({ event: 'signal-ignored', signal: 'SIGUSR1' }, 'SIGUSR1: no --log-file to reopen (the log goes to a standard stream)');
    });
    process.on('SIGUSR2', status);
  });
}

/** A second stop signal: the user will not wait for the drain. */
function forceExit(logger: Logger, sink: Pick<LogSink, 'flushNow'>, signal: NodeJS.Signals): never {
  logger.warn({ event: 'forced-exit', signal }, `${signal} again: exiting now`);
  // No waiting for a stuck log reader: one last try, then out.
  sink.flushNow();
  process.exit(128 + constants.signals[signal]);
}
