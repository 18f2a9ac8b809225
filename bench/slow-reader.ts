/**
 * Slow reader: one client writes up to 1 GiB to the echo server and never reads a byte.
 * A correct server stops reading when it cannot write (backpressure): the client's receive
 * buffer fills, then the server's send buffer, then the server's write queue passes its
 * high-water mark and it pauses; the kernel then stops accepting the client's bytes, and the
 * client's own writes wait. A server that kept reading would hold the whole gigabyte in memory.
 *
 * Bounded by the byte count and by a time limit; the figure is the server's peak RSS growth.
 */
import { once } from 'node:events';
import { connect, textLine } from './load-tools.js';
import { rssBytes } from './proc-stats.js';
import type { LoadContext, Measurement, Scenario } from './scenario.js';
import { sleep } from './stats.js';

const TOTAL_BYTES = 1024 ** 3;
const TIME_LIMIT_MS = 5000;
const SAMPLE_EVERY_MS = 50;
const CHUNK = Buffer.concat(Array.from({ length: 1024 }, (_, i) => textLine(i)));

async function slowReader(ctx: LoadContext): Promise<Measurement> {
  await sleep(500);
  const before = rssBytes(ctx.serverPid);
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(ctx.serverPid))), SAMPLE_EVERY_MS);
  const socket = await connect(ctx.port);
  socket.pause(); // never read: the echoed bytes pile up in our receive buffer, then stop coming
  const deadline = performance.now() + TIME_LIMIT_MS;
  let written = 0;
  while (written < TOTAL_BYTES && performance.now() < deadline) {
    written += CHUNK.length;
    if (!socket.write(CHUNK)) {
      // Wait for room, or for the time limit, whichever comes first.
      const timeLeft = deadline - performance.now();
      await Promise.race([once(socket, 'drain'), sleep(Math.max(0, timeLeft))]);
    }
  }
  clearInterval(sampler);
  peak = Math.max(peak, rssBytes(ctx.serverPid));
  // What the kernel took from us; the rest still sits in this process's write queue.
  const accepted = socket.bytesWritten - socket.writableLength;
  socket.destroy();
  return { value: (peak - before) / 1e6, details: { acceptedMB: accepted / 1e6, rssBeforeMB: before / 1e6 } };
}

export const slowReaderScenario: Scenario = {
  name: 'slow-reader',
  summary: `echo, one client writes up to 1 GiB and never reads (${TIME_LIMIT_MS / 1000} s limit): server peak RSS growth`,
  protocol: 'echo',
  metric: { name: 'RSS growth', unit: 'MB' },
  target: { kind: 'max-value', value: 16 },
  runs: { full: 2, quick: 1 },
  timed: false,
  load: slowReader,
};
