/**
 * `lab-server serve --config FILE`: several services from one TOML file, the way xinetd serves
 * them from /etc/xinetd.conf: a [defaults] table, then one table per service, named by its protocol.
 *
 *     [defaults]                  # every service, and the whole process (its log, its shutdown)
 *     max-connections = 256
 *
 *     [echo]
 *     port = 10007
 *     udp = true
 *
 * Keys are the command line's flags, spelled the same (`max-connections`), and each value goes
 * through the flag's own definition (its check from arguments.ts, its choices, its type): what the
 * command line would refuse is refused here with the same message, after where it was found:
 * `lab.toml: [echo] max-connections: invalid --max-connections "0": give a whole number, 1 or more`.
 * Every mistake is found before anything is bound or changed, so that a reload with a bad file
 * leaves the running services alone (serve-config.ts).
 */
import { readFile, stat } from 'node:fs/promises';
import type { Options } from 'yargs';
import { LabError } from '../errors.js';
import { escapeText } from '../framework/escape.js';
import type { Protocol } from '../framework/protocol.js';
import { closest } from './suggest.js';

/** The table of settings for every service, and for the whole process. */
export const DEFAULTS_TABLE = 'defaults';

/**
 * The largest config file read: far more than any list of services needs, and a guard against
 * a path to /dev/zero or a huge file being read into memory whole.
 */
export const MAX_CONFIG_BYTES = 1024 * 1024;

type OptionTable = Readonly<Record<string, Options>>;

/** What a config file may hold: the command line's option definitions, grouped by where they apply. */
export interface ConfigRules {
  /** Options of the whole process (where it logs, how it stops): in [defaults] only. */
  processOptions: OptionTable;
  /** Options every service has: in [defaults], or in a service's table. */
  serviceOptions: OptionTable;
  /** Options of one protocol's service (its port, its own flags): in its table only. */
  protocolOptions(protocol: Protocol): OptionTable;
  /** Pairs of options that cannot both be on. */
  conflicts: readonly (readonly [string, string])[];
  protocols: readonly Protocol[];
}

/** Option values as yargs gives them: each under its flag's name and in camelCase (`max-connections`, `maxConnections`). */
export type OptionValues = Record<string, unknown>;

export interface ServiceConfig {
  protocol: Protocol;
  /** Every option of the service: as given in its table, else in [defaults], else the flag's default. */
  values: OptionValues;
  /** The values as text: a service whose fingerprint is unchanged by a reload keeps running. */
  fingerprint: string;
}

export interface Config {
  file: string;
  /** The options of the whole process, from [defaults]. */
  process: OptionValues;
  services: ServiceConfig[];
}

/** Reads and checks a config file; every mistake is a LabError naming the file, the table and the key. */
export async function readConfig(file: string, rules: ConfigRules): Promise<Config> {
  const document = await parseToml(file, await readText(file));
  const where = (table: string, key?: string): string => `${escapeText(file)}: [${escapeText(table)}]${key === undefined ? '' : ` ${escapeText(key)}`}`;
  const fail = (table: string, key: string | undefined, message: string): LabError => new LabError('ERR_CONFIG_FILE', `${where(table, key)}: ${message}`);

  for (const [name, value] of Object.entries(document)) {
    if (!isTable(value)) throw new LabError('ERR_CONFIG_FILE', `${escapeText(file)}: ${escapeText(name)} is outside any table: put it under [${DEFAULTS_TABLE}] or under a service such as [echo]`);
  }
  const defaults = (document[DEFAULTS_TABLE] ?? {}) as Record<string, unknown>;
  const protocolNames = rules.protocols.map((protocol) => protocol.name);
  for (const key of Object.keys(defaults)) {
    if (key in rules.processOptions || key in rules.serviceOptions) continue;
    const owners = rules.protocols.filter((protocol) => key in rules.protocolOptions(protocol)).map((protocol) => `[${protocol.name}]`);
    if (key === 'port') throw fail(DEFAULTS_TABLE, key, 'each service listens on its own port: set port in each service\'s table');
    if (owners.length > 0) throw fail(DEFAULTS_TABLE, key, `not every service has it: set it in ${owners.join(' or ')}`);
    throw fail(DEFAULTS_TABLE, key, unknownKey(key, [...Object.keys(rules.processOptions), ...Object.keys(rules.serviceOptions)]));
  }
  const processValues = optionValues(rules.processOptions, defaults, (key, message) => fail(DEFAULTS_TABLE, key, message));

  const services: ServiceConfig[] = [];
  for (const [name, table] of Object.entries(document) as [string, Record<string, unknown>][]) {
    if (name === DEFAULTS_TABLE) continue;
    const protocol = rules.protocols.find((p) => p.name === name);
    if (protocol === undefined) {
      const meant = closest(name, [...protocolNames, DEFAULTS_TABLE]);
      throw fail(name, undefined, `no such service: ${meant === undefined ? `a table is [${DEFAULTS_TABLE}] or a protocol (${protocolNames.join(', ')})` : `did you mean [${meant}]?`}`);
    }
    const options = { ...rules.serviceOptions, ...rules.protocolOptions(protocol) };
    for (const key of Object.keys(table)) {
      if (key in options) continue;
      if (key in rules.processOptions) throw fail(name, key, `it applies to the whole server, not one service: set it in [${DEFAULTS_TABLE}]`);
      throw fail(name, key, unknownKey(key, Object.keys(options)));
    }
    const given = { ...pick(defaults, Object.keys(rules.serviceOptions)), ...table };
    const values = optionValues(options, given, (key, message) => fail(name, key, message));
    for (const [a, b] of rules.conflicts) {
      if (values[a] === true && values[b] === true) throw fail(name, undefined, `${a} and ${b} cannot both be true (one may come from [${DEFAULTS_TABLE}])`);
    }
    const fingerprint = JSON.stringify(Object.keys(options).sort().map((key) => [key, values[key]]));
    services.push({ protocol, values, fingerprint });
  }
  checkPortsAreDistinct(file, services);
  if (services.length === 0) throw new LabError('ERR_CONFIG_FILE', `${escapeText(file)}: no service to serve: add a table for one, such as [echo] with port = 10007`);
  return { file, process: processValues, services };
}

