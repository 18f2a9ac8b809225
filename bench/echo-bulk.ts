/**
 * Echo bulk: how many bytes per second the echo server sends back, on 1 connection and on 50.
 *
 * Each connection of the load generator writes 64 KiB at a time and keeps a bounded amount in
 * flight (written but not yet echoed), so neither side buffers without limit. Every byte that
 * comes back is compared with what was sent; only verified bytes count. The data is text in
 * 64-byte lines, as a person's client sends, so lab-server's per-line message logging is on the
 * hot path too.
 */
import { runNativeLoad } from './native-load.js';
import type { Scenario } from './scenario.js';

const WRITE_BYTES = 64 * 1024;
/** Bytes in flight across all connections, and at least this per connection. */
const TOTAL_WINDOW_BYTES = 4 * 1024 * 1024;
const MIN_WINDOW_BYTES = 256 * 1024;

const echoBulk = (connections: number): Scenario => {
  const window = Math.max(MIN_WINDOW_BYTES, Math.floor(TOTAL_WINDOW_BYTES / connections / WRITE_BYTES) * WRITE_BYTES);
  return {
    name: `echo-bulk-${connections}`,
    summary: `echo, ${connections} connection${connections > 1 ? 's' : ''}, 64 KiB writes: MB/s of verified echoed bytes`,
    protocol: 'echo',
    metric: { name: 'throughput', unit: 'MB/s' },
    operation: { name: 'MB', perUnit: 1 },
    target: { kind: 'min-ratio', value: 0.95 },
    timed: true,
    load: (ctx) => runNativeLoad(ctx, ['bulk', connections, window], 1e6),
  };
};

export const echoBulk1 = echoBulk(1);
export const echoBulk50 = echoBulk(50);
