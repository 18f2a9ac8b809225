/**
 * Random echo sessions, shared by the fuzz test and the stress suite: random bytes sent in
 * random chunks, with a random half-close point, and everything echoed collected.
 */
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Random } from './random.js';
import { readAll } from './servers.js';

/** When the client sends its FIN, relative to its data and the echo. */
export const HALF_CLOSE_POINTS = ['with-last-chunk', 'after-a-pause', 'after-first-echo'] as const;

export interface EchoCase {
  data: Buffer;
  /** The data is written in chunks of these sizes. */
  chunks: number[];
  /** Yield to the event loop (or wait a millisecond) between chunks, so the server sees them apart. */
  pauseBetweenChunks: boolean;
  halfClose: (typeof HALF_CLOSE_POINTS)[number];
  /** The client stops reading for a while, so the server's writes back up (backpressure). */
  slowReader: boolean;
}

export function randomEchoCase(random: Random, maxBytes: number): EchoCase {
  const length = random.chance(0.1) ? 0 : random.logInt(1, maxBytes);
  const data = random.bytes(length);
  const chunks: number[] = [];
  for (let left = length; left > 0; ) {
    const size = Math.min(left, random.logInt(1, 64 * 1024));
    chunks.push(size);
    left -= size;
  }
  return { data, chunks, pauseBetweenChunks: random.chance(0.5), halfClose: random.pick(HALF_CLOSE_POINTS), slowReader: random.chance(0.2) };
}

/** Sends the case's bytes as it says, and returns everything echoed until the server's FIN. */
export async function playEchoCase(port: number, c: EchoCase, random: Random, localAddress?: string): Promise<Buffer> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, ...(localAddress !== undefined && { localAddress }) });
  try {
    await once(socket, 'connect');
    if (c.slowReader) {
      socket.pause();
      setTimeout(() => socket.resume(), random.int(5, 50));
    }
    const firstEcho = once(socket, 'data');
    const reply = readAll(socket);
    let at = 0;
    for (const [i, size] of c.chunks.entries()) {
      const chunk = c.data.subarray(at, at + size);
      at += size;
      const last = i === c.chunks.length - 1;
      if (last && c.halfClose === 'with-last-chunk') socket.end(chunk);
      else if (!socket.write(chunk)) await once(socket, 'drain');
      if (c.pauseBetweenChunks) await (random.chance(0.8) ? new Promise(setImmediate) : sleep(1));
    }
    if (c.halfClose === 'after-first-echo' && c.data.length > 0) await firstEcho;
    if (c.halfClose === 'after-a-pause') await sleep(random.int(0, 5));
    if (!socket.writableEnded) socket.end();
    return await reply;
  } finally {
    socket.destroy();
  }
}

/** Where two buffers first differ (the shorter one's length when one is a prefix of the other). */
export function firstDifference(actual: Buffer, expected: Buffer): number {
  const length = Math.min(actual.length, expected.length);
  for (let i = 0; i < length; i++) if (actual[i] !== expected[i]) return i;
  return length;
}

/** Runs `task` on every item, at most `parallel` at a time. */
export async function forEachLimited<T>(items: readonly T[], parallel: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      await task(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, worker));
}