/**
 * Two services of one file on the same address, port and transport could never both listen: say
 * so now, before one of them is started (or, on a reload, before anything changes).
 */
function checkPortsAreDistinct(file: string, services: readonly ServiceConfig[]): void {
  const taken = new Map<string, string>();
  for (const { protocol, values } of services) {
    if (values.port === 0) continue;
    const transports = [...(values['udp-only'] === true ? [] : ['TCP']), ...(values.udp === true || values['udp-only'] === true ? ['UDP'] : [])];
    for (const transport of transports) {
      const place = `${transport} port ${String(values.port)}${values.host === undefined ? '' : ` of ${String(values.host)}`}`;
      const other = taken.get(place);
      if (other !== undefined) throw new LabError('ERR_CONFIG_FILE', `${escapeText(file)}: [${protocol.name}] port: [${other}] has ${escapeText(place)} already; give each service a port of its own`);
      taken.set(place, protocol.name);
    }
  }
}

/** The file's text, refused before reading unless it is a regular file of a sensible size. */
async function readText(file: string): Promise<string> {
  const cannot = (why: string): LabError => new LabError('ERR_CONFIG_UNREADABLE', `cannot read --config ${JSON.stringify(escapeText(file))}: ${why}`);
  try {
    const stats = await stat(file);
    if (!stats.isFile()) throw cannot('it is not a regular file; give a TOML file');
    if (stats.size > MAX_CONFIG_BYTES) throw cannot(`it is ${stats.size} bytes, over the ${MAX_CONFIG_BYTES}-byte (1 MiB) limit for a config file`);
    return await readFile(file, 'utf8');
  } catch (error) {
    if (error instanceof LabError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw cannot(code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code);
  }
}

/** The TOML document; a syntax error is one line with its place, as a compiler gives it (`lab.toml:3:7: ...`). */
async function parseToml(file: string, text: string): Promise<Record<string, unknown>> {
  // Loaded here, not at startup: only `serve --config` reads TOML.
  const { parse, TomlError } = await import('smol-toml');
  try {
    return parse(text);
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    // smol-toml's message is the reason, then a few lines of the file with a caret under the place.
    const reason = error.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
    throw new LabError('ERR_CONFIG_FILE', `${escapeText(file)}:${error.line}:${error.column}: ${reason} (not valid TOML: see https://toml.io)`);
  }
}

const isTable = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);

const pick = (table: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> => Object.fromEntries(Object.entries(table).filter(([key]) => keys.includes(key)));

const camelCase = (flag: string): string => flag.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());

function unknownKey(key: string, known: readonly string[]): string {
  const meant = closest(key, known);
  return `unknown key${meant === undefined ? '; the keys are the command-line flags, without their dashes (see lab-server <protocol> --help)' : `: did you mean ${meant}?`}`;
}

/**
 * The value of every option in `options`: `given` checked by the option's own definition, or its
 * default (through its check too, as yargs does: `shutdown-timeout`'s default 5 becomes 5000 ms).
 */
function optionValues(options: OptionTable, given: Record<string, unknown>, fail: (key: string, message: string) => LabError): OptionValues {
  const values: OptionValues = {};
  for (const [key, option] of Object.entries(options)) {
    let value: unknown;
    try {
      if (key in given) value = checkValue(option, given[key]);
      else if (option.default !== undefined) value = option.coerce === undefined ? option.default : option.coerce(option.default);
      else continue;
    } catch (error) {
      if (error instanceof LabError) throw fail(key, error.message);
      throw error;
    }
    values[key] = value;
    values[camelCase(key)] = value;
  }
  return values;
}

/** A value of the file, as the command line's parser would hand it to the option; throws a LabError with what to write instead. */
function checkValue(option: Options, value: unknown): unknown {
  const refuse = (what: string): LabError => new LabError('ERR_CONFIG_FILE', `${what}, not ${describeValue(value)}`);
  if (option.type === 'boolean') {
    if (typeof value !== 'boolean') throw refuse('give true or false (without quotes)');
    return value;
  }
  if (option.array) {
    const list = Array.isArray(value) ? value : [value];
    if (!list.every((item) => typeof item === 'string')) throw refuse('give a string or a list of strings, like ["127.0.0.0/8", "::1"]');
    return option.coerce === undefined ? list : option.coerce(list);
  }
  if (option.choices !== undefined) {
    const choices = option.choices as readonly unknown[];
    if (!choices.includes(value)) throw refuse(`give one of ${choices.map((choice) => JSON.stringify(choice)).join(', ')}`);
    return value;
  }
  if (option.coerce !== undefined) {
    // A number may be written as a TOML number or a string (`rate = 20` or `rate = "20/s"`), and
    // `false` turns an option off as --no-<flag> does (`close = false` is --no-close).
    if (typeof value === 'number') return option.coerce(String(value));
    if (typeof value === 'string' || typeof value === 'boolean') return option.coerce(value);
    throw refuse('give one value');
  }
  if (typeof value !== 'string') throw refuse('give a string (in quotes)');
  return value;
}

/** A TOML value, briefly, for an error message. */
function describeValue(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Date) return 'a date';
  if (typeof value === 'object' && value !== null) return 'a table';
  return escapeText(JSON.stringify(value));
}
