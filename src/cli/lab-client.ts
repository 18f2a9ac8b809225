#!/usr/bin/env node
/**
 * `lab-client daytime|echo [host]`: the classic clients, with their socket pair on request.
 * Output from the server goes to stdout; everything the client itself says goes to stderr.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { fetchDaytime } from '../clients/daytime.js';
import { runEchoClient } from '../clients/echo.js';
import { formatEndpoint, formatSocketPair, type Endpoint } from '../endpoint.js';
import { ExitCode } from '../errors.js';
import { parsePort, secondsOption } from './arguments.js';
import { runCli, usageFailure } from './run.js';

const PROGRAM = 'lab-client';
const DEFAULT_TIMEOUT_SECONDS = '10';

const EXIT_CODES_HELP = `Exit status: 0 on success; ${ExitCode.usage} bad usage; ${ExitCode.dataError} the echo differed from what was sent; ${ExitCode.noHost} unknown host; ${ExitCode.unavailable} could not connect, or the connection failed.`;

const say = (line: string): void => void process.stderr.write(`${line}\n`);

function clientOptions(y: Argv, defaultPort: number) {
  return y
    .positional('host', { type: 'string', default: 'localhost', describe: 'Server host name or address; every address it resolves to is tried in turn' })
    .options({
      port: { alias: 'p', type: 'string', default: String(defaultPort), coerce: parsePort, describe: 'Server port' },
      timeout: { type: 'string', default: DEFAULT_TIMEOUT_SECONDS, coerce: secondsOption('timeout'), describe: 'Seconds to wait for a connection or a reply' },
      verbose: { alias: 'v', type: 'boolean', default: false, describe: "Print each address tried and this client's socket pair (its ephemeral port)" },
    })
    .strict();
}

type ClientArguments = Awaited<ReturnType<typeof clientOptions>['argv']>;

/** What --verbose adds, shared by both clients. */
function connectReporting({ verbose }: ClientArguments) {
  return {
    onAttempt: verbose ? (target: Endpoint, outcome: string) => say(`trying ${formatEndpoint(target)}: ${outcome}`) : undefined,
    onConnected: verbose
      ? (local: Endpoint, remote: Endpoint) =>
          say(`socket pair ${formatSocketPair(local, remote)}: local ${formatEndpoint(local)} (ephemeral port ${local.port}), remote ${formatEndpoint(remote)}`)
      : undefined,
  };
}

async function daytime(args: ClientArguments & { hold: number; close: boolean }): Promise<void> {
  await fetchDaytime({
    host: args.host,
    port: args.port,
    timeoutMs: args.timeout,
    hint: `is a daytime server running? (lab-server daytime --port ${args.port})`,
    holdMs: args.hold,
    close: args.close,
    onLine: (text) => process.stdout.write(text),
    ...connectReporting(args),
  });
  if (args.verbose) say(args.close ? 'closed the socket' : 'exiting without close(): the kernel closes the socket for us');
}

async function echo(args: ClientArguments): Promise<void> {
  if (process.stdin.isTTY) say('Type a line and press Enter to see it echoed; Ctrl-D sends FIN and ends.');
  const { sentBytes, echoedBytes } = await runEchoClient({
    host: args.host,
    port: args.port,
    timeoutMs: args.timeout,
    hint: `is an echo server running? (lab-server echo --port ${args.port})`,
    input: process.stdin,
    output: process.stdout,
    ...connectReporting(args),
  });
  if (args.verbose) say(`sent ${sentBytes} bytes, ${echoedBytes} echoed back intact; the server closed after our FIN`);
}

async function main(): Promise<void> {
  await yargs(hideBin(process.argv))
    .scriptName(PROGRAM)
    .usage('$0 <protocol> [host] [options]\n\nThe classic clients: connect, talk, and show the socket pair.')
    .command(
      'daytime [host]',
      'Print the server\'s date and time line, like the classic daytime.c (RFC 867, default port 13)',
      (y) =>
        clientOptions(y, 13).options({
          hold: { type: 'string', default: '0', coerce: secondsOption('hold'), describe: 'After reading, keep the socket open this many seconds, then close' },
          close: { type: 'boolean', default: true, describe: 'Call close(); --no-close exits without it, and the kernel closes the socket' },
        }),
      (args) => daytime(args),
    )
    .command(
      'echo [host]',
      'Send stdin (or typed lines) to an echo server and print what comes back, checking it byte for byte (RFC 862, default port 5000)',
      (y) => clientOptions(y, 5000),
      (args) => echo(args),
    )
    .demandCommand(1, 'name a protocol: daytime or echo')
    .strictCommands()
    .fail(usageFailure(PROGRAM))
    .epilog(EXIT_CODES_HELP)
    .help()
    .alias('help', 'h')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 80))
    .parseAsync();
}

await runCli(PROGRAM, main);
// Exit even if stdin (a terminal) or a --no-close socket would keep the process alive:
// the kernel closes any socket still open, as it does for a C program that returns from main.
process.exit();
