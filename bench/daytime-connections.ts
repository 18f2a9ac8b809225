/**
 * Daytime: connections per second. 8 connectors each loop: connect, read until EOF, check that
 * exactly one well-formed asctime line arrived, close, connect again. Each connection is a full
 * TCP life (handshake, one segment, FIN both ways), so this measures the server's per-connection
 * cost: accept, its bookkeeping and logging, and the close.
 *
 * The server closes first, so every connection leaves a TIME_WAIT on the server's side.
 */
import net from 'node:net';
import { LOOPBACK, measureRate } from './load-tools.js';
import type { LoadContext, Measurement, Scenario } from './scenario.js';

const CONNECTORS = 8;
/** asctime(3) and a line end: "Sun Nov  1 09:05:03 2026\n". */
const DAYTIME_LINE = /^(Sun|Mon|Tue|Wed|Thu|Fri|Sat) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123]\d \d\d:\d\d:\d\d \d{4}\r?\n$/;

async function daytimeConnections(ctx: LoadContext): Promise<Measurement> {
  let completed = 0;
  let errors = 0;
  let failure: Error | undefined;
  let running = true;

  /** One connector: a loop of whole connections, until told to stop. */
  const connector = (): Promise<void> =>
    new Promise((resolve) => {
      const next = (): void => {
        if (!running || failure !== undefined) return resolve();
        let text = '';
        const socket = net.connect({ host: LOOPBACK, port: ctx.port });
        socket.setEncoding('latin1');
        socket.on('data', (chunk: string) => (text += chunk));
        socket.on('end', () => {
          if (DAYTIME_LINE.test(text)) completed += 1;
          else failure ??= new Error(`not a daytime line: ${JSON.stringify(text)}`);
        });
        // An error (say, a reset) is counted; the connector carries on with a new connection.
        socket.on('error', () => (errors += 1));
        socket.on('close', next);
      };
      next();
    });

  const connectors = Array.from({ length: CONNECTORS }, connector);
  let errorsBefore = 0;
  const result = await measureRate(ctx, () => completed, {
    details: { begin: () => (errorsBefore = errors), end: () => ({ errors: errors - errorsBefore }) },
  });
  running = false;
  await Promise.all(connectors);
  if (failure !== undefined) throw failure;
  return result;
}

export const daytimeConnectionRate: Scenario = {
  name: 'daytime',
  summary: `daytime, ${CONNECTORS} concurrent connectors, each checking one well-formed line and EOF: connections/s`,
  protocol: 'daytime',
  metric: { name: 'connections', unit: 'conn/s' },
  operation: { name: 'connection', perUnit: 1 },
  target: { kind: 'min-ratio', value: 0.9 },
  timed: true,
  load: daytimeConnections,
};
