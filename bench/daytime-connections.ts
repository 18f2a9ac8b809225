/**
 * Daytime: connections per second. 8 connectors each loop: connect, read until EOF, check that
 * exactly one well-formed asctime line arrived, close, connect again. Each connection is a full
 * TCP life (handshake, one segment, FIN both ways), so this measures the server's per-connection
 * cost: accept, its bookkeeping and logging, and the close.
 *
 * The server closes first, so every connection leaves a TIME_WAIT on the server's side.
 */
import { runNativeLoad } from './native-load.js';
import type { Scenario } from './scenario.js';

const CONNECTORS = 8;

export const daytimeConnectionRate: Scenario = {
  name: 'daytime',
  summary: `daytime, ${CONNECTORS} concurrent connectors, each checking one well-formed line and EOF: connections/s`,
  protocol: 'daytime',
  metric: { name: 'connections', unit: 'conn/s' },
  operation: { name: 'connection', perUnit: 1 },
  target: { kind: 'min-ratio', value: 0.9 },
  timed: true,
  load: (ctx) => runNativeLoad(ctx, ['daytime', CONNECTORS]),
};
