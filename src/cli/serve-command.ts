/**
 * `lab-server <protocol>` and `lab-server all`: serve protocols until Ctrl-C.
 * Flags become framework options here; signals become a graceful shutdown.
 */
import type { Argv, Options } from 'yargs';
import type { Logger } from 'pino';
import { LabError, usageError } from '../errors.js';
import { AccessControl } from '../framework/access-control.js';
import { DatagramServer, DEFAULT_DATAGRAM_BUDGET, DEFAULT_SERVICE_REPLY_BUDGET, type DatagramSummary } from '../framework/datagram-server.js';
import { formatEndpoint, type Endpoint } from '../framework/endpoint.js';
import { escapeText, quoted } from '../framework/escape.js';
import { EventStream } from '../framework/events.js';
import { LOOPBACK_ADDRESSES } from '../framework/listen.js';
import type { Protocol } from '../framework/protocol.js';
import { PROXY_VERSIONS } from '../framework/proxy-protocol.js';
import { WORKER_ENV } from '../framework/workers/messages.js';
import type { WorkerPool } from '../framework/workers/pool.js';
import { createServer, DEFAULT_EVICT_STALLED_AFTER_MS, DEFAULT_MAX_CONNECTIONS, DEFAULT_PROXY_TIMEOUT_MS, type ConnectionHandOff, type LabServer, type ServerProgress } from '../framework/server.js';
import { DEFAULT_MAX_SEND_QUEUE_BYTES } from '../framework/send-queue.js';
import { probeSocket, type ProbedSocket } from '../framework/socket-probe.js';
import type { Dashboard } from '../observers/dashboard/server.js';
import { watchKernelStates } from '../observers/kernel-states.js';
import { DEFAULT_CONNECTION_LOGS_PER_SECOND, LogObserver } from '../observers/log.js';
import { MetricsObserver } from '../observers/metrics.js';
import { serveMetrics } from '../observers/metrics-endpoint.js';
import { protocols } from '../protocols/index.js';
import { countOption, DASHBOARD_OPTION, HIGHEST_PORT, hostOption, listenAddressOption, NUMBER_VALUE, parseCloseMode, parsePort, portInRange, positiveIntegerOption, rateOption, secondsOption, subnetsOption, VALUE_REQUIRED, workersOption } from './arguments.js';
import { connectionsWithin, openFilesLimit } from './descriptor-limit.js';
import { createLogger, LOG_FORMATS, LOG_LEVELS, type LogSink } from './logger.js';
import { raiseMallocThresholds } from './malloc-thresholds.js';
import { handleSignals } from './signals.js';
import { inetdSocket, logDestination, requireSystemdSockets, systemdSockets, type HandedOver } from './socket-activation.js';

const DEFAULT_SHUTDOWN_SECONDS = 5;
/** At exit, how long the log's reader gets to take the last lines, if it has stopped reading. */
export const LOG_FLUSH_DEADLINE_MS = 2000;
const DEFAULT_BASE_PORT = 10000;
/** The highest --base-port that leaves every service a port: 65535 less the highest well-known port (time's 37). */
const HIGHEST_BASE_PORT = HIGHEST_PORT - Math.max(...protocols.map((p) => p.wellKnownPort));

/**
 * Options of the whole process, not of one service: where and how it logs, and how it stops.
 * In a --config file they go in [defaults] (see config-file.ts).
 */
export const PROCESS_OPTIONS = {
  'log-format': { ...VALUE_REQUIRED, choices: LOG_FORMATS, defaultDescription: 'pretty on a terminal, json otherwise', describe: 'Log as JSON lines or as readable text' },
  'log-file': { ...VALUE_REQUIRED, type: 'string', describe: 'Append the log to this file instead of writing it to stdout (reopened on SIGHUP and SIGUSR1, for logrotate)' },
  'log-level': { ...VALUE_REQUIRED, choices: LOG_LEVELS, default: 'info' as const, describe: 'Least severe log level shown (debug shows each connection state change)' },
  'kernel-states': {
    type: 'boolean', default: true,
    describe: "After each close, log the kernel's TCP state for the socket pair (TIME_WAIT or nothing), read from /proc/net/tcp (Linux); --no-kernel-states turns it off",
  },
  'connection-logs': {
    ...NUMBER_VALUE, default: DEFAULT_CONNECTION_LOGS_PER_SECOND, coerce: countOption('connection-logs'),
    describe: 'Log at most this many connections a second in full (after a burst of twice as many); the rest are served and counted; 0 logs every one',
  },
  'shutdown-timeout': {
    ...NUMBER_VALUE, default: DEFAULT_SHUTDOWN_SECONDS, coerce: secondsOption('shutdown-timeout'),
    describe: 'On Ctrl-C or SIGTERM, give open connections this many seconds to finish, then close them',
  },
  metrics: {
    ...VALUE_REQUIRED, type: 'string', coerce: listenAddressOption('metrics'),
    describe: 'Also serve counters for Prometheus at http://ADDR:PORT/metrics (a port alone listens on 127.0.0.1)',
  },
  dashboard: DASHBOARD_OPTION,
} satisfies Record<string, Options>;

