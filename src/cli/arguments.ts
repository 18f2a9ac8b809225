/**
 * Checks for command-line values, run before any socket is made. Each throws a LabError
 * with a one-line message that names the flag, what was given, and what is expected.
 */
import { availableParallelism } from 'node:os';
import net from 'node:net';
import { parseCidr } from '../framework/access-control.js';
import { usageError } from '../errors.js';

export const HIGHEST_PORT = 65535;

/**
 * The yargs fields of an option whose value is a number we check ourselves (a port, a count, seconds).
 * - `type: 'string'`: yargs hands `coerce` exactly what was typed. Told it is a number, yargs would
 *   read `0x51` as 81, ` 1313` as 1313 and `--port=` as 0, and our checks could not refuse them.
 * - `number: true` only labels it `[number]` in --help: for a value declared both ways, yargs' parser
 *   keeps the string and its help prints the number label (test/cli.test.ts checks both).
 * - `requiresArg`: `--port` with nothing after it is an error. Without it yargs quietly uses the
 *   default, so `lab-server echo --port` would serve port 5000 as if nothing had been typed.
 */
export const NUMBER_VALUE = { type: 'string', number: true, requiresArg: true } as const;

/** Any other option that takes a value: given without one, it is an error rather than its default. */
export const VALUE_REQUIRED = { requiresArg: true } as const;

/**
 * A TCP port: a decimal integer from 0 to 65535 (0 lets the kernel choose an ephemeral port).
 * Strict on purpose: Node would read `0x51` as 81, and `listen('abc')` silently creates a
 * UNIX-domain socket file named abc instead of failing.
 */
export function parsePort(value: unknown): number {
  const text = String(value);
  if (!/^\d{1,5}$/.test(text) || Number(text) > HIGHEST_PORT) {
    throw usageError('ERR_INVALID_PORT', `invalid port ${JSON.stringify(text)}: give a whole number from 0 to ${HIGHEST_PORT} (0 picks a free port)`);
  }
  return Number(text);
}

/**
 * A port-like number with a narrower range, e.g. --base-port, where 0 means nothing useful.
 * The message gives this option's own range, not the 0 to 65535 of a plain port.
 */
export function portInRange(flag: string, min: number, max: number, why: string): (value: unknown) => number {
  return (value) => {
    const text = String(value);
    if (!/^\d{1,5}$/.test(text) || Number(text) < min || Number(text) > max) {
      throw usageError('ERR_INVALID_PORT', `invalid --${flag} ${JSON.stringify(text)}: give a whole number from ${min} to ${max}, ${why}`);
    }
    return Number(text);
  };
}

/**
 * The one way to write a number of seconds: decimal digits with an optional fraction (`30`, `1.5`,
 * `.5`), read the same way as every other number here. No sign, no hex (`0x10`), no exponent (`1e9`),
 * no spaces: Number() would take all of those, and a port already refuses them.
 */
const DECIMAL_SECONDS = /^(\d+(\.\d*)?|\.\d+)$/;

/**
 * The longest duration any flag takes: Node's timers count at most 2^31 - 1 ms (about 24.8 days);
 * beyond that Node prints a TimeoutOverflowWarning and fires the timer after 1 ms instead.
 */
export const MAX_DURATION_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** A duration given in seconds (fractions allowed), from 0 to MAX_DURATION_SECONDS, returned in milliseconds. */
export function secondsOption(flag: string): (value: unknown) => number {
  return (value) => {
    const text = String(value);
    if (!DECIMAL_SECONDS.test(text) || Number(text) > MAX_DURATION_SECONDS) {
      throw usageError(
        'ERR_INVALID_DURATION',
        `invalid --${flag} ${JSON.stringify(text)}: give a number of seconds from 0 to ${MAX_DURATION_SECONDS} (about 24 days), like 30 or 0.5`,
      );
    }
    return Math.round(Number(text) * 1000);
  };
}

/**
 * --host: an address or a name to bind. Empty is refused: Node would quietly bind every interface,
 * the opposite of what an empty value suggests.
 */
