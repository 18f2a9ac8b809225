/**
 * `lab-server states [--port N] [--watch] [--json]`: the kernel's TCP sockets on one port, like
 * `ss -tan`, with each end labelled server or client. The table itself is built in
 * src/tcp-states/table.ts; this file reads the kernel, prints, and repeats for --watch.
 */
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { readStateTable } from '../tcp-states/read.js';
import { formatStateTable, type StateTable } from '../tcp-states/table.js';
import { countOption, NUMBER_VALUE, parsePort } from './arguments.js';

/** How often --watch reads the table again... */
const WATCH_INTERVAL_MS = 1000;
/**
 * ...unless a read takes longer than a fifth of that: then the pause after it is 4 times the read,
 * so --watch never takes more than a fifth of a CPU. The kernel prints every TCP socket of the
 * machine on each read of /proc/net/tcp, and 100,000 sockets take it and us a good part of a second.
 */
const WATCH_PAUSE_PER_READ = 4;
/**
 * Sockets listed at most, by default. Any client can leave a socket in TIME_WAIT on a daytime
 * server with each connection, 100,000 of them in a minute: a screen cannot show them, and reading
 * and printing them all every second would cost a CPU. The others are counted by state.
 */
const DEFAULT_LIMIT = 1000;
/** ANSI: cursor to the top left, then clear the screen below it, so the table refreshes in place. */
const HOME_AND_CLEAR = '\x1b[H\x1b[J';
/**
 * Redraw in place only on a terminal. Into a pipe or a file (`| head`, `> log`), escape codes would be
 * noise, so each refresh is appended instead, after a separator line that says when it was read.
 */
const redrawsInPlace = (): boolean => process.stdout.isTTY === true;

function builder(y: Argv) {
  return y
    .options({
      port: { ...NUMBER_VALUE, alias: 'p', coerce: parsePort, describe: 'Only sockets with this port at either end [default: all]' },
      watch: {
        alias: 'w', type: 'boolean', default: false,
        describe: `Refresh every ${WATCH_INTERVAL_MS / 1000} s (less often if reading takes long) until Ctrl-C; on a terminal in place, otherwise each table after a time line`,
      },
      json: { type: 'boolean', default: false, describe: 'Print JSON (one document; with --watch, one line per refresh)' },
      limit: {
        ...NUMBER_VALUE, default: DEFAULT_LIMIT, coerce: countOption('limit'),
        describe: 'List at most N sockets: the listeners and the connections on the lowest ports; the rest are counted by state (0 lists all)',
      },
    })
    .group(['port', 'watch', 'json', 'limit', 'help', 'version'], 'Options:')
    .example('$0 states --port 5000', 'the listener and every connection on port 5000')
    .example('$0 states --port 13 --watch', 'watch TIME_WAIT count down after daytime clients leave')
    .strict();
}

type StatesArguments = Awaited<ReturnType<typeof builder>['argv']>;

/** `1,234 more sockets not listed (--limit 1000): 1,230 TIME_WAIT, 4 ESTABLISHED`, or undefined when all are. */
function omittedNote({ omitted }: StateTable, limit: number): string | undefined {
  const counts = Object.entries(omitted).sort(([, a], [, b]) => b - a);
  if (counts.length === 0) return undefined;
  const count = (n: number): string => n.toLocaleString('en');
  const more = counts.reduce((sum, [, n]) => sum + n, 0);
  const byState = counts.map(([state, n]) => `${count(n)} ${state}`).join(', ');
  return `${count(more)} more sockets not listed (--limit ${limit}): ${byState}; --port narrows the table, --limit 0 lists them all`;
}

function render(table: StateTable, { port, json, watch, limit }: StatesArguments): string {
  const note = omittedNote(table, limit);
  if (json) {
    // One JSON document stays one: what the limit left out is in each --watch line's object, or on stderr.
    if (watch) return JSON.stringify({ time: new Date().toISOString(), sockets: table.rows, total: table.total, omitted: table.omitted });
    if (note !== undefined) process.stderr.write(`lab-server states: ${note}\n`);
    return JSON.stringify(table.rows, null, 2);
  }
  const text = formatStateTable(table.rows, port === undefined ? {} : { port }) + (note === undefined ? '' : `\n${note}`);
  if (!watch) return text;
  const what = `TCP sockets${port === undefined ? '' : ` on port ${port}`}`;
  if (!redrawsInPlace()) return `--- ${new Date().toISOString()}  ${what}\n${text}`;
  return `${HOME_AND_CLEAR}${new Date().toLocaleTimeString()}  ${what} (Ctrl-C to stop)\n\n${text}`;
}

async function states(args: ArgumentsCamelCase<StatesArguments>): Promise<void> {
  process.stdout.write(`${render(await readStateTable({ port: args.port, limit: args.limit }), args)}\n`);
  if (!args.watch) return;
  // Refresh until the user presses Ctrl-C (or sends SIGTERM): the only bound a --watch needs.
  const stop = new AbortController();
  const stopped = Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]).then(() => stop.abort());
  let readMs = 0;
  while (!stop.signal.aborted) {
    await sleep(Math.max(WATCH_INTERVAL_MS - readMs, WATCH_PAUSE_PER_READ * readMs), undefined, { signal: stop.signal }).catch(() => undefined);
    if (stop.signal.aborted) break;
    const start = performance.now();
    const table = await readStateTable({ port: args.port, limit: args.limit });
    readMs = performance.now() - start;
    process.stdout.write(`${render(table, args)}\n`);
  }
  await stopped;
}

export const statesCommand: CommandModule<object, StatesArguments> = {
  command: 'states',
  describe: "Show the kernel's TCP sockets (state, side, TIME_WAIT time left), like ss -tan; Linux only",
  builder,
  handler: states,
};
