/**
 * A pino logger that keeps its JSON lines in memory, so a lab (or a test) can wait for one
 * event, say the server's `kernel-state` line, and show or check it.
 */
import { EventEmitter, on } from 'node:events';
import { pino, type Level, type Logger } from 'pino';

/** One parsed log line; every line has at least `level`, `time` and `msg`. */
export type LogLine = Record<string, unknown> & { msg: string };

export class LogCapture extends EventEmitter<{ line: [LogLine] }> {
  readonly lines: LogLine[] = [];
  readonly logger: Logger;

  constructor(level: Level = 'info') {
    super();
    this.logger = pino({ level, base: undefined }, {
      write: (text: string) => {
        const line = JSON.parse(text) as LogLine;
        this.lines.push(line);
        this.emit('line', line);
      },
    });
  }

  /** The first line (already logged or still to come) that `matches`; rejects after `timeoutMs`. */
  async waitFor(matches: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine> {
    const seen = this.lines.find(matches);
    if (seen !== undefined) return seen;
    for await (const [line] of on(this, 'line', { signal: AbortSignal.timeout(timeoutMs) }) as AsyncIterable<[LogLine]>) {
      if (matches(line)) return line;
    }
    throw new Error('unreachable: the line iterator ended without an abort');
  }
}