export function hostOption(value: unknown): string {
  const text = String(value);
  if (text.trim() === '') {
    throw usageError('ERR_INVALID_HOST', `invalid --host ${JSON.stringify(text)}: name an address to bind, such as 127.0.0.1 or ::1 (or :: for every interface)`);
  }
  return text;
}

/** `--close fin|rst`, and yargs turns `--no-close` into `close: false`. */
export function parseCloseMode(value: unknown): 'fin' | 'rst' | 'never' {
  if (value === false) return 'never';
  if (value === 'fin' || value === 'rst') return value;
  throw usageError('ERR_INVALID_CLOSE', `invalid --close ${JSON.stringify(String(value))}: give fin (orderly close) or rst (abortive close), or use --no-close`);
}

/** A whole number of at least `min`, e.g. a connection limit. */
function integerOption(flag: string, min: number): (value: unknown) => number {
  return (value) => {
    const text = String(value);
    if (!/^\d{1,9}$/.test(text) || Number(text) < min) {
      throw usageError('ERR_INVALID_NUMBER', `invalid --${flag} ${JSON.stringify(text)}: give a whole number, ${min} or more`);
    }
    return Number(text);
  };
}

/** A whole number of at least 1, e.g. a connection limit. */
export const positiveIntegerOption = (flag: string): ((value: unknown) => number) => integerOption(flag, 1);

/** --rate: a whole number of connections a second, written `20` or `20/s`. */
export function rateOption(value: unknown): number {
  const text = String(value);
  const match = /^(\d{1,9})(\/s)?$/.exec(text);
  if (match === null || Number(match[1]) < 1) throw usageError('ERR_INVALID_NUMBER', `invalid --rate ${JSON.stringify(text)}: give new connections a second, like 20 or 20/s`);
  return Number(match[1]);
}

/** More worker processes than this would only share the same cores: a typo, not a plan. */
export const MAX_WORKERS = 256;

/** --workers: a number of processes, or `auto` for one per CPU this process may run on. */
export function workersOption(value: unknown): number {
  const text = String(value);
  if (text === 'auto') return availableParallelism();
  if (!/^\d{1,9}$/.test(text) || Number(text) < 1 || Number(text) > MAX_WORKERS) {
    throw usageError('ERR_INVALID_NUMBER', `invalid --workers ${JSON.stringify(text)}: give a number of worker processes from 1 to ${MAX_WORKERS}, or auto (one per CPU)`);
  }
  return Number(text);
}

/** A whole number of at least 0, where 0 usually means "no limit". */
export const countOption = (flag: string): ((value: unknown) => number) => integerOption(flag, 0);

/** --allow/--deny values: each must be an IP address or subnet; parseCidr says what is wrong. */
export function subnetsOption(values: unknown): string[] {
  const list = (Array.isArray(values) ? values : [values]).map(String);
  list.forEach(parseCidr);
  return list;
}

/** A server's port, for a client: 1 to 65535 (port 0 means "any" only to a server that listens). */
export function parseServerPort(value: unknown, where = ''): number {
  const text = String(value);
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > HIGHEST_PORT) {
    throw usageError('ERR_INVALID_PORT', `invalid port ${JSON.stringify(text)}${where}: give the server's port, a whole number from 1 to ${HIGHEST_PORT}`);
  }
  return Number(text);
}

/** Where a client connects. */
export interface Target {
  host: string;
  port: number;
}

export interface TargetArguments {
  /** The host word: `localhost`, `::1`, or with a port, `localhost:5000`, `[::1]:5000`. */
  host: string;
  /** A second word, as telnet and nc take the port: `lab-client echo localhost 5000`. */
  portArgument: string | undefined;
  /** --port, already checked; undefined when not given. */
  portOption: number | undefined;
  defaultPort: number;
}

/**
 * The host and port a client connects to. A user may put the port in three places: in the host
 * (`localhost:5000`, `[::1]:5000`), as a second word (`localhost 5000`), or with --port. An IPv6
 * address without brackets (`::1`, `fe80::1`) is a host: its colons do not start a port. When the
 * port is given in more than one place the values must agree; if they differ, which one was meant
 * would be a guess, so that is a usage error naming both.
 */
