/**
 * Runs a command-line program and turns its failures into exit statuses.
 * A LabError is the user's to fix: one line on stderr, no stack trace, its sysexits code.
 * Anything else is a bug in lab-server and says so.
 */
import { readFileSync } from 'node:fs';
import { ExitCode, LabError, usageError } from '../errors.js';
import { escapeLines } from '../framework/escape.js';
import { closest } from './suggest.js';

/** This package's version, for --version (from package.json, three levels above dist/src/cli/). */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export async function runCli(program: string, main: () => Promise<number | void>): Promise<void> {
  // `lab-server states --watch | head`: once head has its lines it exits, and our next write fails
  // with EPIPE. The reader wants no more; like a C program killed by SIGPIPE, stop quietly.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? ExitCode.ok);
  });
  // A bug that escapes every handler (say, a log observer that throws) ends the program the same
  // documented way as one main() throws: one line asking for a report, and exit status 70.
  process.once('uncaughtException', (error) => {
    reportInternalError(program, error);
    process.exit(ExitCode.software);
  });
  try {
    const status = await main();
    if (typeof status === 'number') process.exitCode = status;
  } catch (error) {
    if (error instanceof LabError) {
      process.stderr.write(`${program}: ${error.message}\n`);
      process.exitCode = error.exitCode;
    } else {
      reportInternalError(program, error);
      process.exitCode = ExitCode.software;
    }
  }
  // The programs call process.exit() next; let what they wrote reach the reader first.
  await flushed(process.stdout);
  await flushed(process.stderr);
}

/**
 * Resolves once everything written to `stream` has been handed to the kernel. Into a pipe Node
 * writes asynchronously (unlike a terminal or a file): what a slow reader has not taken yet waits
 * in our memory, and process.exit() would drop it, cutting the end off a long echo. A C program's
 * exit() flushes its stdio buffers the same way. Writes complete in order, so the callback of an
 * empty write comes after all the earlier ones (or with an error, if the reader has gone).
 */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.writableLength === 0 || stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => void stream.write('', () => resolve()));
}

function reportInternalError(program: string, error: unknown): void {
  const detail = error instanceof Error ? error.stack ?? error.message : String(error);
  // The error's message may quote input: escaped, but a stack keeps its one frame a line.
  process.stderr.write(`${program}: internal error (please report it): ${escapeLines(detail)}\n`);
}

/** The part of yargs' internals that skipHelpRendering reaches (not in its published types). */
interface YargsInternals {
  getInternalMethods?(): { getUsageInstance?(): { cacheHelpMessage?: () => void } };
}

/**
 * yargs renders a command's whole --help text every time the command runs, right after starting its
 * handler, and keeps it in case the handler fails later and its own fail handler wants to show it.
 * Ours (usageErrors) never shows help on failure, so the text is never read, and rendering it
 * (every column measured for its width on screen, Unicode-aware) blocked the event loop for 30 to
 * 40 ms of a 250 ms `lab-client daytime` (docs/benchmarks.md). The hook is yargs' own, unpublished:
 * with a version that lacks it, help is rendered as before.
 */
