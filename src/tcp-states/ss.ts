/**
 * Reading the TCP sockets of one port with ss(8), from iproute2. ss asks the kernel over netlink
 * (NETLINK_SOCK_DIAG, which Node cannot open itself) and hands it a filter, so the kernel skips the
 * other sockets instead of printing them: on a host with 25,000 sockets, one port costs a third of
 * what the whole /proc/net/tcp does. That is how the kernel-state report keeps working on a busy
 * machine. A row looks like this (`ss -tanHo state all '( sport = :13 or dport = :13 )'`):
 *
 *     TIME-WAIT 0      0      127.0.0.1:13 127.0.0.1:40312 timer:(timewait,59sec,0)
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Endpoint } from '../framework/endpoint.js';
import type { TcpSocketEntry, TcpState, TimerKind } from './parse.js';
import { TCP_STATES } from './parse.js';

const run = promisify(execFile);

/** ss's names for the states, and the kernel's (include/net/tcp_states.h). */
const STATE_NAMES: Record<string, TcpState> = {
  ESTAB: 'ESTABLISHED',
  'SYN-SENT': 'SYN_SENT',
  'SYN-RECV': 'SYN_RECV',
  'FIN-WAIT-1': 'FIN_WAIT1',
  'FIN-WAIT-2': 'FIN_WAIT2',
  'TIME-WAIT': 'TIME_WAIT',
  UNCONN: 'CLOSE',
  'CLOSE-WAIT': 'CLOSE_WAIT',
  'LAST-ACK': 'LAST_ACK',
  LISTEN: 'LISTEN',
  CLOSING: 'CLOSING',
};

const TIMER_NAMES: Record<string, TimerKind> = { on: 'retransmit', keepalive: 'keepalive', timewait: 'time-wait', persist: 'zero-window-probe' };

/** How long ss may take before we give up on this read. */
const SS_DEADLINE_MS = 5000;

/** The sockets with `port` at either end, or undefined when ss is not installed. */
export async function readPortWithSs(port: number): Promise<TcpSocketEntry[] | undefined> {
  let stdout: string;
  try {
    ({ stdout } = await run('ss', ['-tanHo', 'state', 'all', `( sport = :${port} or dport = :${port} )`], { timeout: SS_DEADLINE_MS, maxBuffer: 64 * 1024 * 1024 }));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return parseSs(stdout);
}

/** Rows of `ss -tanHo state all` as TcpSocketEntry (uid and inode are not printed: 0). */
export function parseSs(text: string): TcpSocketEntry[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [stateName = '', recvQ = '', sendQ = '', local = '', remote = '', ...rest] = line.trim().split(/\s+/);
      const state = STATE_NAMES[stateName];
      if (state === undefined) throw new Error(`ss: unknown state ${JSON.stringify(stateName)} in ${JSON.stringify(line)}`);
      const timer = /timer:\((\w+),([^,]+),(\d+)\)/.exec(rest.join(' '));
      const localEnd = parseSsEndpoint(local);
      return {
        family: localEnd.address.includes(':') ? 6 : 4,
        stateCode: TCP_STATES.indexOf(state) + 1,
        state,
        local: localEnd,
        remote: parseSsEndpoint(remote),
        txQueue: Number(sendQ),
        rxQueue: Number(recvQ),
        timer: timer === null ? { kind: 'none', code: 0, remainingMs: 0 } : { kind: TIMER_NAMES[timer[1]!] ?? 'unknown', code: -1, remainingMs: parseSsDuration(timer[2]!) },
        retransmits: timer === null ? 0 : Number(timer[3]),
        // ss prints one count: for the keepalive and persist timers, it is the unanswered probes.
        probes: timer === null || timer[1] === 'on' ? 0 : Number(timer[3]),
        uid: 0,
        inode: 0,
      } satisfies TcpSocketEntry;
    });
}

/** `127.0.0.1:13`, `[::1]:13`, `[::ffff:127.0.0.1]:13`, `0.0.0.0:*`, `127.0.0.53%lo:53`. */
function parseSsEndpoint(text: string): Endpoint {
  const colon = text.lastIndexOf(':');
  const address = text.slice(0, colon).replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  const port = text.slice(colon + 1);
  return { address: address === '*' ? '0.0.0.0' : address, port: port === '*' ? 0 : Number(port) };
}

/** ss prints timers as `59sec`, `340ms`, `5.123ms` (5.123 s) or `1min30sec`. */
export function parseSsDuration(text: string): number {
  const match = /^(?:(\d+)min)?(?:(\d+)(sec|\.))?(?:(\d+)ms)?$/.exec(text);
  if (match === null) return 0;
  const [, minutes = '0', seconds = '0', , milliseconds = '0'] = match;
  return Number(minutes) * 60_000 + Number(seconds) * 1000 + Number(milliseconds);
}
