/**
 * Parsing Linux's /proc/net/tcp and /proc/net/tcp6: the kernel's own table of TCP sockets.
 *
 * The application only sees "open" or "closed"; the kernel tracks the real TCP state machine
 * (RFC 793 §3.2), including the states that outlive close(2): FIN_WAIT2 and TIME_WAIT.
 * `netstat` and `ss` read these same files. A row looks like this (columns trimmed):
 *
 *       sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
 *       12: 0100007F:D73C 0100007F:B1E9 06 00000000:00000000 03:00001754 00000000     0        0 0
 *
 * This module is pure: text in, objects out. read.ts does the file I/O.
 * The kernel writes the rows in net/ipv4/tcp_ipv4.c (get_tcp4_sock, get_timewait4_sock,
 * get_openreq4) and net/ipv6/tcp_ipv6.c (get_tcp6_sock, ...).
 */
import { formatIPv6, sameEndpoint, type Endpoint } from '../framework/endpoint.js';

// One notion of "an end of a connection" for the whole project: re-exported so that users of
// the TCP-state reader can format and compare endpoints without a second import.
export { type Endpoint, formatEndpoint, sameEndpoint, unmapIPv4 } from '../framework/endpoint.js';

/** Kernel state names in code order: ESTABLISHED is 0x01 ... NEW_SYN_RECV is 0x0C (include/net/tcp_states.h). */
export const TCP_STATES = [
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECV',
  'FIN_WAIT1',
  'FIN_WAIT2',
  'TIME_WAIT',
  'CLOSE',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'CLOSING',
  // A half-open connection waiting for the client's final ACK. The kernel prints these rows
  // with code 0x03 (SYN_RECV), so 0x0C is not seen in practice; we decode it anyway.
  'NEW_SYN_RECV',
] as const;

export type TcpState = (typeof TCP_STATES)[number];

/** The state name for a kernel code, or 'UNKNOWN' for a code newer than this table. */
export function tcpStateName(code: number): TcpState | 'UNKNOWN' {
  return TCP_STATES[code - 1] ?? 'UNKNOWN';
}

/**
 * Which of the socket's timers is running (the `tr` column).
 *
 * keepalive: the socket's general timer (sk_timer); besides keepalive probes it also runs the
 * FIN_WAIT2 timeout. time-wait: the 2×MSL timer of a TIME_WAIT socket, which also serves an
 * orphaned FIN_WAIT2 connection (one whose descriptor is already closed).
 */
export type TimerKind = 'none' | 'retransmit' | 'keepalive' | 'time-wait' | 'zero-window-probe' | 'unknown';

const TIMER_KINDS: readonly TimerKind[] = ['none', 'retransmit', 'keepalive', 'time-wait', 'zero-window-probe'];

/**
 * The kernel prints timer expiry in clock ticks of USER_HZ, the unit of clock_t that
 * `getconf CLK_TCK` reports. USER_HZ is 100 on every architecture Node runs on, however fast
 * the kernel's own tick (HZ, the "jiffy") is: that is what jiffies_delta_to_clock_t converts to.
 */
const USER_HZ = 100;

export interface TcpTimer {
  kind: TimerKind;
  /** The raw `tr` code: 0 none, 1 retransmit (or loss probe), 2 keepalive, 3 TIME_WAIT, 4 zero-window probe. */
  code: number;
  /** Time until the timer fires; 0 when none is running. */
  remainingMs: number;
}

export interface TcpSocketEntry {
  family: 4 | 6;
  /** The kernel's stable code for the state; always present, even when `state` is 'UNKNOWN'. */
  stateCode: number;
  state: TcpState | 'UNKNOWN';
  local: Endpoint;
  /** `0.0.0.0:0` or `:::0` for a LISTEN socket: it has no peer. */
  remote: Endpoint;
  /** Bytes sent but not yet acknowledged by the peer. */
  txQueue: number;
  /** Bytes received but not yet read by the application; for LISTEN, connections waiting for accept(). */
  rxQueue: number;
  timer: TcpTimer;
  /** Retransmissions (or unanswered probes) since the last acknowledgement. */
  retransmits: number;
  /** Keepalive or zero-window probes sent and not answered (the `timeout` column, icsk_probes_out). */
  probes: number;
  /** Owner's user id; 0 for TIME_WAIT rows, which no longer belong to a process. */
  uid: number;
  /** Socket inode (as in /proc/<pid>/fd links: `socket:[inode]`); 0 when no process holds it. */
  inode: number;
}

/** Byte order of the machine that wrote the file: os.endianness() on the machine that read it. */
export type Endianness = 'LE' | 'BE';

/**
 * Turn the kernel's hex address into text: `0100007F` → `127.0.0.1`.
 *
 * Why the bytes look reversed: the kernel keeps an address in network byte order (127 first in
 * memory), but prints it with `%08X` as if it were a plain 32-bit number. A little-endian CPU
 * (x86, most ARM) reads the first byte in memory as the *least* significant, so it comes out last:
 * 7F.00.00.01 in memory prints as 0100007F. IPv6 addresses are printed as four such 32-bit
 * words, each reversed on its own, not as one 16-byte number.
 */
