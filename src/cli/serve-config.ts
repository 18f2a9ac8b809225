/**
 * `lab-server serve --config FILE`: serve the services a config file lists (config-file.ts), and
 * on SIGHUP read it again and apply the difference without a restart, as xinetd and nginx do:
 *
 * - a service whose settings did not change keeps its sockets, and its connections go on;
 * - a changed service is restarted: its old listener closes, a new one opens with the new
 *   settings, and the old connections drain as on SIGTERM (they finish with the old settings,
 *   until --shutdown-timeout closes what is left);
 * - a removed service is drained the same way; an added one starts;
 * - a file with a mistake (its syntax, a value, a quotes file, a port in use for a new service)
 *   changes nothing: the mistake is logged, and the running services go on as they were.
 */
import type { Argv } from 'yargs';
import type { Logger } from 'pino';
import { LabError } from '../errors.js';
import { escapeText } from '../framework/escape.js';
import { EventStream } from '../framework/events.js';
import { LabServer } from '../framework/server.js';
import { protocols } from '../protocols/index.js';
import { VALUE_REQUIRED } from './arguments.js';
import { readConfig, type Config, type ConfigRules, type ServiceConfig } from './config-file.js';
import { createLogger, type LogSink } from './logger.js';
import { raiseMallocThresholds } from './malloc-thresholds.js';
import {
  boundSocketCounts, CLOSE_OPTIONS, CONFLICTING_OPTIONS, fitConnectionsToDescriptors, listenAll, LOG_FLUSH_DEADLINE_MS, logStatus, observeServices, portOption,
  PROCESS_OPTIONS, SERVICE_OPTIONS, serversFor, type CommonArguments, type Service, type ServiceServer,
} from './serve-command.js';
import { handleSignals } from './signals.js';

/** A config file holds the command line's options: the same definitions check both. */
export const CONFIG_RULES: ConfigRules = {
  processOptions: PROCESS_OPTIONS,
  serviceOptions: SERVICE_OPTIONS,
  protocolOptions: (protocol) => ({ port: portOption(protocol), ...protocol.options, ...(protocol.closesFirst ? CLOSE_OPTIONS : {}) }),
  conflicts: CONFLICTING_OPTIONS,
  protocols,
};

export const serveCommand = {
  command: 'serve',
  describe: 'serve the services a TOML file lists (--config), like xinetd; SIGHUP reloads it',
  builder: (y: Argv) =>
    y
      .options({
        config: {
          ...VALUE_REQUIRED, type: 'string', demandOption: true,
          describe: 'The TOML file: a [defaults] table, and a table per service named by its protocol ([echo], [daytime], ...) whose keys are the flags of lab-server <protocol> (see contrib/lab-server.toml)',
        },
        check: { type: 'boolean', default: false, describe: 'Check the file, say what it would serve, and exit (0 when it is valid), like nginx -t; ports are not tried' },
      })
      .strict(),
  handler: ({ config, check }: { config: string; check: boolean }) => (check ? checkConfig(config) : serveConfig(config)),
};

/** --check: everything but binding, so that a quotes file or a protocol's own check is tried too. */
async function checkConfig(file: string): Promise<void> {
  const config = await readConfig(file, CONFIG_RULES);
  const events = new EventStream();
  const described = config.services.map((service) => {
    const args = argumentsOf(service);
    forConfig(file, service, () => serversFor(serviceOf(service), args, events, new Set()));
    const transports = args.udpOnly ? 'UDP' : args.udp ? 'TCP and UDP' : 'TCP';
    return `${service.protocol.name} on port ${args.port} (${transports})`;
  });
  process.stdout.write(`${file}: valid; it serves ${described.join(', ')}\n`);
}

async function serveConfig(file: string): Promise<void> {
  const config = await readConfig(file, CONFIG_RULES);
  const settings = config.process as Pick<CommonArguments, 'logFormat' | 'logLevel' | 'logFile' | 'connectionLogs' | 'kernelStates' | 'shutdownTimeout' | 'metrics' | 'dashboard'>;
  const { logger, sink } = createLogger(settings.logFormat, settings.logLevel, settings.logFile === undefined ? undefined : { file: settings.logFile });
  try {
    await serveConfigUntilStopped(file, config, settings, logger, sink);
  } finally {
    // A normal exit writes every line first (the summary last), unless the reader is stuck.
    await sink.flush(LOG_FLUSH_DEADLINE_MS);
  }
}

async function serveConfigUntilStopped(file: string, config: Config, settings: Pick<CommonArguments, 'connectionLogs' | 'kernelStates' | 'metrics' | 'dashboard'>, logger: Logger, sink: LogSink): Promise<void> {
  let services: ConfiguredServices | undefined;
  // Listen for the signals before anything starts: a SIGTERM during startup is a shutdown too.
  const stopRequested = handleSignals(logger, sink, { reload: async () => services?.reload(), status: () => services?.status() });
  raiseMallocThresholds();
  const observers = await observeServices(logger, sink, settings, true);
  services = new ConfiguredServices(file, config, logger, observers.events);
  try {
    await services.start();
  } catch (error) {
    await observers.stop();
    throw error;
  }
  observers.announce();
  const { speed } = await stopRequested;
  await services.stop(speed === 'now' ? 0 : undefined);
  await observers.stop();
}

