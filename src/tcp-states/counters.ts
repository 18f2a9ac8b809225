/**
 * The kernel's protocol counters: /proc/net/snmp (the SNMP MIB groups of RFC 1213: Ip, Icmp, Tcp,
 * Udp) and /proc/net/netstat (Linux's own, TcpExt and IpExt). `netstat -s` and `nstat` print them.
 *
 * A counter says why the kernel did something, where the socket table cannot: a reset sent
 * because a program closed with data unread is counted in TcpExt TCPAbortOnClose, a datagram to a
 * port with no socket in Udp NoPorts. They count for the whole network namespace, all programs
 * together, so a lab can say a counter rose, never by exactly how much because of its own doing.
 *
 * Names are spelled as nstat spells them, the group and the field run together:
 * `TcpExtTCPAbortOnClose`, `UdpNoPorts`, `IcmpInDestUnreachs`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { POLL_INTERVAL_MS, STATE_DEADLINE_MS } from './wait.js';

/**
 * Parses one of the files: each group is two lines, the field names and then their values, both
 * starting with the group's name (`Udp: InDatagrams NoPorts ...` then `Udp: 12 3 ...`).
 */
export function parseCounters(text: string): Map<string, number> {
  const counters = new Map<string, number>();
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const [group = '', ...names] = lines[i]!.trim().split(/\s+/);
    const [valueGroup, ...values] = lines[i + 1]!.trim().split(/\s+/);
    // A pair whose groups differ means the file is not what we think: skip rather than mislabel.
    if (valueGroup !== group || !group.endsWith(':')) continue;
    names.forEach((name, n) => counters.set(`${group.slice(0, -1)}${name}`, Number(values[n])));
  }
  return counters;
}

/** Every counter of /proc/net/snmp and /proc/net/netstat, read now. */
export async function readCounters(procRoot = '/proc'): Promise<Map<string, number>> {
  const files = await Promise.all(['snmp', 'netstat'].map((name) => readFile(join(procRoot, 'net', name), 'utf8')));
  return new Map(files.flatMap((text) => [...parseCounters(text)]));
}

/** One counter's value now; NaN when this kernel has no counter of that name. */
export async function readCounter(name: string, procRoot?: string): Promise<number> {
  return (await readCounters(procRoot)).get(name) ?? Number.NaN;
}

/**
 * Polls `name` until it exceeds `before` or STATE_DEADLINE_MS passes, and returns the last value:
 * the kernel counts as it handles a packet, and nothing tells a program when that has happened.
 */
export async function waitForCounterAbove(name: string, before: number, { deadlineMs = STATE_DEADLINE_MS, procRoot }: { deadlineMs?: number; procRoot?: string } = {}): Promise<number> {
  const start = performance.now();
  for (;;) {
    const value = await readCounter(name, procRoot);
    if (value > before || performance.now() - start >= deadlineMs) return value;
    await sleep(POLL_INTERVAL_MS);
  }
}
