/**
 * Reading the kernel's TCP socket table on Linux: /proc/net/tcp (IPv4) and /proc/net/tcp6 (IPv6),
 * and, to find one socket by its inode, the UDP tables beside them.
 *
 * /proc is not a disk: each read asks the kernel to print its socket table as it is right now,
 * so two reads a moment apart can differ. Other systems keep this table too, but only Linux
 * shows it as a file; elsewhere `netstat -an` asks the kernel another way.
 */
import { createReadStream, existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { endianness, platform } from 'node:os';
import { join } from 'node:path';
import { LabError } from '../errors.js';
import { parseProcNetTcp, parseProcNetUdp, SocketTableParser, type RowFilter, type TcpSocketEntry } from './parse.js';
import { StateTableBuilder, type StateTable } from './table.js';

export { findConnection, type Endpoint, type TcpSocketEntry } from './parse.js';

export interface ReadTcpSocketsOptions {
  /** Where procfs is mounted; tests point it at a directory of fixtures. Default `/proc`. */
  procRoot?: string;
  /** Only rows with this port at either end (faster on a machine with many sockets). */
  port?: number;
  /** With `port`: only rows with one of these ports at the other end (faster still). */
  peerPorts?: readonly number[];
}

/** Whether readTcpSockets can work here: is there a `net/tcp` under the proc root? */
export function isTcpStateReadingSupported(options: ReadTcpSocketsOptions = {}): boolean {
  return existsSync(join(options.procRoot ?? '/proc', 'net', 'tcp'));
}

/**
 * Every TCP socket the kernel knows in this network namespace, IPv4 rows first.
 *
 * tcp6 is missing when IPv6 is disabled; then there are only IPv4 rows. Without tcp the
 * system is not Linux (or /proc is not mounted): that is a LabError, ERR_TCP_STATES_UNAVAILABLE.
 */
export async function readTcpSockets(options: ReadTcpSocketsOptions = {}): Promise<TcpSocketEntry[]> {
  const { procRoot, port, peerPorts } = options;
  const entries: TcpSocketEntry[] = [];
  await visitTcpSockets({ procRoot, filter: port === undefined ? undefined : { port, peerPorts } }, (entry) => void entries.push(entry));
  return entries;
}

/** Size of each read of the table: what the kernel prints per read(2), and all the text we hold at once. */
const READ_CHUNK_BYTES = 64 * 1024;

/**
 * The same rows, handed to `visit` one by one as the table is read, rather than gathered: the way
 * to go through a table of 100,000 sockets holding only the rows that matter (see SocketTableParser).
 * `filter` picks rows cheaply, before they are decoded (see RowFilter). `family` reads one table
 * only: each read makes the kernel walk its whole hash table of connections, however few there are.
 */
export async function visitTcpSockets(
  options: { procRoot?: string | undefined; filter?: RowFilter | undefined; family?: 4 | 6 | undefined },
  visit: (entry: TcpSocketEntry) => void,
): Promise<void> {
  const tcpPath = join(options.procRoot ?? '/proc', 'net', 'tcp');
  // The files hold the addresses in this CPU's byte order (see decodeAddress).
  const order = endianness();
  const parse = (family: 4 | 6): SocketTableParser => new SocketTableParser(family === 4 ? '/proc/net/tcp' : '/proc/net/tcp6', family, order, options.filter, visit);
  if (options.family !== 6 && !(await streamIfPresent(tcpPath, parse(4)))) {
    throw new LabError(
      'ERR_TCP_STATES_UNAVAILABLE',
      `reading TCP states needs Linux's ${tcpPath}, which this system (${platform()}) does not have; ` +
        'use netstat -an or ss -tan instead',
    );
  }
  if (options.family !== 4) await streamIfPresent(`${tcpPath}6`, parse(6));
}

/**
 * The table `lab-server states` prints: the sockets on `port` (all without one), at most `limit`
 * of them listed and the rest counted (see StateTableBuilder). Only that port's rows and the
 * listeners are decoded, and each goes straight into the builder: a table of any size is read in
 * bounded memory.
 */
export async function readStateTable(options: { procRoot?: string; port?: number | undefined; limit?: number } = {}): Promise<StateTable> {
  const { procRoot, port, limit } = options;
  const builder = new StateTableBuilder({ port, limit });
  await visitTcpSockets({ procRoot, filter: port === undefined ? undefined : { port, andListeners: true } }, (entry) => builder.add(entry));
  return builder.finish();
}

/** Feeds the file to `parser` a piece at a time; false if it does not exist (any other failure is thrown). */
async function streamIfPresent(path: string, parser: SocketTableParser): Promise<boolean> {
  try {
    // latin1: the table is ASCII, and a one-byte decoding never splits a character between pieces.
    for await (const piece of createReadStream(path, { encoding: 'latin1', highWaterMark: READ_CHUNK_BYTES })) parser.push(piece as string);
  } catch (error) {
    if (isMissing(error)) return false;
    throw error;
  }
  parser.end();
  return true;
}

/** A socket the kernel lists, and which of its tables lists it. */
export interface ListedSocket {
  transport: 'tcp' | 'udp';
  entry: TcpSocketEntry;
}

/**
 * The kernel's row for the socket with this inode number (what fstat(2) says of a socket
 * descriptor, and `ls -l /proc/self/fd` shows as `socket:[inode]`), from whichever of
 * /proc/net/tcp, tcp6, udp and udp6 lists it. Undefined when none does: a UNIX-domain socket, a
 * socket of another network namespace (these files show the reading process's own), or a system
 * without them (check isTcpStateReadingSupported first to tell that case apart).
 */
export async function findSocketByInode(inode: number, options: Pick<ReadTcpSocketsOptions, 'procRoot'> = {}): Promise<ListedSocket | undefined> {
  const netDir = join(options.procRoot ?? '/proc', 'net');
  const order = endianness();
  const tables = [
    { file: 'tcp', transport: 'tcp', family: 4, parse: parseProcNetTcp },
    { file: 'tcp6', transport: 'tcp', family: 6, parse: parseProcNetTcp },
    { file: 'udp', transport: 'udp', family: 4, parse: parseProcNetUdp },
    { file: 'udp6', transport: 'udp', family: 6, parse: parseProcNetUdp },
  ] as const;
  for (const { file, transport, family, parse } of tables) {
    const text = await readIfPresent(join(netDir, file));
    const entry = text === undefined ? undefined : parse(text, family, order, { inode }).find((row) => row.inode === inode);
    if (entry !== undefined) return { transport, entry };
  }
  return undefined;
}

/** How big the kernel's TCP table is, from /proc/net/sockstat(6). */
export interface TcpTableSize {
  /** Every row /proc/net/tcp and tcp6 would print: open sockets (any state but TIME_WAIT) plus TIME_WAIT ones. */
  sockets: number;
  timeWait: number;
}

/**
 * The size of the kernel's TCP table, without printing it: /proc/net/sockstat is a few counters
 * ("TCP: inuse 5 orphan 0 tw 43088 ..."), as cheap to read with a million sockets as with none.
 * `tw` counts TIME_WAIT for IPv4 and IPv6 together; `inuse` is per family. Undefined where the
 * counters are missing (not Linux).
 */
export async function readTcpTableSize(options: Pick<ReadTcpSocketsOptions, 'procRoot'> = {}): Promise<TcpTableSize | undefined> {
  const netDir = join(options.procRoot ?? '/proc', 'net');
  const v4 = /^TCP: inuse (\d+) orphan \d+ tw (\d+)/m.exec((await readIfPresent(join(netDir, 'sockstat'))) ?? '');
  if (v4 === null) return undefined;
  const v6 = /^TCP6: inuse (\d+)/m.exec((await readIfPresent(join(netDir, 'sockstat6'))) ?? '');
  const timeWait = Number(v4[2]);
  return { sockets: Number(v4[1]) + Number(v6?.[1] ?? 0) + timeWait, timeWait };
}

/** The file's text, or undefined if it does not exist; any other failure (say, EACCES) is thrown. */
async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
}

const isMissing = (error: unknown): boolean => ['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '');
