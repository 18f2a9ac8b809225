/**
 * `lab-server <protocol>` and `lab-server all`: serve protocols until Ctrl-C.
 * Flags become framework options here; signals become a graceful shutdown.
 */
import { constants } from 'node:os';
import type { Argv } from 'yargs';
import type { Logger } from 'pino';
import { AccessControl } from '../framework/access-control.js';
import { DatagramServer, DEFAULT_DATAGRAM_BUDGET } from '../framework/datagram-server.js';
import { EventStream } from '../framework/events.js';
import { LOOPBACK_ADDRESSES } from '../framework/listen.js';
import type { Protocol } from '../framework/protocol.js';
import { createServer, DEFAULT_MAX_CONNECTIONS } from '../framework/server.js';
import { watchKernelStates } from '../observers/kernel-states.js';
import { DEFAULT_CONNECTION_LOGS_PER_SECOND, LogObserver } from '../observers/log.js';
import { protocols } from '../protocols/index.js';
import { countOption, HIGHEST_PORT, NUMBER_VALUE, parseCloseMode, parsePort, portInRange, positiveIntegerOption, secondsOption, subnetsOption, VALUE_REQUIRED } from './arguments.js';
import { connectionsWithin, openFilesLimit } from './descriptor-limit.js';
import { createLogger, defaultLogFormat, LOG_FORMATS, LOG_LEVELS } from './logger.js';
import { raiseMallocThresholds } from './malloc-thresholds.js';

const DEFAULT_SHUTDOWN_SECONDS = 5;
const DEFAULT_BASE_PORT = 10000;
/** The highest --base-port that leaves every service a port: 65535 less the highest well-known port (time's 37). */
const HIGHEST_BASE_PORT = HIGHEST_PORT - Math.max(...protocols.map((p) => p.wellKnownPort));

/** Options every server has, whatever it serves. */
function commonOptions(y: Argv) {
  return y
    .options({
      host: {
        ...VALUE_REQUIRED, type: 'string',
        describe: 'Local address to bind; :: serves every interface (IPv6 and IPv4) [default: 127.0.0.1 and ::1, loopback only: this machine alone can connect]',
      },
      udp: { type: 'boolean', describe: 'Also serve UDP, on the same port number (off by default: see the reflection guards in the docs)' },
      'udp-only': { type: 'boolean', describe: 'Serve UDP only' },
      'udp-burst': {
        ...NUMBER_VALUE, default: DEFAULT_DATAGRAM_BUDGET.burst, coerce: positiveIntegerOption('udp-burst'),
        describe: 'UDP: replies to one peer address in a burst, before going quiet',
      },
      'udp-rate': {
        ...NUMBER_VALUE, default: DEFAULT_DATAGRAM_BUDGET.perSecond, coerce: positiveIntegerOption('udp-rate'),
        describe: 'UDP: replies per second to one peer address after the burst',
      },
      'log-format': { ...VALUE_REQUIRED, choices: LOG_FORMATS, default: defaultLogFormat(), defaultDescription: 'pretty on a terminal, json otherwise', describe: 'Log as JSON lines or as readable text' },
      'log-level': { ...VALUE_REQUIRED, choices: LOG_LEVELS, default: 'info' as const, describe: 'Least severe log level shown (debug shows each connection state change)' },
      'kernel-states': {
        type: 'boolean', default: true,
        describe: "After each close, log the kernel's TCP state for the socket pair (TIME_WAIT or nothing), read from /proc/net/tcp (Linux); --no-kernel-states turns it off",
      },
      'connection-logs': {
        ...NUMBER_VALUE, default: DEFAULT_CONNECTION_LOGS_PER_SECOND, coerce: countOption('connection-logs'),
        describe: 'Log at most this many connections a second in full (after a burst of twice as many); the rest are served and counted; 0 logs every one',
      },
      resolve: { type: 'boolean', default: false, describe: "Log each client's host name (a reverse lookup, like gethostbyaddr)" },
      iterative: { type: 'boolean', default: false, describe: "Serve one connection at a time, like the tutorial's Perl server; later clients connect but wait" },
      'max-connections': {
        ...NUMBER_VALUE, default: DEFAULT_MAX_CONNECTIONS, coerce: positiveIntegerOption('max-connections'),
        describe: 'Refuse (with RST) connections beyond this many at once',
      },
      'max-per-source': {
        ...NUMBER_VALUE, coerce: positiveIntegerOption('max-per-source'), defaultDescription: 'a quarter of --max-connections',
        describe: 'Refuse connections beyond this many from one IP address; others are unaffected',
      },
      allow: { ...VALUE_REQUIRED, type: 'string', array: true, default: [] as string[], coerce: subnetsOption, describe: 'Serve only these addresses or subnets (repeatable), like xinetd only_from' },
      deny: { ...VALUE_REQUIRED, type: 'string', array: true, default: [] as string[], coerce: subnetsOption, describe: 'Refuse these addresses or subnets (repeatable), like xinetd no_access' },
      'idle-timeout': {
        ...NUMBER_VALUE, default: 0, coerce: secondsOption('idle-timeout'),
        describe: "Close a connection after the client has sent nothing for this many seconds (the server's own writes do not count); 0 never does",
      },
      'shutdown-timeout': {
        ...NUMBER_VALUE, default: DEFAULT_SHUTDOWN_SECONDS, coerce: secondsOption('shutdown-timeout'),
        describe: 'On Ctrl-C or SIGTERM, give open connections this many seconds to finish, then close them',
      },
    })
    .conflicts('udp', 'udp-only')
    .strict();
}

