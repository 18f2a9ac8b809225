/** Helpers shared by the scenarios' load generators (they run in bench/load-process.ts). */
import { once } from 'node:events';
import net from 'node:net';
import { CpuWindow } from './proc-stats.js';
import type { LoadContext, Measurement } from './scenario.js';
import { sleep } from './stats.js';

export const LOOPBACK = '127.0.0.1';

/** Connects to the server under test; rejects on a connect error. */
export async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: LOOPBACK, port, noDelay: true });
  await once(socket, 'connect');
  return socket;
}

/**
 * Opens `count` connections, at most `parallel` handshakes at a time: the server's listen
 * backlog holds 511 pending connections (Node's default), and a full backlog drops SYNs, which
 * the client then retries only after a second.
 */
export async function connectMany(port: number, count: number, parallel: number, deadline: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  let reset: Error | undefined;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && performance.now() < deadline && reset === undefined) {
      next += 1;
      const socket = await connect(port);
      // Until the scenario adds its own listener, an error here must not crash us unexplained.
      socket.once('error', (error) => (reset ??= error));
      sockets.push(socket);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  if (reset !== undefined) {
    for (const socket of sockets) socket.destroy();
    throw new Error(`a connection failed while opening ${count} (${reset.message}): did a server limit such as --max-per-source refuse it?`);
  }
  return sockets;
}

/** Secondary figures taken over the same window (latency percentiles, error counts). */
export interface WindowDetails {
  begin(): void;
  end(): Record<string, number>;
}

/**
 * The rate scenarios' measurement. After `warmupMs` untimed, it measures how fast `count()`
 * grows during `durationMs` (per second, in units of `perUnit` counts), and the server's CPU
 * time over the same window. The load keeps running throughout, so the window sees a steady state.
 */
export async function measureRate(ctx: LoadContext, count: () => number, { perUnit = 1, details }: { perUnit?: number; details?: WindowDetails } = {}): Promise<Measurement> {
  const cpu = new CpuWindow(ctx.serverPid);
  await sleep(ctx.warmupMs);
  cpu.begin();
  details?.begin();
  const start = count();
  await sleep(ctx.durationMs);
  const operations = (count() - start) / perUnit;
  const { serverCpuMs, windowMs } = cpu.end();
  return { value: operations / (windowMs / 1000), operations, serverCpuMs, windowMs, ...(details && { details: details.end() }) };
}

/**
 * 64-byte lines of printable text, as a student's client would send: 63 characters and "\n".
 * Each line differs, so an echo that mixes up lines is caught.
 */
export function textLine(index: number): Buffer {
  const head = `line ${index} `;
  return Buffer.from(head + 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ'.repeat(2).slice(0, 63 - head.length) + '\n');
}