/** Options of each service: where it listens, its limits, who may connect. */
export const SERVICE_OPTIONS = {
  host: {
    ...VALUE_REQUIRED, type: 'string', coerce: hostOption,
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
  'udp-service-rate': {
    ...NUMBER_VALUE, default: DEFAULT_SERVICE_REPLY_BUDGET.repliesPerSecond, coerce: positiveIntegerOption('udp-service-rate'),
    describe: 'UDP: replies per second from the whole service, to every peer together (after a burst of twice as many)',
  },
  'udp-service-bytes': {
    ...NUMBER_VALUE, default: DEFAULT_SERVICE_REPLY_BUDGET.bytesPerSecond, coerce: positiveIntegerOption('udp-service-bytes'),
    describe: 'UDP: reply bytes per second from the whole service, to every peer together (after a burst of twice as many)',
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
  rate: {
    ...VALUE_REQUIRED, type: 'string', coerce: rateOption, defaultDescription: 'no limit',
    describe: 'Refuse (with RST) new connections beyond N a second (`20` or `20/s`), after a burst of --rate-burst, like xinetd cps but never switching the service off',
  },
  'rate-burst': {
    ...NUMBER_VALUE, coerce: positiveIntegerOption('rate-burst'), defaultDescription: 'twice --rate',
    describe: 'New connections let through at once before --rate applies',
  },
  allow: { ...VALUE_REQUIRED, type: 'string', array: true, default: [] as string[], coerce: subnetsOption, describe: 'Serve only these addresses or subnets (repeatable), like xinetd only_from' },
  deny: { ...VALUE_REQUIRED, type: 'string', array: true, default: [] as string[], coerce: subnetsOption, describe: 'Refuse these addresses or subnets (repeatable), like xinetd no_access' },
  'evict-stalled-after': {
    ...NUMBER_VALUE, default: DEFAULT_EVICT_STALLED_AFTER_MS / 1000, coerce: secondsOption('evict-stalled-after'),
    describe: 'When --max-connections is reached, reset the connection that has moved no byte either way for longest, if for this many seconds, to let a new client in (against slowloris); 0 never does',
  },
  'max-send-queue': {
    ...NUMBER_VALUE, default: DEFAULT_MAX_SEND_QUEUE_BYTES, coerce: countOption('max-send-queue'),
    describe: "Stop writing to a connection (chargen) while this many bytes are unacknowledged, read from the kernel's Send-Q, so a client that never reads cannot pin megabytes of kernel memory (one that reads earns more); 0 lets the kernel's buffers alone bound it",
  },
  'idle-timeout': {
    ...NUMBER_VALUE, default: 0, coerce: secondsOption('idle-timeout'),
    describe: "Close a connection after the client has sent nothing for this many seconds (the server's own writes do not count); 0 never does",
  },
  'proxy-protocol': {
    ...VALUE_REQUIRED, choices: PROXY_VERSIONS,
    describe: "Behind a load balancer (HAProxy's send-proxy / send-proxy-v2): every TCP connection starts with a PROXY protocol header naming the real client, whom the logs and limits then see; needs --proxy-from",
  },
  'proxy-from': {
    ...VALUE_REQUIRED, type: 'string', array: true, default: [] as string[], coerce: subnetsOption,
    describe: 'The proxies trusted to send that header (repeatable addresses or subnets); any other peer is refused',
  },
  'proxy-timeout': {
    ...NUMBER_VALUE, default: DEFAULT_PROXY_TIMEOUT_MS / 1000, coerce: secondsOption('proxy-timeout'),
    describe: 'Refuse a connection whose PROXY header is not whole after this many seconds',
  },
} satisfies Record<string, Options>;

/** Options that cannot be given together (the same pairs on the command line and in a --config file). */
export const CONFLICTING_OPTIONS = [['udp', 'udp-only']] as const;

/** Options every server has, whatever it serves. */
function commonOptions(y: Argv) {
  return y
    .options({
      ...SERVICE_OPTIONS,
      ...PROCESS_OPTIONS,
      workers: {
        ...VALUE_REQUIRED, type: 'string', coerce: workersOption, defaultDescription: 'one process, no workers',
        describe: 'Serve TCP connections in N worker processes (auto: one per CPU); this process accepts them, keeps every limit exact across the workers, and replaces a worker that dies; UDP stays in this process',
      },
      systemd: {
        type: 'boolean',
        describe: 'Serve the sockets systemd passes (socket activation: LISTEN_FDS, descriptors 3 and up), and fail without them; without this flag they are served when present',
      },
    })
    .conflicts(Object.fromEntries(CONFLICTING_OPTIONS))
    // Handed-over sockets come bound already: where and which transport are the supervisor's to say.
    .conflicts('systemd', ['host', 'udp', 'udp-only'])
    // UDP alone leaves a worker nothing to do (UDP stays in the primary); --iterative: checkWorkerOptions.
    .conflicts('workers', 'udp-only')
    .strict();
}

/** The close-behaviour switches, for protocols that close first. */
export const CLOSE_OPTIONS = {
  close: {
    ...VALUE_REQUIRED, type: 'string', default: 'fin', coerce: parseCloseMode,
    describe: 'How to close: fin (orderly; this side enters TIME_WAIT) or rst (abortive, SO_LINGER 0; no TIME_WAIT). --no-close never closes',
  },
  'close-delay': { ...NUMBER_VALUE, default: 0, coerce: secondsOption('close-delay'), describe: 'Wait this many seconds after sending, then close' },
} satisfies Record<string, Options>;

function closeOptions<T>(y: Argv<T>) {
  return y.options(CLOSE_OPTIONS);
}

/** --port of `lab-server <protocol>`, whose default is the protocol's own port. */
export const portOption = (protocol: Protocol) => ({
  ...NUMBER_VALUE, alias: 'p', default: protocol.defaultPort, coerce: parsePort,
  describe: 'Port to listen on; 0 lets the kernel pick a free one (its number is logged)',
}) satisfies Options;

/**
 * The order of --help: what a first run needs (where to listen, UDP, the protocol's own options)
 * first, then each concern in a group of its own. yargs lists ungrouped options first otherwise.
 */
function helpGroups<T>(y: Argv<T>, { main, closes, inetd }: { main: string[]; closes: boolean; inetd: boolean }): Argv<T> {
  y.group([...main, 'host', 'udp', 'udp-only', 'iterative', 'help', 'version'], 'Options:');
  if (closes) y.group(['close', 'close-delay'], 'Close behaviour:');
  return y
    .group(['log-format', 'log-level', 'log-file', 'kernel-states', 'connection-logs', 'resolve'], 'Logging:')
    .group(['metrics', 'dashboard'], 'Metrics and dashboard:')
    .group(['max-connections', 'max-per-source', 'rate', 'rate-burst', 'evict-stalled-after', 'max-send-queue', 'idle-timeout', 'shutdown-timeout', 'udp-burst', 'udp-rate', 'udp-service-rate', 'udp-service-bytes'], 'Limits:')
    .group(['allow', 'deny'], 'Access:')
    .group(['workers', 'proxy-protocol', 'proxy-from', 'proxy-timeout'], 'Several cores, behind a proxy (docs/guides/scaling.md):')
    .group(inetd ? ['systemd', 'inetd'] : ['systemd'], 'Sockets from a supervisor (docs/guides/running-as-a-daemon.md):');
}

export type CommonArguments = Awaited<ReturnType<typeof commonOptions>['argv']> & Partial<Awaited<ReturnType<typeof closeOptions>['argv']>>;

/** One protocol on one port, with its own option values. */
export interface Service {
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
      const withPort = commonOptions(y.options(protocol.options))
        .options({
          port: portOption(protocol),
          inetd: {
            type: 'boolean',
            describe: 'Serve the socket on descriptor 0, as inetd, xinetd and systemd (StandardInput=socket) hand it over: one connection (then exit), a listening socket, or a UDP socket; the log never goes to that socket',
          },
        })
        .conflicts('inetd', ['systemd', 'host', 'udp', 'udp-only', 'workers']);
      const main = ['port', ...Object.keys(protocol.options)];
      return helpGroups(protocol.closesFirst ? closeOptions(withPort) : withPort, { main, closes: protocol.closesFirst, inetd: true });
    },
    handler: (args: CommonArguments & { port: number; inetd?: boolean }) => serve([{ protocol, port: args.port, settings: args }], args),
  };
}

