import assert from 'node:assert/strict';
import test from 'node:test';
import { ConnectionTracker, type Connection } from '../src/capture/connection-tracker.js';
import type { Segment } from '../src/capture/segment.js';
import { closingSegments, incompleteCapture } from '../src/labs/wire.js';
import { Exchange, daytimeExchange } from './helpers/segments.js';

/** The one connection the segments make, finished or not. */
function connectionOf(segments: readonly Segment[]): Connection {
  const finished: Connection[] = [];
  const tracker = new ConnectionTracker({ onFinished: (connection) => finished.push(connection) });
  for (const segment of segments) tracker.add(segment);
  const all = [...finished, ...tracker.flush()];
  assert.equal(all.length, 1, 'one connection');
  return all[0]!;
}

/** lab server-killed's C client: the killed server's FIN, the client's data after it, the RST. */
function killedServer(): Segment[] {
  const exchange = new Exchange();
  exchange.client('SYN', { afterUs: 0 });
  exchange.server('SYN,ACK');
  exchange.client('ACK');
  exchange.server('FIN,ACK');
  exchange.client('ACK');
  exchange.client('PSH,ACK', { payload: 'second line\n' });
  exchange.server('RST', { seq: exchange.next('server') });
  return exchange.segments;
}

test('a whole capture: each end closed with FIN (daytime), or with FIN then RST (a killed server written to)', () => {
  const daytime = connectionOf(daytimeExchange().segments);
  assert.equal(incompleteCapture(daytime), undefined);
  assert.deepEqual([closingSegments(daytime, 'server'), closingSegments(daytime, 'client')], ['FIN', 'FIN']);
  const killed = connectionOf(killedServer());
  assert.equal(incompleteCapture(killed), undefined);
  assert.equal(closingSegments(killed, 'server'), 'FIN then RST');
});

test('a refused SYN: the RST,ACK alone is a whole connection', () => {
  const exchange = new Exchange();
  exchange.client('SYN', { afterUs: 0 });
  exchange.server('RST,ACK', { seq: 0 });
  const refused = connectionOf(exchange.segments);
  assert.equal(incompleteCapture(refused), undefined);
  assert.deepEqual([closingSegments(refused, 'server'), closingSegments(refused, 'client')], ['RST', 'neither']);
});

test('a capture that missed a FIN says so, rather than let a check read "RST" where FIN then RST was sent', () => {
  // tcpdump dropped the killed server's FIN: the client's ACK acknowledges a number never seen sent.
  const withoutFin = killedServer().filter((_, i) => i !== 3);
  assert.equal(incompleteCapture(connectionOf(withoutFin)), 'the capture missed some of its segments');
  // The daytime server's FIN dropped: the client's ACK of it gives it away too.
  const daytime = daytimeExchange().segments.filter((_, i) => i !== 5);
  assert.match(incompleteCapture(connectionOf(daytime)) ?? '', /missed|did not see it end/);
});

test('a capture that did not see the end, or the start, says so', () => {
  const unfinished = daytimeExchange().segments.slice(0, 5);
  assert.equal(incompleteCapture(connectionOf(unfinished)), 'the capture did not see it end');
  const late = daytimeExchange().segments.slice(3);
  assert.equal(incompleteCapture(connectionOf(late)), 'the capture began after its handshake');
});