/** The close-behaviour switches, for protocols that close first. */
function closeOptions<T>(y: Argv<T>) {
  return y.options({
    close: {
      ...VALUE_REQUIRED, type: 'string', default: 'fin', coerce: parseCloseMode,
      describe: 'How to close: fin (orderly; this side enters TIME_WAIT) or rst (abortive, SO_LINGER 0; no TIME_WAIT). --no-close never closes',
    },
    'close-delay': { ...NUMBER_VALUE, default: 0, coerce: secondsOption('close-delay'), describe: 'Wait this many seconds after sending, then close' },
  });
}

/**
 * The order of --help: what a first run needs (where to listen, UDP, the protocol's own options)
 * first, then each concern in a group of its own. yargs lists ungrouped options first otherwise.
 */
function helpGroups<T>(y: Argv<T>, { main, closes }: { main: string[]; closes: boolean }): Argv<T> {
  y.group([...main, 'host', 'udp', 'udp-only', 'iterative', 'help', 'version'], 'Options:');
  if (closes) y.group(['close', 'close-delay'], 'Close behaviour:');
  return y
    .group(['log-format', 'log-level', 'kernel-states', 'connection-logs', 'resolve'], 'Logging:')
    .group(['max-connections', 'max-per-source', 'idle-timeout', 'shutdown-timeout', 'udp-burst', 'udp-rate'], 'Limits:')
    .group(['allow', 'deny'], 'Access:');
}

type CommonArguments = Awaited<ReturnType<typeof commonOptions>['argv']> & Partial<Awaited<ReturnType<typeof closeOptions>['argv']>>;

/** One protocol on one port, with its own option values. */
interface Service {
  protocol: Protocol;
  port: number;
  settings: Readonly<Record<string, unknown>>;
}

/** `lab-server <protocol>`: the protocol's own options, then the common ones. */
export function protocolCommand(protocol: Protocol) {
  return {
    command: protocol.name,
    describe: `${protocol.summary} (RFC ${protocol.rfc}, default port ${protocol.defaultPort})`,
    builder: (y: Argv) => {
      const withPort = commonOptions(y.options(protocol.options)).options({
        port: {
          ...NUMBER_VALUE, alias: 'p', default: protocol.defaultPort, coerce: parsePort,
          describe: 'Port to listen on; 0 lets the kernel pick a free one (its number is logged)',
        },
      });
      const main = ['port', ...Object.keys(protocol.options)];
      return helpGroups(protocol.closesFirst ? closeOptions(withPort) : withPort, { main, closes: protocol.closesFirst });
    },
    handler: (args: CommonArguments & { port: number }) => serve([{ protocol, port: args.port, settings: args }], args),
  };
}

/** `lab-server all`: every protocol at once, each at base port + its well-known port. */
export const allCommand = {
  command: 'all',
  describe: `every protocol at once, each at --base-port + its well-known port (${protocols.map((p) => `${p.name} ${p.wellKnownPort}`).join(', ')})`,
  builder: (y: Argv) =>
    helpGroups(commonOptions(y), { main: ['base-port'], closes: false }).options({
      'base-port': {
        ...NUMBER_VALUE, default: DEFAULT_BASE_PORT, coerce: portInRange('base-port', 1, HIGHEST_BASE_PORT, 'so that every service gets a port'),
        describe: 'Add each well-known port to this one: 10000 puts echo on 10007',
      },
    }),
  handler: (args: CommonArguments & { basePort: number }) => {
    const services = protocols.map((protocol) => ({ protocol, port: args.basePort + protocol.wellKnownPort, settings: defaultSettings(protocol) }));
    return serve(services, args);
  },
};

/** A protocol's option values when nobody set them: each option's default. */
function defaultSettings(protocol: Protocol): Record<string, unknown> {
  return Object.fromEntries(Object.entries(protocol.options).map(([name, option]) => [name, option.default]));
}

interface RunningService {
  close(deadlineMs: number): Promise<unknown>;
}

