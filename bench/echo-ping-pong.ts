/**
 * Echo ping-pong: one 64-byte line out, wait for its echo, send the next. On 1 connection this
 * measures latency (every round trip crosses loopback twice and wakes both processes); on 100
 * it measures how many small messages the server turns around per second.
 *
 * Latency is kept in a histogram with 1 µs buckets; p50 and p99 come from it.
 */
import type net from 'node:net';
import { connectMany, measureRate, textLine } from './load-tools.js';
import type { LoadContext, Measurement, Scenario } from './scenario.js';
import { LatencyHistogram } from './stats.js';

const LINE_BYTES = 64;
/** A few distinct lines, so an echo that mixed them up would be caught. */
const LINES = Array.from({ length: 16 }, (_, i) => textLine(i));

class PingPongClient {
  roundTrips = 0;
  private sentAt = 0;
  private line = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly socket: net.Socket,
    private readonly histogram: { current?: LatencyHistogram },
    private readonly onError: (error: Error) => void,
  ) {
    socket.on('data', (data: Buffer) => this.receive(data));
    socket.on('error', onError);
    this.send();
  }

  stop(): void {
    this.socket.destroy();
  }

  private send(): void {
    this.line = (this.line + 1) % LINES.length;
    this.sentAt = performance.now();
    this.socket.write(LINES[this.line]!);
  }

  private receive(data: Buffer): void {
    // TCP may split the 64 bytes: gather them before comparing.
    this.pending.push(data);
    this.pendingBytes += data.length;
    if (this.pendingBytes < LINE_BYTES) return;
    const echoed = this.pending.length === 1 ? data : Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    if (!echoed.equals(LINES[this.line]!)) {
      this.onError(new Error(`round trip ${this.roundTrips}: got ${JSON.stringify(echoed.toString())}`));
      return;
    }
    this.histogram.current?.record(performance.now() - this.sentAt);
    this.roundTrips += 1;
    this.send();
  }
}

async function pingPong(connections: number, ctx: LoadContext): Promise<Measurement> {
  let failure: Error | undefined;
  const sockets = await connectMany(ctx.port, connections, connections, performance.now() + 10_000);
  // Latencies are recorded only inside the measuring window.
  const histogram: { current?: LatencyHistogram } = {};
  const clients = sockets.map((socket) => new PingPongClient(socket, histogram, (error) => (failure ??= error)));
  const total = (): number => clients.reduce((sum, c) => sum + c.roundTrips, 0);
  const result = await measureRate(ctx, total, {
    details: {
      begin: () => (histogram.current = new LatencyHistogram()),
      end: () => ({ p50us: histogram.current!.percentileUs(0.5), p99us: histogram.current!.percentileUs(0.99) }),
    },
  });
  for (const client of clients) client.stop();
  if (failure !== undefined) throw failure;
  return result;
}

const echoPingPong = (connections: number): Scenario => ({
  name: `echo-ping-pong-${connections}`,
  summary: `echo, ${connections} connection${connections > 1 ? 's' : ''}, 64-byte lines one at a time: round trips/s, p50/p99 latency`,
  protocol: 'echo',
  labServerFlags: connections > 64 ? ['--max-per-source', String(connections)] : [],
  metric: { name: 'round trips', unit: 'rt/s' },
  operation: { name: 'round trip', perUnit: 1 },
  target: { kind: 'min-ratio', value: 0.9 },
  timed: true,
  load: (ctx) => pingPong(connections, ctx),
});

export const echoPingPong1 = echoPingPong(1);
export const echoPingPong100 = echoPingPong(100);
