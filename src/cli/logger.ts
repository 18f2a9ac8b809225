/**
 * pino, set up for the two audiences of a log: JSON lines for programs (tests, jq, labs),
 * and one readable line per event for a person at a terminal.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { wantsColour, wrapText } from './terminal.js';

/** What pino-pretty writes before each message: `[HH:MM:ss.mmm] LEVEL: `, as wide as for INFO and WARN. */
const PRETTY_PREFIX = '[00:00:00.000] INFO: ';

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Pretty on a terminal, JSON when stdout is a pipe or a file. */
export const defaultLogFormat = (): LogFormat => (process.stdout.isTTY ? 'pretty' : 'json');

export function createLogger(format: LogFormat, level: LogLevel): Logger {
  if (format === 'pretty') {
    // The message says it all for a person; the structured fields stay in the JSON format.
    const width = process.stdout.isTTY ? process.stdout.columns : undefined;
    const stream = pretty({
      sync: true,
      colorize: wantsColour(process.stdout),
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
    return pino({ level, base: undefined }, stream);
  }
  // Synchronous writes: every line is out before the process exits, even on a signal.
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 1, sync: true }));
}