export function decodeAddress(hex: string, family: 4 | 6, endianness: Endianness = 'LE'): string {
  if (family === 4) {
    // The common case, written out without an array: it runs for both ends of every row.
    const word = parseInt(hex, 16);
    return `${byteInMemory(word, 0, endianness)}.${byteInMemory(word, 1, endianness)}.${byteInMemory(word, 2, endianness)}.${byteInMemory(word, 3, endianness)}`;
  }
  const bytes: number[] = [];
  for (let at = 0; at < hex.length; at += 8) {
    const word = parseInt(hex.slice(at, at + 8), 16);
    for (let i = 0; i < 4; i++) bytes.push(byteInMemory(word, i, endianness));
  }
  return formatIPv6(bytes);
}

/** Byte `i` (0 to 3) in memory of a 32-bit word: its lowest 8 bits first on a little-endian CPU, its highest on a big-endian one. */
const byteInMemory = (word: number, i: number, endianness: Endianness): number => (word >>> (endianness === 'LE' ? 8 * i : 24 - 8 * i)) & 0xff;

/**
 * Parse the whole text of /proc/net/tcp (family 4) or /proc/net/tcp6 (family 6).
 *
 * Skips the header row and blank lines, and ignores the columns after `inode` (reference count,
 * kernel address, congestion details), which differ between row kinds and kernel versions.
 * A row that does not parse is an error naming its line: silently dropping a socket would
 * hide exactly the thing a student is looking for. `filter`, if given, keeps only the rows
 * with its port at one end and, with `peerPorts`, one of those at the other, or only the row of
 * one socket inode (a cheap text match; a row that merely contains the same digits elsewhere is
 * decoded and then kept, so the caller still matches exactly).
 */
export function parseProcNetTcp(text: string, family: 4 | 6, endianness: Endianness = 'LE', filter?: RowFilter): TcpSocketEntry[] {
  return parseSocketTable(text, family === 4 ? '/proc/net/tcp' : '/proc/net/tcp6', family, endianness, filter);
}

/**
 * The same for /proc/net/udp and /proc/net/udp6, whose rows have the same first columns. UDP has
 * no state machine, but the kernel keeps TCP's state codes in every socket (sk_state) and prints
 * them here too: 07 (CLOSE) for an unconnected UDP socket, a server's, and 01 (ESTABLISHED) for
 * one that called connect(2).
 */
export function parseProcNetUdp(text: string, family: 4 | 6, endianness: Endianness = 'LE', filter?: RowFilter): TcpSocketEntry[] {
  return parseSocketTable(text, family === 4 ? '/proc/net/udp' : '/proc/net/udp6', family, endianness, filter);
}

function parseSocketTable(text: string, source: string, family: 4 | 6, endianness: Endianness, filter?: RowFilter): TcpSocketEntry[] {
  const entries: TcpSocketEntry[] = [];
  const parser = new SocketTableParser(source, family, endianness, filter, (entry) => void entries.push(entry));
  parser.push(text);
  parser.end();
  return entries;
}

/**
 * Parses the table as it arrives, a piece at a time (a read of /proc delivers 64 KiB at a time),
 * and hands each row to `visit`. Between pieces it keeps only the unfinished last line, so a table
 * of 200,000 rows costs the memory of the rows the caller keeps, not 30 MB of text and its lines.
 * `source` names the file in errors; `filter` as for parseProcNetTcp.
 */
export class SocketTableParser {
  private partial = '';
  private lineNumber = 0;
  private readonly mentions: ((line: string) => boolean) | undefined;

  constructor(
    private readonly source: string,
    private readonly family: 4 | 6,
    private readonly endianness: Endianness,
    filter: RowFilter | undefined,
    private readonly visit: (entry: TcpSocketEntry) => void,
  ) {
    this.mentions = filter === undefined ? undefined : rowMatcher(filter);
  }

  /** The next piece of the text: any whole lines in it are parsed now. */
  push(piece: string): void {
    const text = this.partial + piece;
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; start = end + 1, end = text.indexOf('\n', start)) this.line(text.slice(start, end));
    this.partial = text.slice(start);
  }

  /** The end of the text: a last line without its newline is parsed too. */
  end(): void {
    if (this.partial !== '') this.line(this.partial);
    this.partial = '';
  }

  private line(line: string): void {
    this.lineNumber += 1;
    if (this.mentions !== undefined && !this.mentions(line)) return;
    const trimmed = line.trim();
    if (trimmed === '' || /^sl\b/.test(trimmed)) return;
    let entry: TcpSocketEntry;
    try {
      entry = parseRow(trimmed, this.family, this.endianness);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`${this.source} line ${this.lineNumber}: ${reason}: ${JSON.stringify(trimmed)}`, { cause: error });
    }
    this.visit(entry);
  }
}

/**
 * Which rows to decode: on a busy machine the table holds tens of thousands, each costly to decode.
 * Either the rows of one port (and, if given, one of these ports at the other end: the client
 * ports of the connections looked up), or the rows of one port and the LISTEN rows of every port
 * (which tell which end of a connection is the server), or the row of one socket, by its inode.
 */