export function skipHelpRendering(cli: object): void {
  const usage = (cli as YargsInternals).getInternalMethods?.().getUsageInstance?.();
  if (typeof usage?.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => {};
}

/** The part of yargs' option table that usage errors look at (`yargs.getOptions()`). */
interface OptionTable {
  key: Record<string, unknown>;
  alias: Record<string, string[]>;
  default: Record<string, unknown>;
  defaultDescription: Record<string, string | undefined>;
  array: string[];
}

/** yargs passes itself to middleware as a second argument (its published types omit it). */
interface Parser {
  getOptions(): OptionTable;
}

/**
 * Usage errors for one program: yargs' `.fail()` handler, which turns every parsing mistake into
 * one line that says what to type instead, and a middleware that tells it which command was being
 * parsed and what options that command has (yargs does not tell its fail handler).
 * yargs reports some mistakes on several lines, and it rewraps errors thrown by `coerce` as a
 * YError that keeps only the message; those messages already say what to type, and pass as they are.
 */
export function usageErrors(program: string, commands: readonly string[]) {
  let command: string | undefined;
  let table: OptionTable | undefined;
  const seeHelp = (): string => `(see ${program}${command === undefined ? '' : ` ${command}`} --help)`;

  /** The name an option was declared with, from any of its aliases (`p` → `port`). */
  const canonical = (name: string): string => Object.keys(table?.alias ?? {}).find((key) => key === name || table!.alias[key]!.includes(name)) ?? name;

  const needsValue = (key: string): string => {
    const name = canonical(key);
    const flag = key.length === 1 ? `-${key}` : `--${key}`;
    const value = table?.defaultDescription[name] ?? table?.default[name];
    const example = typeof value === 'number' || (typeof value === 'string' && /^[\w.:-]+$/.test(value)) ? `, e.g. ${flag} ${value}` : '';
    return `${flag} needs a value${example} ${seeHelp()}`;
  };

  const unknown = (names: string[]): string => {
    // yargs lists `--max-conn` twice, also as its camelCase twin maxConn.
    const kebab = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    const typed = names.filter((name) => !/[A-Z]/.test(name) || !names.includes(kebab(name)));
    const known = [...Object.keys(table?.key ?? {}), ...Object.values(table?.alias ?? {}).flat()].filter((name) => name.length > 1 && !/[A-Z]/.test(name));
    const clauses = typed.map((name) => {
      const flag = flagAsTyped(name);
      if (flag === undefined) {
        const portHint = /^\d+$/.test(name) && known.includes('port') ? `: to choose the port, type --port ${name}` : '';
        return `unexpected argument ${JSON.stringify(name)}${portHint}`;
      }
      const meant = name.length > 1 ? closest(name, known) : undefined;
      const negation = flag.startsWith('--no-') ? 'no-' : '';
      return `unknown option ${flag}${meant === undefined ? '' : `: did you mean --${negation}${meant}?`}`;
    });
    return `${clauses.join('; ')} ${seeHelp()}`;
  };

  const unknownCommand = (word: string): string => {
    const meant = closest(word, commands);
    return `unknown command ${JSON.stringify(word)}: ${meant === undefined ? `choose one of ${commands.join(', ')}` : `did you mean ${meant}?`} ${seeHelp()}`;
  };

  const explain = (text: string, fromCoerce: boolean): string => {
    let match: RegExpExecArray | null;
    if ((match = /^Not enough arguments following: (.+)$/.exec(text))) return needsValue(match[1]!);
    if ((match = /^Unknown arguments?: (.+)$/.exec(text))) return unknown(match[1]!.split(', '));
    // After a command, yargs calls any extra word an unknown command: it is a stray argument.
    if ((match = /^Unknown commands?: (.+)$/.exec(text))) {
      return command === undefined ? unknownCommand(match[1]!.split(', ')[0]!) : unknown(match[1]!.split(', '));
    }
    return fromCoerce ? text : `${text} ${seeHelp()}`;
  };

  return {
    /** yargs middleware, run before validation: remembers the command and its options. */
    remember(argv: { _: (string | number)[] }, parser?: Parser): void {
      const first = String(argv._[0]);
      command = commands.includes(first) ? first : undefined;
      table = parser?.getOptions();
    },
    /** yargs' `.fail()` handler. */
    fail(message: string | undefined, error: Error | undefined): never {
      if (error !== undefined && error.name !== 'YError') throw error;
      const text = (error?.message ?? message ?? 'invalid usage').replace(/\s*\n\s*/g, ' ').trim();
      throw usageError('ERR_USAGE', explain(text, error !== undefined));
    },
  };
}

/**
 * How an unknown option called `name` was typed (`--prot`, `--no-verbos`, `-x`), or undefined
 * when it was typed as a plain word, a stray argument (`lab-server echo 5000`).
 */
function flagAsTyped(name: string): string | undefined {
  const words = process.argv.slice(2);
  const end = words.indexOf('--');
  const options = end === -1 ? words : words.slice(0, end);
  for (const word of options) {
    for (const flag of [`--${name}`, `--no-${name}`]) if (word === flag || word.startsWith(`${flag}=`)) return flag;
  }
  if (name.length === 1 && options.some((word) => /^-[^-]/.test(word) && word.includes(name))) return `-${name}`;
  return undefined;
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