/** A service of the file, running: what it was started from, and its servers (TCP, UDP or both). */
interface Running {
  config: ServiceConfig;
  servers: ServiceServer[];
  port: number;
}

/** A service of the file, made but not yet listening. */
interface Prepared {
  config: ServiceConfig;
  service: Service;
  args: CommonArguments;
  servers: ServiceServer[];
}

/** What a reload did to each service, by name. */
interface ReloadOutcome {
  unchanged: string[];
  restarted: string[];
  started: string[];
  stopped: string[];
  /** Restarted services that could not listen again, with why. */
  failed: string[];
  /** Options of the whole process that changed, which take effect at the next start. */
  needRestart: string[];
}

/** The services of one config file, as they run, and how a reload changes them. */
class ConfiguredServices {
  private readonly running = new Map<string, Running>();
  /** Servers stopped by a reload, still draining their connections. */
  private readonly draining = new Map<ServiceServer, Promise<unknown>>();
  /** Every port this process serves, so that UDP never answers its own datagrams. */
  private readonly ownPorts = new Set<number>();

  constructor(
    private readonly file: string,
    private config: Config,
    private readonly logger: Logger,
    private readonly events: EventStream,
  ) {}

  /** Starts every service of the file; if one cannot, closes the others and throws (nothing is served). */
  async start(): Promise<void> {
    const prepared = this.prepare(this.config.services, this.config);
    try {
      for (const each of prepared) await this.listen(each);
    } catch (error) {
      await Promise.all([...this.running.values()].flatMap(({ servers }) => servers.map((server) => server.close(0))));
      throw error;
    }
  }

  /** SIGHUP: reads the file again and applies it. Never throws: the outcome is logged, either way. */
  async reload(): Promise<void> {
    try {
      const outcome = await this.apply(await readConfig(this.file, CONFIG_RULES));
      this.logReload(outcome);
    } catch (error) {
      const message = escapeText(error instanceof Error ? error.message : String(error));
      this.logger.error({ event: 'reload-failed', file: escapeText(this.file), error: message }, `SIGHUP: ${escapeText(this.file)} not applied, the services go on as they were: ${message}`);
    }
  }

  /** SIGUSR2: one status line, the draining servers included. */
  status(): void {
    logStatus(this.logger, [...[...this.running.values()].flatMap(({ servers }) => servers), ...this.draining.keys()]);
  }

  /**
   * Stops every service: each drains for --shutdown-timeout (or `deadlineMs`: 0 closes every
   * connection now), together with those a reload stopped earlier.
   */
  async stop(deadlineMs = this.shutdownMs()): Promise<void> {
    // Those a reload stopped are already draining, with their own deadline; a stop "now" ends them too.
    if (deadlineMs === 0) for (const server of this.draining.keys()) if (server instanceof LabServer) server.closeAll();
    for (const name of [...this.running.keys()]) void this.stopService(name, deadlineMs);
    await Promise.all(this.draining.values());
  }

  private shutdownMs(): number {
    return this.config.process.shutdownTimeout as number;
  }