export function parseTarget({ host, portArgument, portOption, defaultPort }: TargetArguments): Target {
  const given: { port: number; where: string }[] = [];
  let name = host;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(host);
  if (bracketed) {
    name = bracketed[1]!;
    if (bracketed[2] !== undefined) given.push({ port: parseServerPort(bracketed[2], ` in ${JSON.stringify(host)}`), where: `in ${JSON.stringify(host)}` });
  } else if (host.startsWith('[') || host.includes(']')) {
    throw usageError('ERR_INVALID_HOST', `invalid host ${JSON.stringify(host)}: write an IPv6 address in brackets when a port follows it, e.g. [::1]:5000`);
  } else if (host.split(':').length === 2) {
    const [hostPart, portPart] = host.split(':') as [string, string];
    name = hostPart;
    given.push({ port: parseServerPort(portPart, ` in ${JSON.stringify(host)}`), where: `in ${JSON.stringify(host)}` });
  }
  if (name === '') throw usageError('ERR_INVALID_HOST', `invalid host ${JSON.stringify(host)}: name a host, e.g. localhost or 127.0.0.1`);
  if (portArgument !== undefined) given.push({ port: parseServerPort(portArgument), where: 'after the host' });
  if (portOption !== undefined) given.push({ port: portOption, where: 'with --port' });
  const [first, other] = [given[0], given.find((g) => g.port !== given[0]?.port)];
  if (first !== undefined && other !== undefined) {
    throw usageError('ERR_PORT_CONFLICT', `two different ports: ${first.port} ${first.where} and ${other.port} ${other.where}; give the port once`);
  }
  return { host: name, port: first?.port ?? defaultPort };
}

/** Where a side server listens (--metrics, --dashboard): `PORT` (on 127.0.0.1), `ADDR:PORT`, or `[IPv6]:PORT`. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** Parses a ListenAddress. An IP address, not a name: what it binds should be plain to see, as for --allow. */
export function listenAddressOption(flag: string): (value: unknown) => ListenAddress {
  return (value) => {
    const text = String(value);
    const match = /^(?:(?:\[([^\]]+)\]|([^:[\]]+)):)?(\d{1,5})$/.exec(text);
    const host = match?.[1] ?? match?.[2] ?? '127.0.0.1';
    if (match === null || net.isIP(host) === 0 || Number(match[3]) > HIGHEST_PORT) {
      throw usageError('ERR_INVALID_ADDRESS', `invalid --${flag} ${JSON.stringify(text)}: give a port (on 127.0.0.1 only), or an IP address and port (0.0.0.0:PORT, [::1]:PORT)`);
    }
    return { host, port: Number(match[3]) };
  };
}

/** Where --dashboard listens when given no value: loopback, so that only this machine sees the page. */
export const DEFAULT_DASHBOARD = { address: '127.0.0.1', port: 8080 } as const;

/**
 * --dashboard's value: nothing (DEFAULT_DASHBOARD), `ADDR:PORT`, `[IPv6]:PORT`, or a port alone
 * (on 127.0.0.1). Port 0 lets the kernel choose; the URL is logged either way.
 */
export function parseDashboardAddress(value: unknown): { address: string; port: number } {
  if (String(value) === '') return { ...DEFAULT_DASHBOARD };
  const { host, port } = listenAddressOption('dashboard')(value);
  return { address: host, port };
}

/** --dashboard, for every command that can show the page: an optional value, checked by parseDashboardAddress. */
export const DASHBOARD_OPTION = {
  type: 'string',
  coerce: parseDashboardAddress,
  defaultDescription: 'off; without a value 127.0.0.1:8080',
  describe: 'Also serve a live, read-only web page of the connections, their TCP states and ladders at ADDRESS:PORT (127.0.0.1:8080 if none given; port 0 picks a free one; the URL is logged)',
} as const;
