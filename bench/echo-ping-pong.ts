/**
 * Echo ping-pong: one 64-byte line out, wait for its echo, send the next. On 1 connection this
 * measures latency (every round trip crosses loopback twice and wakes both processes); on 100
 * it measures how many small messages the server turns around per second.
 *
 * The load generator checks every echoed line and keeps the round-trip times in a histogram
 * with 1 µs buckets; p50 and p99 come from it.
 */
import { runNativeLoad } from './native-load.js';
import type { Scenario } from './scenario.js';

const echoPingPong = (connections: number): Scenario => ({
  name: `echo-ping-pong-${connections}`,
  summary: `echo, ${connections} connection${connections > 1 ? 's' : ''}, 64-byte lines one at a time: round trips/s, p50/p99 latency`,
  protocol: 'echo',
  metric: { name: 'round trips', unit: 'rt/s' },
  operation: { name: 'round trip', perUnit: 1 },
  target: { kind: 'min-ratio', value: 0.9 },
  timed: true,
  load: (ctx) => runNativeLoad(ctx, ['pingpong', connections]),
});

export const echoPingPong1 = echoPingPong(1);
export const echoPingPong100 = echoPingPong(100);
