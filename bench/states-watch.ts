/**
 * `lab-server states` on a crowded table: many TIME_WAIT sockets on one port, as any client can
 * leave behind on a daytime server (the server closes first, so each connection leaves one).
 * It measures one `states --port P` (wall time, exit status) and a `states --port P --watch` for a
 * few seconds (CPU time per refresh, peak RSS, bytes printed).
 *
 * Not a scenario of `npm run bench`, which compares a server with a baseline one. Run it alone:
 *
 *     node dist/bench/states-watch.js [--sockets N] [--seconds S] [--cli PATH]
 *
 * `--cli` runs another build's `dist/src/cli/lab-server.js`; given twice, both run, one after the
 * other, to compare before and after on the same sockets. The sockets live in the kernel for 60 s after the last close (TIME_WAIT): the whole
 * measurement must fit in that, so the loop that makes them is bounded in count and in time.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CpuWindow } from './proc-stats.js';
import { sleep } from './stats.js';

const LOOPBACK = '127.0.0.1';
/** Concurrent connections while making TIME_WAIT sockets: below the listen backlog. */
const PARALLEL = 200;
/**
 * Client addresses, each with its own ~28,000 ephemeral ports: from one address Linux reuses the
 * port of a connection in TIME_WAIT for loopback (net.ipv4.tcp_tw_reuse = 2), ending that TIME_WAIT.
 */
const CLIENT_ADDRESSES = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
/** The sockets must be made well within TIME_WAIT's 60 s, or the first ones expire before we measure. */
const SETUP_LIMIT_MS = 25_000;
const DEFAULT_CLI = fileURLToPath(new URL('../src/cli/lab-server.js', import.meta.url));

const { values: options } = parseArgs({
  options: { sockets: { type: 'string', default: '30000' }, seconds: { type: 'string', default: '5' }, cli: { type: 'string', multiple: true, default: [DEFAULT_CLI] } },
});
const wanted = Number(options.sockets);
const seconds = Number(options.seconds);

/** TIME_WAIT sockets in the kernel (IPv4 and IPv6), from /proc/net/sockstat. */
const timeWaitCount = (): number => Number(/ tw (\d+)/.exec(readFileSync('/proc/net/sockstat', 'utf8'))?.[1] ?? 0);

/** A server that closes first, like daytime: each connection leaves the server's end in TIME_WAIT. */
async function makeTimeWaits(count: number): Promise<{ port: number; made: number; ms: number }> {
  const server = net.createServer((socket) => socket.on('error', () => undefined).end());
  server.listen({ host: LOOPBACK, port: 0, backlog: 1024 });
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const start = performance.now();
  let next = 0;
  let made = 0;
  const worker = async (): Promise<void> => {
    while (next < count && performance.now() - start < SETUP_LIMIT_MS) {
      const localAddress = CLIENT_ADDRESSES[next % CLIENT_ADDRESSES.length];
      next += 1;
      const socket = net.connect({ host: LOOPBACK, port, localAddress }).on('error', () => undefined);
      socket.resume();
      await once(socket, 'close');
      made += 1;
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  server.close();
  return { port, made, ms: performance.now() - start };
}

/** Peak resident memory of a running process (VmHWM), in MiB. */
const peakRssMiB = (pid: number): number => Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;

/** One `states` run to completion: exit status, wall time, bytes printed. */
async function runOnce(cli: string, args: string[]): Promise<{ status: number | null; ms: number; bytes: number; stderr: string }> {
  const start = performance.now();
  const child = spawn(process.execPath, [cli, 'states', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let bytes = 0;
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (bytes += chunk.length));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [status] = (await once(child, 'close')) as [number | null];
  return { status, ms: performance.now() - start, bytes, stderr: stderr.trim().split('\n')[0] ?? '' };
}

/**
 * `states --watch` for `seconds` after its first table: CPU time per refresh (CPU per second would
 * depend on how long the refreshes wait for a CPU on a busy machine), peak RSS, bytes per refresh.
 */
async function watch(cli: string, args: string[]): Promise<{ cpuMsPerRefresh: number; peakMiB: number; refreshes: number; bytesPerRefresh: number }> {
  const child = spawn(process.execPath, [cli, 'states', '--watch', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let bytes = 0;
  let refreshes = 0;
  // Into a pipe, each refresh starts with a line `--- <time>  TCP sockets ...`.
  child.stdout.setEncoding('latin1').on('data', (text: string) => {
    bytes += text.length;
    refreshes += text.match(/^--- \d/gm)?.length ?? 0;
  });
  await once(child.stdout, 'data', { signal: AbortSignal.timeout(60_000) });
  const cpu = new CpuWindow(child.pid!);
  cpu.begin();
  const [bytesAtStart, refreshesAtStart] = [bytes, refreshes];
  await sleep(seconds * 1000);
  const { serverCpuMs } = cpu.end();
  const peakMiB = peakRssMiB(child.pid!);
  const counted = Math.max(refreshes - refreshesAtStart, 1);
  child.kill('SIGTERM');
  await once(child, 'close');
  return { cpuMsPerRefresh: serverCpuMs / counted, peakMiB, refreshes: counted, bytesPerRefresh: Math.round((bytes - bytesAtStart) / counted) };
}

const { port, made, ms } = await makeTimeWaits(wanted);
console.log(`made ${made} TIME_WAIT sockets on 127.0.0.1:${port} in ${(ms / 1000).toFixed(1)} s; the kernel holds ${timeWaitCount()} in TIME_WAIT`);
for (const cli of options.cli) {
  const single = await runOnce(cli, ['--port', String(port)]);
  console.log(`${cli}\n  states --port ${port}: exit ${single.status}, ${single.ms.toFixed(0)} ms, ${single.bytes} bytes${single.stderr === '' ? '' : `; stderr: ${single.stderr}`}`);
  const watched = await watch(cli, ['--port', String(port)]);
  console.log(
    `  states --port ${port} --watch: ${watched.refreshes} refreshes in ${seconds} s, ${watched.cpuMsPerRefresh.toFixed(0)} ms of CPU each, ` +
      `peak RSS ${watched.peakMiB.toFixed(0)} MiB, ${watched.bytesPerRefresh} bytes each`,
  );
}
console.log(`still in TIME_WAIT at the end: ${timeWaitCount()}`);