/** `lab-server all`: every protocol at once, each at base port + its well-known port. */
export const allCommand = {
  command: 'all',
  describe: `every protocol at once, each at --base-port + its well-known port (${protocols.map((p) => `${p.name} ${p.wellKnownPort}`).join(', ')})`,
  builder: (y: Argv) =>
    helpGroups(commonOptions(y), { main: ['base-port'], closes: false, inetd: false }).options({
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

/** One service's server over one transport: a LabServer (TCP) or a DatagramServer (UDP). */
export interface ServiceServer {
  readonly protocol: Protocol;
  listen(on: { host: string | undefined; port: number }): Promise<Endpoint[]>;
  close(deadlineMs: number): Promise<unknown>;
  summary(): ServerProgress | DatagramSummary;
}

/** Starts every service, waits for a signal, and shuts them all down. */
async function serve(services: Service[], args: CommonArguments & { inetd?: boolean }): Promise<void> {
  checkProxyOptions(args);
  checkWorkerOptions(args);
  if (process.env[WORKER_ENV] !== undefined) return serveAsWorker(services, args);
  // Sockets a supervisor handed over: when there are some, they are served and nothing is bound here.
  const handedOver = handedOverSockets(args);
  const { logger, sink } = createLogger(args.logFormat, args.logLevel, logDestination(args.logFile, handedOver));
  try {
    await serveUntilStopped(services, args, handedOver, logger, sink);
  } finally {
    // A normal exit writes every line first (the summary last), unless the reader is stuck.
    await sink.flush(LOG_FLUSH_DEADLINE_MS);
  }
}

async function serveUntilStopped(services: Service[], args: CommonArguments & { inetd?: boolean }, handedOver: HandedOver[], logger: Logger, sink: LogSink): Promise<void> {
  const running: ServiceServer[] = [];
  // Listen for the signals before anything starts: a SIGTERM during startup is a shutdown too.
  const stopRequested = handleSignals(logger, sink, { status: () => logStatus(logger, running) });
  const inherited = await Promise.all(handedOver.map(async (socket) => ({ ...socket, ...(await probeSocket(socket.fd)) })));
  // Tuning for the whole process, as a daemon's main() does: descriptors, then the C heap.
  fitConnectionsToDescriptors(args, logger, inherited.length > 0 ? inheritedSocketCounts(inherited) : boundSocketCounts(services, args));
  raiseMallocThresholds();
  // --metrics and --dashboard listen before any service: a port in use stops the start with nothing bound.
  const observers = await observeServices(logger, sink, args, services.length > 1);
  const { events } = observers;
  const workers = args.workers === undefined ? undefined : await workerPool(args.workers, events, logger);
  const ownPorts = new Set<number>();
  const connections: Promise<void>[] = [];
  try {
    if (inherited.length === 0) {
      for (const service of services) running.push(...(await listenAll(serversFor(service, args, events, ownPorts, workers), service, args, ownPorts)));
    } else {
      await serveHandedOver(inherited, services, args, events, ownPorts, running, connections, workers);
    }
  } catch (error) {
    await Promise.all(running.map((server) => server.close(0)));
    await observers.stop();
    throw error;
  }
  workers?.start();
  observers.announce();
  // A connection handed over alone (inetd's nowait, systemd's Accept=yes) is this process's whole
  // job: when it is closed, the process exits, and the supervisor starts another for the next one.
  const onlyConnections = connections.length > 0 && connections.length === inherited.length;
  const stop = await (onlyConnections ? Promise.race([stopRequested, Promise.all(connections).then(() => undefined)]) : stopRequested);
  await Promise.all(running.map((server) => server.close(stop?.speed === 'now' ? 0 : args.shutdownTimeout)));
  await observers.stop();
}

/**
 * --dashboard: the page, fed by the same event stream as the log. Its module (node:http, the page
 * itself) is loaded only then: a server without it starts no slower for its existence.
 */
async function startDashboard(listen: { address: string; port: number }, events: EventStream): Promise<Dashboard> {
  const { Dashboard } = await import('../observers/dashboard/server.js');
  const dashboard = await Dashboard.start({ listen });
  dashboard.state.follow(events);
  return dashboard;
}

/**
 * One event stream for every service of this process, and its observers, each subscribed once:
 * the log, the kernel states of the connections the log or the page shows (looking up the others
 * would be wasted work), and, when asked for, --metrics and --dashboard, which listen now, before
 * any service. `announce()` logs the page's address after the services' `listening` lines (a
 * script waiting for the first one still gets it first); `stop()` ends them all.
 */
export async function observeServices(
  logger: Logger,
  sink: LogSink,
  { connectionLogs, kernelStates, metrics: metricsOn, dashboard: dashboardOn }: Pick<CommonArguments, 'connectionLogs' | 'kernelStates' | 'metrics' | 'dashboard'>,
  tagServices: boolean,
) {
  const events = new EventStream();
  const log = new LogObserver(events, logger, { connectionsPerSecond: connectionLogs, tagServices, droppedLines: sink.droppedLines });
  const metrics = metricsOn === undefined ? undefined : await serveMetrics(new MetricsObserver(events), metricsOn);
  if (metrics !== undefined) {
    const url = `http://${formatEndpoint(metrics.local)}/metrics`;
    logger.info({ event: 'metrics', url }, `metrics for Prometheus at ${url}`);
  }
  const dashboard = dashboardOn === undefined ? undefined : await startDashboard(dashboardOn, events).catch(async (error: unknown) => {
    await metrics?.close();
    throw error;
  });
  const reporter = kernelStates ? watchKernelStates(events, { wanted: (closed) => log.isLogged(closed.conn) || dashboard?.state.shows(closed) === true }) : undefined;
  return {
    events,
    announce(): void {
      if (dashboard !== undefined) logger.info({ event: 'dashboard', url: dashboard.url }, `dashboard: ${dashboard.url} (a live, read-only page of the connections and their TCP states)`);
    },
    async stop(): Promise<void> {
      await reporter?.stop();
      await metrics?.close();
      await dashboard?.close();
    },
  };
}

/** --inetd's socket, or systemd's (read, and removed from the environment, in every case, as sd_listen_fds(3) does). */
function handedOverSockets(args: CommonArguments & { inetd?: boolean }): HandedOver[] {
  const fromSystemd = args.systemd ? requireSystemdSockets(process.env, process.pid) : systemdSockets(process.env, process.pid);
  return args.inetd ? [inetdSocket()] : fromSystemd;
}

/**
 * The service that serves a handed-over socket: the protocol its systemd name gives
 * (FileDescriptorName=daytime), else the command's own. `lab-server all` has no protocol of its
 * own, so there every socket must be named.
 */
function serviceFor(socket: HandedOver, services: Service[]): Service {
  const named = protocols.find((protocol) => protocol.name === socket.name);
  if (named !== undefined) return services.find((service) => service.protocol === named) ?? { protocol: named, port: 0, settings: defaultSettings(named) };
  if (services.length === 1) return services[0]!;
  const given = socket.name === undefined ? 'has no name' : `is named ${quoted(socket.name)}`;
  throw new LabError('ERR_BAD_DESCRIPTOR', `descriptor ${socket.fd} ${given}: lab-server all serves each socket from systemd as the protocol its FileDescriptorName= names (${protocols.map((p) => p.name).join(', ')})`);
}

/**
 * Serves the sockets a supervisor handed over, each by the service serviceFor() picks: a listening
 * or UDP socket as if bound here, a connection on its own (its end is added to `connections`).
 */
async function serveHandedOver(
  inherited: readonly (HandedOver & ProbedSocket)[], services: Service[], args: CommonArguments, events: EventStream,
  ownPorts: Set<number>, running: ServiceServer[], connections: Promise<void>[], workers?: ConnectionHandOff,
): Promise<void> {
  for (const socket of inherited) {
    const service = serviceFor(socket, services);
    const { fd, by, role, local, remote, name } = socket;
    events.forService(service.protocol.name, role === 'datagram' ? 'udp' : 'tcp').emit('handed-over', {
      fd, by, role, local, ...(remote !== undefined && { remote }), ...(name !== undefined && { name: escapeText(name) }),
    });
    ownPorts.add(local.port);
    if (role === 'datagram') {
      const server = udpServer(service, args, events, ownPorts);
      await server.listen({ fd, family: socket.family });
      running.push(server);
      continue;
    }
    const server = tcpServer(service, args, events, workers);
    if (role === 'listening') await server.listen({ fd });
    else connections.push(server.serveConnection(fd));
    running.push(server);
  }
}

/**
 * A service's servers, made but not listening yet: TCP, UDP, or both. Making them runs the
 * protocol's setup (qotd reads its --quotes file here), so a mistake there is found before any
 * socket is bound.
 */
export function serversFor(service: Service, args: CommonArguments, events: EventStream, ownPorts: Set<number>, workers?: ConnectionHandOff): ServiceServer[] {
  const tcp = args.udpOnly ? [] : [tcpServer(service, args, events, workers)];
  const udp = args.udp || args.udpOnly ? [udpServer(service, args, events, ownPorts)] : [];
  return [...tcp, ...udp];
}

/**
 * Binds a service's servers on its port, on the loopback addresses or --host, and returns them;
 * if one cannot listen, closes those that already do. With --udp and port 0, UDP takes the port
 * number the kernel gave TCP (and `service.port` becomes it).
 */
export async function listenAll(servers: ServiceServer[], service: Service, args: CommonArguments, ownPorts: Set<number>): Promise<ServiceServer[]> {
  const listening: ServiceServer[] = [];
  try {
    for (const server of servers) {
      const [first] = await server.listen({ host: args.host, port: service.port });
      listening.push(server);
      ownPorts.add(first!.port);
      service.port = first!.port;
    }
  } catch (error) {
    await Promise.all(listening.map((server) => server.close(0)));
    throw error;
  }
  return listening;
}

function tcpServer(service: Service, args: CommonArguments, events: EventStream, workers?: ConnectionHandOff): LabServer {
  const access = accessControl(args);
  return createServer({
    ...(workers && { handOff: workers }),
    protocol: service.protocol,
    settings: service.settings,
    events,
    resolvePeerNames: args.resolve,
    idleTimeoutMs: args.idleTimeout,
    iterative: args.iterative,
    limits: {
      maxConnections: args.maxConnections,
      evictStalledAfterMs: args.evictStalledAfter,
      maxSendQueueBytes: args.maxSendQueue,
      ...(args.maxPerSource !== undefined && { maxPerSource: args.maxPerSource }),
      ...(args.rate !== undefined && { rate: { perSecond: args.rate, burst: args.rateBurst ?? 2 * args.rate } }),
    },
    closePolicy: { mode: args.close ?? 'fin', delayMs: args.closeDelay ?? 0 },
    ...(access && { access }),
    ...(args.proxyProtocol !== undefined && {
      proxyProtocol: { versions: args.proxyProtocol, trusted: new AccessControl(args.proxyFrom), timeoutMs: args.proxyTimeout },
    }),
  });
}

/**
 * --workers: N processes running this same program, which serve the connections this one accepts
 * (framework/workers/). They start once the services listen; until one is ready, admitted
 * connections wait. Their comings and goings are this process's to log. The module loads only
 * then: a server without workers starts no slower for their existence.
 */
async function workerPool(count: number, events: EventStream, logger: Logger): Promise<WorkerPool> {
  const { WorkerPool } = await import('../framework/workers/pool.js');
  const pool = new WorkerPool(count, { module: process.argv[1]!, args: process.argv.slice(2), execArgv: process.execArgv }, events);
  pool.on('worker-started', ({ worker, pid }) => logger.info({ event: 'worker-started', worker, workerPid: pid }, `worker started (pid ${pid})`));
  pool.on('worker-exited', ({ worker, pid, code, signal, lost, restartInMs }) => {
    if (restartInMs === null && code === 0) return; // a worker that drained and stopped, as asked
    const how = signal === null ? `exited with status ${code}` : `was killed by ${signal}`;
    const restart = restartInMs === null ? '' : restartInMs === 0 ? '; starting a new one' : `; starting a new one in ${restartInMs} ms (it died young)`;
    logger.warn({ event: 'worker-exited', worker, workerPid: pid, code, signal, lost, restartInMs }, `worker (pid ${pid}) ${how}: ${lost} connection(s) ended with it${restart}`);
  });
  return pool;
}

/** --iterative serves one connection at a time: several processes would have nothing to share. (yargs' conflicts() sees its default, false, as given.) */
function checkWorkerOptions({ workers, iterative }: CommonArguments): void {
  if (workers !== undefined && iterative) throw usageError('ERR_USAGE', '--workers with --iterative: an iterative server serves one connection at a time, in one process; drop one of them');
}

/** A --workers worker: the same services, serving the connections the primary hands over. */
async function serveAsWorker(services: Service[], args: CommonArguments): Promise<void> {
  raiseMallocThresholds();
  const events = new EventStream();
  const servers = new Map(services.map((service) => [service.protocol.name, tcpServer(service, args, events)]));
  const { serveForPrimary } = await import('../framework/workers/worker.js');
  await serveForPrimary(servers, events);
}

/**
 * The PROXY protocol spec: a receiver is configured, never guesses, and takes headers only from
 * proxies it trusts. So --proxy-protocol and --proxy-from come together, or not at all.
 */
function checkProxyOptions({ proxyProtocol, proxyFrom }: CommonArguments): void {
  if (proxyProtocol !== undefined && proxyFrom.length === 0) {
    throw usageError('ERR_USAGE', '--proxy-protocol needs --proxy-from: name the proxies trusted to send the header (e.g. --proxy-from 127.0.0.1)');
  }
  if (proxyProtocol === undefined && proxyFrom.length > 0) {
    throw usageError('ERR_USAGE', '--proxy-from without --proxy-protocol: say which header the proxy sends (v1, v2 or any)');
  }
}

function udpServer(service: Service, args: CommonArguments, events: EventStream, ownPorts: Set<number>): DatagramServer {
  const access = accessControl(args);
  return new DatagramServer({
    ...(access && { access }),
    protocol: service.protocol,
    settings: service.settings,
    events,
    ownPorts,
    budget: { burst: args.udpBurst, perSecond: args.udpRate },
    serviceBudget: { repliesPerSecond: args.udpServiceRate, bytesPerSecond: args.udpServiceBytes },
  });
}

/** TCP services, and every socket held besides connections, when this process binds its own. */
export function boundSocketCounts(services: Service[], args: CommonArguments): SocketCounts {
  const addresses = args.host === undefined ? LOOPBACK_ADDRESSES.length : 1;
  const tcpServices = args.udpOnly ? 0 : services.length;
  const udpServices = args.udp || args.udpOnly ? services.length : 0;
  return { tcpServices, listeningSockets: (tcpServices + udpServices) * addresses };
}

/** The same for handed-over sockets: each TCP one is a service of its own. */
function inheritedSocketCounts(inherited: readonly ProbedSocket[]): SocketCounts {
  return { tcpServices: inherited.filter(({ role }) => role !== 'datagram').length, listeningSockets: inherited.length };
}

export interface SocketCounts {
  tcpServices: number;
  listeningSockets: number;
}

/**
 * Lowers --max-connections (and says so) if the descriptor limit could not hold that many. Every
 * TCP service may fill its own --max-connections; the listening sockets are held besides. (Node
 * raises the soft limit to the hard one at startup, so the hard limit is the one that counts.)
 */
export function fitConnectionsToDescriptors(args: CommonArguments, logger: Logger, { tcpServices, listeningSockets }: SocketCounts): void {
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

/**
 * SIGUSR2: one line saying what each server is doing, from its own counters: TCP connections open
 * now and served so far, UDP datagrams received and answered.
 */
export function logStatus(logger: Logger, servers: readonly ServiceServer[]): void {
  const services = servers.map((server) => {
    const summary = server.summary();
    return { protocol: server.protocol.name, transport: 'open' in summary ? 'tcp' : 'udp', ...summary };
  });
  const text = services.map((s) => ('open' in s ? `${s.protocol}: ${s.open} open, ${s.connections} served` : `${s.protocol}/udp: ${s.received} received, ${s.answered} answered`));
  const uptimeSeconds = Math.round(process.uptime());
  logger.info({ event: 'status', services, uptimeSeconds }, `status: ${text.join('; ') || 'no services'} (up ${uptimeSeconds} s)`);
}
