#!/usr/bin/env node
/**
 * `lab-server <protocol>`: serve one protocol plugin until Ctrl-C.
 * This file only wires things together: parse flags, make a logger, start the server,
 * and turn signals into a graceful shutdown. It is the only place that touches `process`.
 */
import { constants } from 'node:os';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { Logger } from 'pino';
import { ExitCode, usageError } from '../errors.js';
import type { Protocol } from '../protocol.js';
import { protocols } from '../protocols/index.js';
import { createServer, type LabServer } from '../server.js';
import { parseCloseMode, parsePort, secondsOption } from './arguments.js';
import { createLogger, defaultLogFormat, LOG_FORMATS, LOG_LEVELS } from './logger.js';
import { runCli, usageFailure } from './run.js';

const PROGRAM = 'lab-server';
const DEFAULT_SHUTDOWN_SECONDS = '5';
const protocolNames = protocols.map((p) => p.name).join(', ');

const EXIT_CODES_HELP = `Exit status: 0 after a graceful shutdown; ${ExitCode.usage} bad usage (flag, port, protocol); ${ExitCode.noHost} unknown host; ${ExitCode.unavailable} port in use or address unavailable; ${ExitCode.noPermission} privileged port without root.`;

/** Options every server has. */
function serverOptions(y: Argv, protocol: Protocol) {
  return y
    // The protocol's own options first: yargs' types let later definitions refine earlier ones.
    .options(protocol.options)
    .options({
      port: {
        alias: 'p', type: 'string', default: String(protocol.defaultPort), coerce: parsePort,
        describe: `TCP port to listen on; 0 lets the kernel pick a free one (its number is logged)`,
      },
      host: { type: 'string', describe: 'Local address to bind [default: :: (IPv6 and IPv4), or 0.0.0.0 without IPv6]' },
      'log-format': { choices: LOG_FORMATS, default: defaultLogFormat(), defaultDescription: 'pretty on a terminal, json otherwise', describe: 'Log as JSON lines or as readable text' },
      'log-level': { choices: LOG_LEVELS, default: 'info' as const, describe: 'Least severe log level shown (debug shows each connection state change)' },
      resolve: { type: 'boolean', default: false, describe: "Log each client's host name (a reverse lookup, like gethostbyaddr)" },
      iterative: { type: 'boolean', default: false, describe: 'Serve one connection at a time, like the tutorial\'s Perl server; later clients connect but wait' },
      'idle-timeout': { type: 'string', default: '0', coerce: secondsOption('idle-timeout'), describe: 'Close a connection after this many seconds without data; 0 never does' },
      'shutdown-timeout': {
        type: 'string', default: DEFAULT_SHUTDOWN_SECONDS, coerce: secondsOption('shutdown-timeout'),
        describe: 'On Ctrl-C or SIGTERM, give open connections this many seconds to finish, then close them',
      },
    })
    .strict();
}

/** The close-behaviour switches, for protocols that close first. */
function closeOptions<T>(y: Argv<T>) {
  return y.options({
    close: {
      type: 'string', default: 'fin', coerce: parseCloseMode,
      describe: 'How to close: fin (orderly; this side enters TIME_WAIT) or rst (abortive, SO_LINGER 0; no TIME_WAIT). --no-close never closes',
    },
    'close-delay': { type: 'string', default: '0', coerce: secondsOption('close-delay'), describe: 'Wait this many seconds after sending, then close' },
  });
}

type ServerArguments = Awaited<ReturnType<typeof serverOptions>['argv']> &
  Partial<Awaited<ReturnType<typeof closeOptions>['argv']>>;

async function serve(protocol: Protocol, args: ServerArguments): Promise<void> {
  const logger = createLogger(args.logFormat, args.logLevel);
  const server = createServer({
    protocol,
    settings: args,
    host: args.host,
    port: args.port,
    logger,
    resolvePeerNames: args.resolve,
    idleTimeoutMs: args.idleTimeout,
    iterative: args.iterative,
    closePolicy: { mode: args.close ?? 'fin', delayMs: args.closeDelay ?? 0 },
  });
  await server.listen();
  await shutdownOnSignal(server, logger, args.shutdownTimeout);
}

/** First SIGINT/SIGTERM: graceful shutdown. A second one: exit at once. */
async function shutdownOnSignal(server: LabServer, logger: Logger, deadlineMs: number): Promise<void> {
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  const forceExit = (again: NodeJS.Signals): never => {
    logger.warn({ event: 'forced-exit', signal: again }, `${again} again: exiting now`);
    process.exit(128 + constants.signals[again]);
  };
  process.once('SIGINT', forceExit);
  process.once('SIGTERM', forceExit);
  logger.info({ event: 'shutdown', signal }, `${signal}: no longer accepting connections (press Ctrl-C again to exit now)`);
  const summary = await server.close(deadlineMs);
  logger.info(
    { event: 'summary', ...summary },
    `served ${summary.connections} connection(s): ${summary.bytesIn} bytes in, ${summary.bytesOut} bytes out` +
      (summary.forced > 0 ? `; ${summary.forced} closed at the shutdown deadline` : ''),
  );
}

async function main(): Promise<void> {
  let cli = yargs(hideBin(process.argv))
    .scriptName(PROGRAM)
    .usage(`$0 <protocol> [options]\n\nServe a classic TCP protocol for experiments. Protocols: ${protocolNames}.`)
    .strictCommands()
    .fail(usageFailure(PROGRAM))
    .epilog(`${EXIT_CODES_HELP}\nDocs: docs/protocols/<protocol>.md`)
    .help()
    .alias('help', 'h')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 80));
  for (const protocol of protocols) {
    cli = cli.command(
      protocol.name,
      `${protocol.summary} (RFC ${protocol.rfc}, default port ${protocol.defaultPort})`,
      (y) => (protocol.closesFirst ? closeOptions(serverOptions(y, protocol)) : serverOptions(y, protocol)),
      (args) => serve(protocol, args),
    );
  }
  await cli
    .command('$0 [protocol]', false, (y) => y.positional('protocol', { type: 'string' }), ({ protocol }) => {
      if (protocol === undefined) throw usageError('ERR_USAGE', `name a protocol to serve: ${protocolNames} (see ${PROGRAM} --help)`);
      throw usageError('ERR_UNKNOWN_PROTOCOL', `unknown protocol ${JSON.stringify(protocol)}: choose one of ${protocolNames}`);
    })
    .parseAsync();
}

await runCli(PROGRAM, main);
process.exit();
