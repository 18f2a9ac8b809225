/**
 * Runs a command-line program and turns its failures into exit statuses.
 * A LabError is the user's to fix: one line on stderr, no stack trace, its sysexits code.
 * Anything else is a bug in lab-server and says so.
 */
import { readFileSync } from 'node:fs';
import { ExitCode, LabError, usageError } from '../errors.js';

/** This package's version, for --version (from package.json, three levels above dist/src/cli/). */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export async function runCli(program: string, main: () => Promise<number | void>): Promise<void> {
  // `lab-server states --watch | head`: once head has its lines it exits, and our next write fails
  // with EPIPE. The reader wants no more; like a C program killed by SIGPIPE, stop quietly.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? ExitCode.ok);
  });
  try {
    const status = await main();
    if (typeof status === 'number') process.exitCode = status;
  } catch (error) {
    if (error instanceof LabError) {
      process.stderr.write(`${program}: ${error.message}\n`);
      process.exitCode = error.exitCode;
    } else {
      const detail = error instanceof Error ? error.stack ?? error.message : String(error);
      process.stderr.write(`${program}: internal error (please report it): ${detail}\n`);
      process.exitCode = ExitCode.software;
    }
  }
}

/**
 * yargs' `.fail()` handler: every parsing mistake becomes a one-line usage error.
 * yargs reports some mistakes on several lines, and it rewraps errors thrown by `coerce`
 * as a YError that keeps only the message.
 */
export function usageFailure(program: string) {
  return (message: string | undefined, error: Error | undefined): never => {
    if (error !== undefined && error.name !== 'YError') throw error;
    const text = (error?.message ?? message ?? 'invalid usage').replace(/\s*\n\s*/g, ' ').trim();
    const hint = error === undefined ? ` (see ${program} --help)` : '';
    throw usageError('ERR_USAGE', `${text}${hint}`);
  };
}

/**
 * yargs middleware: a flag given twice keeps its last value, as in most Unix tools
 * (`--port 1 --port 2` means port 2). yargs would collect the values into an array,
 * which only options declared as arrays (--allow, --deny) expect.
 */
export function lastValueWins(argv: Record<string, unknown>, parser?: { getOptions(): { array: string[] } }): void {
  // yargs passes itself as the second argument (its published types omit it).
  const arrays = new Set(parser?.getOptions().array);
  for (const [key, value] of Object.entries(argv)) {
    // `_` holds the positional arguments and `--` those after a bare `--`: lists by nature.
    if (key !== '_' && key !== '--' && Array.isArray(value) && !arrays.has(key)) argv[key] = value.at(-1);
  }
}

/**
 * yargs check: words after a bare `--` are not options, and no command takes them.
 * Say so, rather than ignore them (`lab-server echo -- --port 7` must not serve port 5000).
 */
export function noStrayArguments(argv: { _: (string | number)[] }): true {
  const [, ...stray] = argv._;
  if (stray.length > 0) throw usageError('ERR_USAGE', `unexpected argument ${JSON.stringify(String(stray[0]))}; options go before any --`);
  return true;
}