/** Starts every service, waits for a signal, and shuts them all down. */
async function serve(services: Service[], args: CommonArguments): Promise<void> {
  const logger = createLogger(args.logFormat, args.logLevel);
  // Tuning for the whole process, as a daemon's main() does: descriptors, then the C heap.
  const addresses = args.host === undefined ? LOOPBACK_ADDRESSES.length : 1;
  const tcpServices = args.udpOnly ? 0 : services.length;
  const udpServices = args.udp || args.udpOnly ? services.length : 0;
  fitConnectionsToDescriptors(args, logger, { tcpServices, listeningSockets: (tcpServices + udpServices) * addresses });
  raiseMallocThresholds();
  // Listen for the signals before anything starts: a SIGTERM during startup is a shutdown too.
  const stopRequested = shutdownSignal(logger);
  // One event stream for every service; each observer subscribes to it once.
  const events = new EventStream();
  const log = new LogObserver(events, logger, { connectionsPerSecond: args.connectionLogs, tagServices: services.length > 1 });
  // Kernel states of the connections the log shows: looking up the others would be wasted work.
  const kernelStates = args.kernelStates ? watchKernelStates(events, { wanted: (closed) => log.isLogged(closed.conn) }) : undefined;
  const ownPorts = new Set<number>();
  const running: RunningService[] = [];
  try {
    for (const service of services) {
      if (!args.udpOnly) running.push(await startTcp(service, args, events, ownPorts));
      if (args.udp || args.udpOnly) running.push(await startUdp(service, args, events, ownPorts));
    }
  } catch (error) {
    await Promise.all(running.map((service) => service.close(0)));
    throw error;
  }
  await stopRequested;
  await Promise.all(running.map((service) => service.close(args.shutdownTimeout)));
  await kernelStates?.stop();
}

async function startTcp(service: Service, args: CommonArguments, events: EventStream, ownPorts: Set<number>): Promise<RunningService> {
  const access = accessControl(args);
  const server = createServer({
    protocol: service.protocol,
    settings: service.settings,
    events,
    resolvePeerNames: args.resolve,
    idleTimeoutMs: args.idleTimeout,
    iterative: args.iterative,
    limits: { maxConnections: args.maxConnections, ...(args.maxPerSource !== undefined && { maxPerSource: args.maxPerSource }) },
    closePolicy: { mode: args.close ?? 'fin', delayMs: args.closeDelay ?? 0 },
    ...(access && { access }),
  });
  const [first] = await server.listen({ host: args.host, port: service.port });
  ownPorts.add(first!.port);
  // With --udp and --port 0, UDP takes the port number the kernel gave TCP.
  service.port = first!.port;
  return server;
}

async function startUdp(service: Service, args: CommonArguments, events: EventStream, ownPorts: Set<number>): Promise<RunningService> {
  const access = accessControl(args);
  const server = new DatagramServer({
    ...(access && { access }),
    protocol: service.protocol,
    settings: service.settings,
    events,
    ownPorts,
    budget: { burst: args.udpBurst, perSecond: args.udpRate },
  });
  const [first] = await server.listen({ host: args.host, port: service.port });
  ownPorts.add(first!.port);
  return server;
}

/**
 * Lowers --max-connections (and says so) if the descriptor limit could not hold that many. Every
 * TCP service may fill its own --max-connections; the listening sockets are held besides. (Node
 * raises the soft limit to the hard one at startup, so the hard limit is the one that counts.)
 */
function fitConnectionsToDescriptors(args: CommonArguments, logger: Logger, { tcpServices, listeningSockets }: { tcpServices: number; listeningSockets: number }): void {
  const limit = openFilesLimit();
  if (limit === undefined || tcpServices === 0) return;
  const fits = Math.max(1, Math.floor(connectionsWithin(limit - listeningSockets) / tcpServices));
  if (args.maxConnections <= fits) return;
  logger.warn(
    { event: 'limit-lowered', maxConnections: fits, requested: args.maxConnections, openFilesLimit: limit },
    `--max-connections lowered from ${args.maxConnections} to ${fits}${tcpServices > 1 ? ` per service (${tcpServices} services)` : ''}: ` +
      `this process may open only ${limit} files, and beyond that clients would be dropped without a word; ` +
      'raise the hard limit to allow more (ulimit -Hn; LimitNOFILE= under systemd)',
  );
  args.maxConnections = fits;
}

/** --allow/--deny, for TCP and UDP alike; undefined when neither is given. */
function accessControl({ allow, deny }: CommonArguments): AccessControl | undefined {
  return allow.length + deny.length > 0 ? new AccessControl(allow, deny) : undefined;
}

/** Resolves on the first SIGINT/SIGTERM; a second one exits at once. */
async function shutdownSignal(logger: Logger): Promise<void> {
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
  logger.info({ event: 'shutdown', signal }, `${signal}: shutting down, no longer accepting connections or datagrams (press Ctrl-C again to exit now)`);
}
