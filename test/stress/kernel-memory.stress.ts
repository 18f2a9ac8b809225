/**
 * Kernel memory per client: chargen writes while the connection takes more, so a client that never
 * reads leaves the server's send buffer full, and Linux grows that buffer (autotuning) up to
 * net.ipv4.tcp_wmem's maximum. That memory is the kernel's, not the server's: its RSS stays flat.
 * The machine-wide count of pages that TCP sockets hold is /proc/net/sockstat's `TCP: ... mem N`.
 * This scenario measures what 448 such clients cost (the issue's figure: 1.6 GiB), with the
 * server's per-connection cap on unacknowledged bytes (--max-send-queue, default 256 KiB), without
 * it (0: the kernel alone, as before the cap), and with SO_SNDBUF set by a supervisor instead; and
 * that it all comes back when they leave. The clients run on this host, so their receive buffers
 * count too. (Other programs' sockets count as well: the figure is a difference, on a machine at rest.)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServerProcess } from '../helpers/cli.js';
import { hasPython3 } from '../helpers/programs.js';
import { mib, report } from './helpers/figures.js';
import { connectFrom, loopbackSource } from './helpers/load.js';
import { pollFor, processStats } from './helpers/server-process.js';
import type net from 'node:net';

const CLIENTS = 448;
const PAGE_BYTES = 4096;
/** How long the clients hold their connections, not reading, at least: time for the send buffers to fill. */
const HOLD_MS = 3000;
/**
 * Then until the kernel's TCP memory stops growing (less than 1% in half a second), at most this
 * long: on a busy machine, 3 s is not always enough for every buffer to grow to its maximum.
 */
const SETTLE_LIMIT_MS = 20_000;
const SETTLE_STEP_MS = 500;