export type RowFilter = { port: number; peerPorts?: readonly number[] } | { port: number; andListeners: true } | { inode: number };

/** The state column of a LISTEN row (0x0A), between spaces: no other column of a row can read so. */
const LISTEN_FIELD = ' 0A ';

/** A test on a row's text for the ports as the kernel prints them (`:%04X` and a space), or for the inode (decimal, between spaces). */
function rowMatcher(filter: RowFilter): (line: string) => boolean {
  if ('inode' in filter) {
    const inodeField = ` ${filter.inode} `;
    return (line) => line.includes(inodeField);
  }
  const field = (p: number): string => p.toString(16).toUpperCase().padStart(4, '0');
  const portField = `:${field(filter.port)} `;
  if ('andListeners' in filter) return (line) => line.includes(portField) || line.includes(LISTEN_FIELD);
  const { peerPorts } = filter;
  if (peerPorts === undefined) return (line) => line.includes(portField);
  // One pass over the row for all peers at once (a TIME_WAIT storm puts our port in every row).
  const peerField = new RegExp(`:(?:${peerPorts.map(field).join('|')}) `);
  return (line) => line.includes(portField) && peerField.test(line);
}

/**
 * The kernel's row for one socket pair, matched the way a student would: `127.0.0.1` finds the
 * `::ffff:127.0.0.1` row of a dual-stack socket and the other way round. A listening socket's
 * remote end is `0.0.0.0:0` (or `:::0`). Both sides of a loopback connection are in the table;
 * swap `local` and `remote` to find the other one.
 */
export function findConnection(
  entries: readonly TcpSocketEntry[],
  local: Endpoint,
  remote: Endpoint,
): TcpSocketEntry | undefined {
  return entries.find((entry) => sameEndpoint(entry.local, local) && sameEndpoint(entry.remote, remote));
}

// Each column with the shape the kernel's format string gives it (%4d:, %08X:%04X, %02X, ...).
const HEX = /^[0-9A-F]+$/i;
const DECIMAL = /^\d+$/;

function parseRow(row: string, family: 4 | 6, endianness: Endianness): TcpSocketEntry {
  const columns = row.split(/\s+/);
  if (columns.length < 10) throw new Error(`expected at least 10 columns, found ${columns.length}`);
  // The 9th column, `timeout`, counts unanswered keepalive or zero-window probes.
  const [slot = '', local = '', remote = '', st = '', queues = '', timer = '', retransmits = '', uid = '', probes = '', inode = ''] =
    columns;
  if (!/^\d+:$/.test(slot)) throw new Error(`bad slot number ${JSON.stringify(slot)}`);

  const stateCode = hexNumber(st, 'state', 2);
  const [txQueue, rxQueue] = hexPair(queues, 'tx_queue:rx_queue');
  const [timerCode, ticks] = hexPair(timer, 'tr:tm->when');
  return {
    family,
    stateCode,
    state: tcpStateName(stateCode),
    local: parseEndpoint(local, 'local_address', family, endianness),
    remote: parseEndpoint(remote, 'rem_address', family, endianness),
    txQueue,
    rxQueue,
    timer: { kind: TIMER_KINDS[timerCode] ?? 'unknown', code: timerCode, remainingMs: (ticks * 1000) / USER_HZ },
    retransmits: hexNumber(retransmits, 'retrnsmt'),
    probes: decimalNumber(probes, 'timeout'),
    uid: decimalNumber(uid, 'uid'),
    inode: decimalNumber(inode, 'inode'),
  };
}

/** `0100007F:1F90` → 127.0.0.1:8080. The port is printed as a plain number, so it is not reversed. */
function parseEndpoint(text: string, column: string, family: 4 | 6, endianness: Endianness): Endpoint {
  const digits = family === 4 ? 8 : 32;
  // Sliced, not split: this runs twice for every row of a table of maybe 100,000.
  const address = text.slice(0, digits);
  const port = text.slice(digits + 1);
  if (text[digits] !== ':' || !HEX.test(address) || port.length !== 4 || !HEX.test(port)) {
    throw new Error(`bad ${column} ${JSON.stringify(text)} (expected ${digits} hex digits, a colon, 4 hex digits)`);
  }
  return { address: decodeAddress(address, family, endianness), port: parseInt(port, 16) };
}

function hexPair(text: string, column: string): [number, number] {
  const colon = text.indexOf(':');
  if (colon === -1 || text.includes(':', colon + 1)) throw new Error(`bad ${column} ${JSON.stringify(text)}`);
  return [hexNumber(text.slice(0, colon), column), hexNumber(text.slice(colon + 1), column)];
}

function hexNumber(text: string, column: string, digits?: number): number {
  if (!HEX.test(text) || (digits !== undefined && text.length !== digits)) {
    throw new Error(`bad ${column} ${JSON.stringify(text)} (expected hex)`);
  }
  return parseInt(text, 16);
}

function decimalNumber(text: string, column: string): number {
  if (!DECIMAL.test(text)) throw new Error(`bad ${column} ${JSON.stringify(text)} (expected a decimal number)`);
  return Number(text);
}