  /**
   * Applies a new version of the file, in an order that keeps a mistake from changing anything:
   * first what cannot fail halfway (make the servers, bind new ports), then what cannot be undone.
   */
  private async apply(next: Config): Promise<ReloadOutcome> {
    const wanted = new Map(next.services.map((service) => [service.protocol.name, service]));
    const outcome: ReloadOutcome = { unchanged: [], restarted: [], started: [], stopped: [], failed: [], needRestart: [] };
    for (const [name, running] of this.running) {
      const service = wanted.get(name);
      if (service === undefined) outcome.stopped.push(name);
      else if (service.fingerprint === running.config.fingerprint) outcome.unchanged.push(name);
      else outcome.restarted.push(name);
    }
    outcome.started = [...wanted.keys()].filter((name) => !this.running.has(name));
    // 1. Make the new servers. Nothing listens yet, but their protocols read their files: a bad
    //    quotes file ends the reload here.
    const prepared = this.prepare([...outcome.restarted, ...outcome.started].map((name) => wanted.get(name)!), next);
    // 2. Bind those whose port no stopping service holds (added services, and changed ones that
    //    move): a port in use ends the reload here, and what was bound is closed again.
    const stoppingPorts = new Set([...outcome.restarted, ...outcome.stopped].map((name) => this.running.get(name)!.port));
    const keepsItsPort = (each: Prepared): boolean => each.service.port !== 0 && stoppingPorts.has(each.service.port);
    const bound: Prepared[] = [];
    try {
      for (const each of prepared.filter((p) => !keepsItsPort(p))) bound.push(await this.bind(each));
    } catch (error) {
      await Promise.all(bound.flatMap(({ servers }) => servers.map((server) => server.close(0))));
      throw error;
    }
    // From here on the file is applied. The whole process's own options (its log) stay as they
    // started, but for --shutdown-timeout, read at each stop.
    outcome.needRestart = Object.keys(PROCESS_OPTIONS).filter((key) => key !== 'shutdown-timeout' && JSON.stringify(next.process[key]) !== JSON.stringify(this.config.process[key]));
    this.config = next;
    // 3. Stop the changed and removed services. Their listening sockets close now; their
    //    connections drain in the background, as on SIGTERM.
    for (const name of [...outcome.restarted, ...outcome.stopped]) void this.stopService(name, this.shutdownMs());
    for (const each of bound) this.serving(each);
    // 4. Bind the changed services that keep their port. Two sockets cannot listen on one port (not
    //    without SO_REUSEPORT), so the old listener had to close first: in between, a new client's
    //    SYN is answered with RST. If the port was taken in that moment, the service is down until
    //    the next reload, and the log says so.
    for (const each of prepared.filter(keepsItsPort)) {
      try {
        this.serving(await this.bind(each));
      } catch (error) {
        outcome.failed.push(`${each.config.protocol.name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    return outcome;
  }

  /** Makes the servers of `services`, with their limits fitted to the descriptors `config` will need in all. */
  private prepare(services: readonly ServiceConfig[], config: Config): Prepared[] {
    const counts = config.services.map((service) => boundSocketCounts([serviceOf(service)], argumentsOf(service)));
    const total = { tcpServices: counts.reduce((sum, c) => sum + c.tcpServices, 0), listeningSockets: counts.reduce((sum, c) => sum + c.listeningSockets, 0) };
    return services.map((config) => {
      const [service, args] = [serviceOf(config), argumentsOf(config)];
      fitConnectionsToDescriptors(args, this.logger, total);
      return { config, service, args, servers: forConfig(this.file, config, () => serversFor(service, args, this.events, this.ownPorts)) };
    });
  }

  private async listen(each: Prepared): Promise<void> {
    this.serving(await this.bind(each));
  }

  /** Binds a service's servers; a failure (a port in use) names the file and the service, and keeps its own exit status. */
  private async bind(each: Prepared): Promise<Prepared> {
    try {
      await listenAll(each.servers, each.service, each.args, this.ownPorts);
    } catch (error) {
      if (error instanceof LabError) throw new LabError(error.code, `${escapeText(this.file)}: [${each.config.protocol.name}] ${error.message}`);
      throw error;
    }
    return each;
  }

  private serving({ config, servers, service }: Prepared): void {
    this.running.set(config.protocol.name, { config, servers, port: service.port });
  }

  /**
   * Stops a service: its listening sockets close at once, its connections get `deadlineMs` to
   * finish. Resolves when every one is closed.
   */
  private stopService(name: string, deadlineMs: number): Promise<unknown> {
    const { servers, port } = this.running.get(name)!;
    this.running.delete(name);
    this.ownPorts.delete(port);
    return Promise.all(
      servers.map((server) => {
        const closed = server.close(deadlineMs).finally(() => this.draining.delete(server));
        this.draining.set(server, closed);
        return closed;
      }),
    );
  }

  private logReload({ unchanged, restarted, started, stopped, failed, needRestart }: ReloadOutcome): void {
    const parts = [
      restarted.length > 0 && `restarted ${restarted.join(', ')} (new settings)`,
      started.length > 0 && `started ${started.join(', ')}`,
      stopped.length > 0 && `stopped ${stopped.join(', ')} (draining)`,
      unchanged.length > 0 && `unchanged ${unchanged.join(', ')}`,
    ].filter(Boolean);
    const fields = { event: 'reloaded', file: escapeText(this.file), unchanged, restarted, started, stopped, ...(failed.length > 0 && { failed: failed.map(escapeText) }), ...(needRestart.length > 0 && { needRestart }) };
    const restart = needRestart.length > 0 ? `; ${needRestart.join(', ')} changed, which applies to the whole process: restart it for that` : '';
    const failure = failed.length > 0 ? `; NOT SERVED: ${failed.map(escapeText).join('; ')}` : '';
    this.logger[failed.length > 0 ? 'error' : 'info'](fields, `SIGHUP: reloaded ${escapeText(this.file)}: ${parts.join('; ')}${restart}${failure}`);
  }
}

/** The option values of a service in the file, as the command line's handler would see them. */
function argumentsOf(service: ServiceConfig): CommonArguments & { port: number } {
  // The file's values went through the same option definitions as the command line's (config-file.ts);
  // the command-line type is what those definitions give.
  return { ...(service.values as unknown as CommonArguments & { port: number }) };
}

function serviceOf(service: ServiceConfig): Service {
  return { protocol: service.protocol, port: service.values.port as number, settings: service.values };
}

/** Runs `make`, naming the file and the service in a LabError it throws (a protocol's own check, such as qotd's quotes file). */
function forConfig<T>(file: string, service: ServiceConfig, make: () => T): T {
  try {
    return make();
  } catch (error) {
    if (error instanceof LabError) throw new LabError('ERR_CONFIG_FILE', `${escapeText(file)}: [${service.protocol.name}] ${error.message}`);
    throw error;
  }
}
