/** A pino logger whose JSON lines a test can read back: assert on fields, not wording. */
import { pino, type Logger } from 'pino';

export interface LogLine {
  level: number;
  event?: string;
  conn?: number;
  msg: string;
  [field: string]: unknown;
}

export interface CapturedLog {
  logger: Logger;
  lines: LogLine[];
  /** Lines with this `event` field, optionally for one connection. */
  events(event: string, conn?: number): LogLine[];
}

export function captureLog(level: pino.LevelWithSilent = 'debug'): CapturedLog {
  const lines: LogLine[] = [];
  const logger = pino({ level, base: undefined }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return {
    logger,
    lines,
    events: (event, conn) => lines.filter((line) => line.event === event && (conn === undefined || line.conn === conn)),
  };
}
