/**
 * Echo bulk: how many bytes per second the echo server sends back, on 1 connection and on 50.
 *
 * Each client writes 64 KiB at a time and keeps a bounded amount in flight (written but not yet
 * echoed), so it never buffers without limit itself. Every byte that comes back is compared with
 * what was sent; only verified bytes count. The data is text in 64-byte lines, as a person's
 * client sends, so lab-server's per-line message logging is on the hot path too.
 */
import type net from 'node:net';
import { connectMany, measureRate, textLine } from './load-tools.js';
import type { LoadContext, Measurement, Scenario } from './scenario.js';

const WRITE_BYTES = 64 * 1024;
/** Bytes in flight across all connections, and at least this per connection. */
const TOTAL_WINDOW_BYTES = 4 * 1024 * 1024;
const MIN_WINDOW_BYTES = 256 * 1024;

/** 1024 lines of 64 bytes: the 64 KiB every write sends. */
const CHUNK = Buffer.concat(Array.from({ length: WRITE_BYTES / 64 }, (_, i) => textLine(i)));

/** One connection's client: keeps `window` bytes in flight and checks every echoed byte. */
class BulkClient {
  sent = 0;
  verified = 0;

  constructor(
    private readonly socket: net.Socket,
    private readonly window: number,
    private readonly onError: (error: Error) => void,
  ) {
    socket.on('data', (data: Buffer) => this.check(data));
    socket.on('error', onError);
    this.fill();
  }

  stop(): void {
    this.socket.destroy();
  }

  private fill(): void {
    while (this.sent - this.verified < this.window) {
      this.socket.write(CHUNK);
      this.sent += WRITE_BYTES;
    }
  }

  /** The stream is CHUNK repeated, so byte k must equal CHUNK[k % 64 KiB]. */
  private check(data: Buffer): void {
    let at = this.verified % WRITE_BYTES;
    for (let offset = 0; offset < data.length; ) {
      const n = Math.min(data.length - offset, WRITE_BYTES - at);
      if (!data.subarray(offset, offset + n).equals(CHUNK.subarray(at, at + n))) {
        this.onError(new Error(`echoed bytes differ from those sent, near stream offset ${this.verified + offset}`));
        return;
      }
      offset += n;
      at = 0;
    }
    this.verified += data.length;
    this.fill();
  }
}

async function bulk(connections: number, ctx: LoadContext): Promise<Measurement> {
  let failure: Error | undefined;
  const sockets = await connectMany(ctx.port, connections, connections, performance.now() + 10_000);
  const window = Math.max(MIN_WINDOW_BYTES, Math.floor(TOTAL_WINDOW_BYTES / connections / WRITE_BYTES) * WRITE_BYTES);
  const clients = sockets.map((socket) => new BulkClient(socket, window, (error) => (failure ??= error)));
  const verified = (): number => clients.reduce((sum, c) => sum + c.verified, 0);
  const result = await measureRate(ctx, verified, { perUnit: 1e6 }); // MB/s
  for (const client of clients) client.stop();
  if (failure !== undefined) throw failure;
  return result;
}

const echoBulk = (connections: number): Scenario => ({
  name: `echo-bulk-${connections}`,
  summary: `echo, ${connections} connection${connections > 1 ? 's' : ''}, 64 KiB writes: MB/s of verified echoed bytes`,
  protocol: 'echo',
  metric: { name: 'throughput', unit: 'MB/s' },
  operation: { name: 'MB', perUnit: 1 },
  target: { kind: 'min-ratio', value: 0.95 },
  timed: true,
  load: (ctx) => bulk(connections, ctx),
});

export const echoBulk1 = echoBulk(1);
export const echoBulk50 = echoBulk(50);