/** Pages of memory the kernel's TCP sockets hold, machine-wide. */
function tcpMemoryPages(): number {
  return Number(/^TCP:.* mem (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'))?.[1] ?? NaN);
}

/** The kernel's TCP memory once it has stopped growing (or at SETTLE_LIMIT_MS). */
async function settledTcpMemoryPages(): Promise<number> {
  const deadline = performance.now() + SETTLE_LIMIT_MS;
  let last = tcpMemoryPages();
  for (;;) {
    await sleep(SETTLE_STEP_MS);
    const now = tcpMemoryPages();
    if (now <= last * 1.01 || performance.now() > deadline) return now;
    last = now;
  }
}

/** A net.ipv4 triple (min, default, max), e.g. tcp_wmem. */
const sysctlTriple = (name: string): number[] => readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/).map(Number);

/** The server's default cap, as `lab-server --help` states it. */
const MAX_SEND_QUEUE = 256 * 1024;
/**
 * What one capped client may pin: the server's Send-Q (the cap, plus up to one loopback segment,
 * 64 KiB, for the write that crossed it) and the client's receive buffer, which a client that
 * never reads leaves at its first size (tcp_rmem's default); half as much again for the kernel's
 * bookkeeping (each buffer is charged by its true size, headers and slack included).
 */
const cappedBoundPerClient = (): number => 1.5 * (MAX_SEND_QUEUE + 64 * 1024 + sysctlTriple('tcp_rmem')[1]!);

/**
 * A supervisor that sets SO_SNDBUF on the listening socket, as systemd's SendBuffer= does: python3
 * binds 127.0.0.1:0 with it, puts the socket on descriptor 3 and execs lab-server with
 * LISTEN_FDS=1 (same pid), which serves it (--systemd). Accepted sockets inherit the size, locked:
 * the kernel no longer grows it.
 */
const withSendBuffer = (bytes: number): string[] => [
  'python3', '-c',
  'import os, socket, sys\n' +
    's = socket.socket()\n' +
    `s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, ${bytes})\n` +
    "s.bind(('127.0.0.1', 0)); s.listen(128)\n" +
    // Python's sockets are closed on exec unless made inheritable (and the socket may be 3 already).
    'if s.fileno() != 3: os.dup2(s.fileno(), 3)\n' +
    'os.set_inheritable(3, True)\n' +
    "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))\n" +
    'os.execv(sys.argv[1], sys.argv[1:])',
];
/** What SendBuffer= the docs suggest for a public chargen: 64 KiB (the kernel doubles it for its bookkeeping). */
const SEND_BUFFER_BYTES = 64 * 1024;

const VARIANTS = [
  { how: 'the default --max-send-queue (256 KiB)', args: [] as string[], capped: true },
  { how: 'no cap (--max-send-queue 0: the kernel alone, as before)', args: ['--max-send-queue', '0'], capped: false },
  { how: `no cap, SO_SNDBUF ${SEND_BUFFER_BYTES / 1024} KiB on the listening socket (systemd SendBuffer=)`, args: ['--max-send-queue', '0'], sendBuffer: SEND_BUFFER_BYTES, capped: false },
];

for (const { how, args, sendBuffer, capped } of VARIANTS) {
  test(`${CLIENTS} chargen clients that never read, ${how}: the kernel memory they pin, and that it comes back`, { timeout: 240_000, skip: sendBuffer !== undefined && !hasPython3 && 'needs python3 to set SO_SNDBUF' }, async (t) => {
  const server = sendBuffer === undefined
    ? await startServerProcess(['chargen', '--host', '127.0.0.1', ...args])
    : await startServerProcess(['chargen', '--systemd', ...args], { prefix: withSendBuffer(sendBuffer) });
  t.after(() => server.child.exitCode === null && server.child.kill('SIGKILL'));
  const pid = server.child.pid!;
  const before = tcpMemoryPages();
  const rssBefore = processStats(pid).rssBytes;

  const clients: net.Socket[] = [];
  const connected = performance.now();
  for (let i = 0; i < CLIENTS; i++) {
    // Each from an address of its own: 448 from one would pass --max-per-source (256).
    const socket = await connectFrom(server.port, loopbackSource(70, i));
    socket.pause(); // never reads
    socket.on('error', () => {});
    clients.push(socket);
  }
  await sleep(HOLD_MS);
  const holding = await settledTcpMemoryPages();
  const heldMs = Math.round(performance.now() - connected);
  const rssHolding = processStats(pid).rssBytes;
  for (const socket of clients) socket.resetAndDestroy();
  const after = await pollFor(() => (tcpMemoryPages() <= before + (holding - before) / 10 ? tcpMemoryPages() : undefined), 30_000);
  await server.stop('SIGTERM');

  const pinned = (holding - before) * PAGE_BYTES;
  const bound = CLIENTS * cappedBoundPerClient();
  report(t, 'kernel-memory', [
    ['chargen clients that never read', `${CLIENTS}, ${heldMs} ms from the first connect to the reading, ${how}`],
    ['kernel TCP memory before / holding / after (sockstat pages)', `${before} / ${holding} / ${after ?? tcpMemoryPages()}`],
    ['pinned in all, per client', `${mib(pinned)}, ${mib(pinned / CLIENTS)} (net.ipv4.tcp_wmem max ${mib(sysctlTriple('tcp_wmem')[2]!)})`],
    ['bound with the cap', `${mib(bound)} (${mib(cappedBoundPerClient())} a client)`],
    ['server RSS before / holding', `${mib(rssBefore)} / ${mib(rssHolding)}`],
  ]);
  assert.ok(holding > before, 'the stalled clients hold kernel memory');
  if (capped) assert.ok(pinned < bound, `${mib(pinned)} pinned by ${CLIENTS} clients, over the bound of ${mib(bound)} that --max-send-queue ${MAX_SEND_QUEUE} sets`);
  // Locked at 2 × 64 KiB on our side (the kernel doubles SO_SNDBUF), plus what the client's receive buffer holds.
  if (sendBuffer !== undefined) assert.ok(pinned / CLIENTS < 1024 * 1024, `${mib(pinned / CLIENTS)} per client, with SO_SNDBUF ${sendBuffer}`);
  assert.notEqual(after, undefined, 'the kernel memory came back once the clients reset');
  });
}
