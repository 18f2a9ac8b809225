/**
 * Echo bulk: how many bytes per second the echo server sends back, on 1 connection and on 50.
 *
 * Each connection of the load generator writes 64 KiB at a time and keeps a bounded amount in
 * flight (written but not yet echoed), so neither side buffers without limit. Every byte that
 * comes back is compared with what was sent; only verified bytes count. The data is text in
 * 64-byte lines, as a person's client sends, so lab-server's per-line message logging is on the
 * hot path too.
 *
 * The `-trim` variants take the C allocator out of the comparison. Node reads each chunk into a
 * fresh 64 KiB malloc block, freed in batches when the garbage collector runs, and by default glibc
 * may give those pages back to the kernel after each batch (brk) only to fault them in again, 4 KiB
 * at a time. lab-server raises glibc's trim threshold at startup (src/cli/malloc-thresholds.ts); the
 * bare baseline does not, and whether it pays depends on where live blocks happen to sit in its heap.
 * The -trim runs set the threshold from the environment for both servers, so they compare the code
 * alone; they have no target of their own.
 */
import { runNativeLoad } from './native-load.js';
import type { Scenario } from './scenario.js';

const WRITE_BYTES = 64 * 1024;
/** Bytes in flight across all connections, and at least this per connection. */
const TOTAL_WINDOW_BYTES = 4 * 1024 * 1024;
const MIN_WINDOW_BYTES = 256 * 1024;
/**
 * Bulk throughput takes a few seconds to settle (the kernel grows the socket buffers, the heap
 * finds its layout). On 50 connections with trimming held off, lab-server measured 0.84 of the
 * baseline after 0.5 s of warm-up, 0.98 after 2 s and 1.02 after 3 s.
 */
export const BULK_WARMUP_MS = 3000;
/** glibc's malloc keeps up to this much free memory at the top of its heap instead of trimming it. */
const KEEP_FREED_HEAP = { GLIBC_TUNABLES: `glibc.malloc.trim_threshold=${128 * 1024 * 1024}` };

const echoBulk = (connections: number, trimHeldOff = false): Scenario => {
  const window = Math.max(MIN_WINDOW_BYTES, Math.floor(TOTAL_WINDOW_BYTES / connections / WRITE_BYTES) * WRITE_BYTES);
  return {
    name: `echo-bulk-${connections}${trimHeldOff ? '-trim' : ''}`,
    summary: `echo, ${connections} connection${connections > 1 ? 's' : ''}, 64 KiB writes: MB/s of verified echoed bytes` + (trimHeldOff ? '; both servers with glibc heap trimming held off' : ''),
    protocol: 'echo',
    ...(trimHeldOff && { serverEnv: KEEP_FREED_HEAP }),
    metric: { name: 'throughput', unit: 'MB/s' },
    operation: { name: 'MB', perUnit: 1 },
    // The target is for the servers as they start by default; the -trim runs are a reference.
    ...(!trimHeldOff && { target: { kind: 'min-ratio', value: 0.95 } }),
    timed: true,
    warmupMs: BULK_WARMUP_MS,
    load: (ctx) => runNativeLoad(ctx, ['bulk', connections, window], 1e6),
  };
};

export const echoBulk1 = echoBulk(1);
export const echoBulk50 = echoBulk(50);
export const echoBulk1Trim = echoBulk(1, true);
export const echoBulk50Trim = echoBulk(50, true);
