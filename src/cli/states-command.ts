/**
 * `lab-server states [--port N] [--watch] [--json]`: the kernel's TCP sockets on one port, like
 * `ss -tan`, with each end labelled server or client. The table itself is built in
 * src/tcp-states/table.ts; this file reads the kernel, prints, and repeats for --watch.
 */
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { readTcpSockets } from '../tcp-states/read.js';
import { buildStateRows, formatStateTable, type StateRow } from '../tcp-states/table.js';
import { NUMBER_VALUE, parsePort } from './arguments.js';

/** How often --watch reads the table again. */
const WATCH_INTERVAL_MS = 1000;
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
        describe: `Refresh every ${WATCH_INTERVAL_MS / 1000} s until Ctrl-C; on a terminal in place, otherwise each table after a time line`,
      },
      json: { type: 'boolean', default: false, describe: 'Print JSON (one document; with --watch, one line per refresh)' },
    })
    .group(['port', 'watch', 'json', 'help', 'version'], 'Options:')
    .example('$0 states --port 5000', 'the listener and every connection on port 5000')
    .example('$0 states --port 13 --watch', 'watch TIME_WAIT count down after daytime clients leave')
    .strict();
}

type StatesArguments = Awaited<ReturnType<typeof builder>['argv']>;

async function snapshot(port: number | undefined): Promise<StateRow[]> {
  return buildStateRows(await readTcpSockets(), port === undefined ? {} : { port });
}

function render(rows: StateRow[], { port, json, watch }: StatesArguments): string {
  if (json) return JSON.stringify(watch ? { time: new Date().toISOString(), sockets: rows } : rows, null, watch ? undefined : 2);
  const table = formatStateTable(rows, port === undefined ? {} : { port });
  if (!watch) return table;
  const what = `TCP sockets${port === undefined ? '' : ` on port ${port}`}`;
  if (!redrawsInPlace()) return `--- ${new Date().toISOString()}  ${what}\n${table}`;
  return `${HOME_AND_CLEAR}${new Date().toLocaleTimeString()}  ${what} (Ctrl-C to stop)\n\n${table}`;
}

async function states(args: ArgumentsCamelCase<StatesArguments>): Promise<void> {
  process.stdout.write(`${render(await snapshot(args.port), args)}\n`);
  if (!args.watch) return;
  // Refresh until the user presses Ctrl-C (or sends SIGTERM): the only bound a --watch needs.
  const stop = new AbortController();
  const stopped = Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]).then(() => stop.abort());
  while (!stop.signal.aborted) {
    await sleep(WATCH_INTERVAL_MS, undefined, { signal: stop.signal }).catch(() => undefined);
    if (!stop.signal.aborted) process.stdout.write(`${render(await snapshot(args.port), args)}\n`);
  }
  await stopped;
}

export const statesCommand: CommandModule<object, StatesArguments> = {
  command: 'states',
  describe: "Show the kernel's TCP sockets (state, side, TIME_WAIT time left), like ss -tan; Linux only",
  builder,
  handler: states,
};
