import assert from 'node:assert/strict';
import test from 'node:test';
import { ConnectionTracker, stateAt, statePath, stepToJson, type Connection, type TrackerOptions } from '../src/capture/connection-tracker.js';
import { crossCheck } from '../src/capture/cross-check.js';
import type { Segment } from '../src/capture/segment.js';
import type { End } from '../src/capture/tcp-machine.js';
import { CLIENT, CLIENT_ISN, DAYTIME_REPLY, Exchange, SELF, SERVER, SERVER_ISN, START_US, daytimeExchange, droppedSynExchange, selfConnectExchange } from './helpers/segments.js';

/** Runs the segments through a tracker; `finished` lists what onFinished got, in order. */
function track(segments: readonly Segment[], options: TrackerOptions = {}) {
  const finished: Connection[] = [];
  const tracker = new ConnectionTracker({ ...options, onFinished: (connection) => finished.push(connection) });
  const steps = segments.map((segment) => tracker.add(segment));
  return { tracker, finished, steps };
}

/** The one connection the segments make, finished or not. */
function connectionOf(segments: readonly Segment[], options: TrackerOptions = {}): Connection {
  const { tracker, finished } = track(segments, options);
  const all = [...finished, ...tracker.flush()];
  assert.equal(all.length, 1, 'one connection');
  return all[0]!;
}

/** The states one end went through, from the one it started in: what the Go net/http tests call the state sequence. */
function transitions(connection: Connection, end: End): string[] {
  const entered = connection.steps.filter((step) => step.changed[end]).flatMap((step) => [step.via?.[end], step.states[end]]);
  return [connection.initialStates[end], ...entered.filter((state) => state !== undefined)];
}

/** A handshake, as the start of a scenario. */
function established(): Exchange {
  const exchange = new Exchange();
  exchange.client('SYN', { afterUs: 0 });
  exchange.server('SYN,ACK');
  exchange.client('ACK');
  return exchange;
}

test('daytime: the server closes first, so it goes FIN_WAIT1 → FIN_WAIT2 → TIME_WAIT; the client CLOSE_WAIT → LAST_ACK → CLOSED', () => {
  const { finished, steps, tracker } = track(daytimeExchange().segments);
  assert.equal(finished.length, 1, 'onFinished once, at the last ACK');
  assert.equal(tracker.tracking, 0, 'and then forgotten');
  const connection = finished[0]!;
  assert.equal(connection.finished, true);
  assert.deepEqual(connection.client, CLIENT);
  assert.deepEqual(connection.server, SERVER);
  assert.deepEqual(transitions(connection, 'client'), ['CLOSED', 'SYN_SENT', 'ESTABLISHED', 'CLOSE_WAIT', 'LAST_ACK', 'CLOSED']);
  assert.deepEqual(transitions(connection, 'server'), ['LISTEN', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT']);
  // Row by row: the sender's state changes when it sends, the receiver's when the segment arrives.
  assert.deepEqual(
    steps.map((step) => `${step!.from} ${step!.states.client} ${step!.states.server}`),
    [
      'client SYN_SENT LISTEN',
      'server ESTABLISHED SYN_RECV',
      'client ESTABLISHED ESTABLISHED',
      'server ESTABLISHED ESTABLISHED',
      'client ESTABLISHED ESTABLISHED',
      'server CLOSE_WAIT FIN_WAIT1',
      'client CLOSE_WAIT FIN_WAIT2',
      'client LAST_ACK TIME_WAIT',
      'server CLOSED TIME_WAIT',
    ],
  );
  // Relative numbers, as Wireshark shows them: the SYN is 0, the first data byte 1, and the FIN takes one number.
  assert.deepEqual(steps.map((step) => step!.relativeSeq), [0, 0, 1, 1, 1, 26, 1, 1, 27]);
  assert.deepEqual(steps.map((step) => step!.relativeAck), [undefined, 1, 1, 1, 26, 1, 27, 27, 2]);
  assert.deepEqual(steps.map((step) => step!.payloadLength), [0, 0, 0, 25, 0, 0, 0, 0, 0]);
  assert.deepEqual(steps.map((step) => step!.offsetMs), [0, 0.011, 0.02, 0.154, 0.162, 0.183, 0.223, 0.335, 0.345]);
  assert.deepEqual(steps.map((step) => step!.notes), [[], [], [], [], [], [], [], [], []]);
  // A SYN's window is never scaled; after the handshake, both offered window scale 7: 512 × 2^7.
  assert.deepEqual(steps.map((step) => step!.scaledWindow), [65495, 65483, 65536, 65536, 65536, 65536, 65536, 65536, 65536]);
  assert.equal(steps[3]!.segment.payload.toString(), DAYTIME_REPLY);
  assert.deepEqual(connection.bytes, { client: 0, server: 25 });
});

test('echo with a half-close: the client shuts down its sending side, and still receives the echo in FIN_WAIT2', () => {
  const exchange = established();
  exchange.client('PSH,ACK', { payload: 'one\n' });
  exchange.client('FIN,ACK'); // shutdown(SHUT_WR) right after the write
  exchange.server('ACK');
  const echo = exchange.server('PSH,ACK', { payload: 'one\n' });
  exchange.client('ACK');
  exchange.server('FIN,ACK');
  exchange.client('ACK');
  const { finished, steps } = track(exchange.segments);
  const connection = finished[0]!;
  assert.deepEqual(transitions(connection, 'client'), ['CLOSED', 'SYN_SENT', 'ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT']);
  assert.deepEqual(transitions(connection, 'server'), ['LISTEN', 'SYN_RECV', 'ESTABLISHED', 'CLOSE_WAIT', 'LAST_ACK', 'CLOSED']);
  const echoStep = steps[exchange.segments.indexOf(echo)]!;
  assert.deepEqual(echoStep.states, { client: 'FIN_WAIT2', server: 'CLOSE_WAIT' }, 'data flows towards the end in FIN_WAIT2');
  assert.deepEqual(echoStep.notes, ["data after the peer's FIN (half-close)"]);
  assert.deepEqual(connection.bytes, { client: 4, server: 4 });
});

test('a FIN that also acknowledges ours takes FIN_WAIT1 straight to TIME_WAIT', () => {
  const exchange = established();
  exchange.client('FIN,ACK');
  exchange.server('FIN,ACK'); // acknowledges the client's FIN, as Linux does when the server closes on EOF
  exchange.client('ACK');
  const connection = connectionOf(exchange.segments);
  assert.deepEqual(transitions(connection, 'client'), ['CLOSED', 'SYN_SENT', 'ESTABLISHED', 'FIN_WAIT1', 'TIME_WAIT']);
  assert.deepEqual(transitions(connection, 'server'), ['LISTEN', 'SYN_RECV', 'ESTABLISHED', 'CLOSE_WAIT', 'LAST_ACK', 'CLOSED']);
  assert.equal(connection.finished, true);
});

test('a simultaneous close: the FINs cross, both ends pass through CLOSING into TIME_WAIT', () => {
  const exchange = established();
  const clientFin = exchange.next('client');
  exchange.client('FIN,ACK');
  exchange.server('FIN,ACK', { ack: clientFin }); // sent before the client's FIN arrived: it does not acknowledge it
  exchange.client('ACK');
  exchange.server('ACK');
  const { finished, steps } = track(exchange.segments);
  const connection = finished[0]!;
  assert.deepEqual(transitions(connection, 'client'), ['CLOSED', 'SYN_SENT', 'ESTABLISHED', 'FIN_WAIT1', 'CLOSING', 'TIME_WAIT']);
  assert.deepEqual(transitions(connection, 'server'), ['LISTEN', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT1', 'CLOSING', 'TIME_WAIT']);
  assert.deepEqual(
    steps.slice(3).map((step) => `${step!.states.client} ${step!.states.server}`),
    ['FIN_WAIT1 ESTABLISHED', 'CLOSING CLOSING', 'CLOSING TIME_WAIT', 'TIME_WAIT TIME_WAIT'],
    "the server's FIN shows the client's had not arrived: its CLOSE_WAIT is taken back",
  );
  assert.deepEqual(steps[4]!.via, { server: 'FIN_WAIT1' }, 'the server sent its FIN, then the crossing one arrived');
  assert.deepEqual(steps[4]!.notes, ['simultaneous close']);
});

test('a simultaneous open: the SYNs cross, each end goes SYN_SENT → SYN_RECV → ESTABLISHED', () => {
  const exchange = new Exchange({ client: { address: '127.0.0.1', port: 5000 }, server: { address: '127.0.0.1', port: 5001 } });
  exchange.client('SYN', { afterUs: 0 });
  exchange.server('SYN');
  exchange.server('SYN,ACK', { seq: SERVER_ISN });
  exchange.client('SYN,ACK', { seq: CLIENT_ISN });
  const { tracker, steps } = track(exchange.segments);
  const [connection] = tracker.flush();
  assert.deepEqual(transitions(connection!, 'client'), ['CLOSED', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED']);
  assert.deepEqual(transitions(connection!, 'server'), ['CLOSED', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED']);
  assert.deepEqual(steps[1]!.notes, ['simultaneous open']);
  assert.deepEqual(steps.slice(2).map((step) => step!.notes), [[], []], 'the SYN,ACK repeats its own SYN: not a retransmission');
});

test('an RST mid-connection closes both ends at once, and finishes the connection', () => {
  const exchange = established();
  exchange.client('PSH,ACK', { payload: 'unread\n' });
  exchange.server('RST,ACK');
  exchange.client('PSH,ACK', { payload: 'more\n' }); // was already on its way
  const { finished, steps, tracker } = track(exchange.segments);
  assert.equal(finished.length, 1);
  assert.deepEqual(steps[4]!.states, { client: 'CLOSED', server: 'CLOSED' });
  assert.deepEqual(steps[4]!.changed, { client: true, server: true });
  assert.equal(steps.at(-1), undefined, 'a segment after the reset belongs to no connection');
  assert.equal(tracker.ignored, 1);
  assert.equal(finished[0]!.segments, 5);
});

test('a SYN to a closed port: the kernel answers RST, and the server end was never LISTEN', () => {
  const exchange = new Exchange();
  exchange.client('SYN', { afterUs: 0 });
  exchange.server('RST,ACK', { seq: 0 });
  const { finished, steps } = track(exchange.segments);
  const connection = finished[0]!;
  assert.deepEqual(transitions(connection, 'client'), ['CLOSED', 'SYN_SENT', 'CLOSED']);
  assert.deepEqual(transitions(connection, 'server'), ['CLOSED']);
  assert.deepEqual(steps.map((step) => step!.states.server), ['CLOSED', 'CLOSED']);
  assert.deepEqual(steps[1]!.notes, ['no listener: the kernel answered the SYN with RST']);
});

test('a retransmitted FIN is noted, and moves no state twice', () => {
  const exchange = established();
  const fin = exchange.next('server');
  exchange.server('FIN,ACK');
  exchange.server('FIN,ACK', { seq: fin, afterUs: 200_000 }); // the RTO fired before the ACK came
  exchange.client('ACK');
  exchange.client('FIN,ACK');
  exchange.server('ACK');
  const { finished, steps } = track(exchange.segments);
  assert.deepEqual(steps[4]!.notes, ['retransmission']);
  assert.deepEqual(steps[4]!.changed, { client: false, server: false });
  assert.deepEqual(transitions(finished[0]!, 'server'), ['LISTEN', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT']);
  assert.deepEqual(transitions(finished[0]!, 'client'), ['CLOSED', 'SYN_SENT', 'ESTABLISHED', 'CLOSE_WAIT', 'LAST_ACK', 'CLOSED']);
});

test('joined late: no SYN seen, so states start ESTABLISHED and numbers count from the first segment seen', () => {
  const exchange = daytimeExchange();
  const segments = exchange.segments.slice(3); // the capture started after the handshake
  const connection = connectionOf(segments);
  assert.equal(connection.joinedLate, true);
  assert.deepEqual(connection.client, CLIENT, 'the lower port is taken for the server');
  assert.deepEqual(transitions(connection, 'server'), ['ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT']);
  assert.deepEqual(transitions(connection, 'client'), ['ESTABLISHED', 'CLOSE_WAIT', 'LAST_ACK', 'CLOSED']);
  assert.deepEqual(connection.steps.map((step) => step.relativeSeq), [1, 1, 26, 1, 1, 27], 'the same as with the SYNs');
  assert.equal(connection.steps[0]!.scaledWindow, undefined, 'the window scale was on the SYNs');

  // A server on a high port, talking to a client on a low one: serverPorts says which is which.
  const high = new Exchange({ client: { address: '::1', port: 999 }, server: { address: '::1', port: 50000 } });
  high.client('PSH,ACK', { payload: 'x' });
  high.server('ACK');
  assert.equal(connectionOf(high.segments).server.port, 999, 'by default the lower port');
  const told = connectionOf(high.segments, { serverPorts: [50000] });
  assert.equal(told.server.port, 50000);
  assert.equal(told.ipVersion, 6);
});

test('keep-alives, zero windows, window updates and a missed segment are noted', () => {
  const exchange = established();
  exchange.client('PSH,ACK', { payload: 'abc' });
  exchange.server('ACK', { window: 0 }); // its program stopped reading: the buffer is full
  exchange.client('ACK', { seq: exchange.next('client') - 1, afterUs: 200_000 }); // Linux's probe: one byte back, none sent
  exchange.server('ACK', { window: 0 });
  exchange.server('ACK', { window: 512 }); // read at last
  exchange.client('ACK', { seq: exchange.next('client') - 1, afterUs: 7_200_000_000 }); // two hours idle
  exchange.client('PSH,ACK', { payload: 'later', seq: exchange.next('client') + 100 });
  const connection = connectionOf(exchange.segments);
  assert.deepEqual(
    connection.steps.slice(3).map((step) => step.notes),
    [[], ['zero window'], ['zero window probe'], ['zero window'], ['window update'], ['keep-alive'], ['previous segment not captured']],
  );
});

test('maxConnections: the least recently active unfinished connection is dropped and counted, its strays ignored', () => {
  const exchanges = [40000, 40001, 40002].map((port) => new Exchange({ client: { ...CLIENT, port }, server: SERVER }));
  const [a, b, c] = exchanges as [Exchange, Exchange, Exchange];
  a.client('SYN');
  b.client('SYN');
  a.server('SYN,ACK'); // a is now more recently active than b
  c.client('SYN'); // one too many: b goes
  b.server('SYN,ACK');
  const order = [a.segments[0]!, b.segments[0]!, a.segments[1]!, c.segments[0]!, b.segments[1]!];
  const { tracker, steps } = track(order, { maxConnections: 2 });
  assert.equal(tracker.dropped, 1);
  assert.equal(steps[4], undefined, "b's SYN,ACK came after b was dropped");
  assert.equal(tracker.ignored, 1);
  assert.deepEqual(tracker.flush().map((connection) => connection.client.port), [40000, 40002]);
});

test('maxStepsPerConnection: the first steps, every change of state and the close are kept; the rest counted', () => {
  const exchange = established();
  for (let i = 0; i < 100; i++) {
    exchange.client('PSH,ACK', { payload: Buffer.alloc(1000) });
    exchange.server('ACK');
  }
  exchange.client('FIN,ACK');
  exchange.server('ACK');
  for (let i = 0; i < 20; i++) exchange.server('PSH,ACK', { payload: Buffer.alloc(500) }); // half-closed: the server still sends
  exchange.server('FIN,ACK');
  exchange.client('ACK');
  const connection = connectionOf(exchange.segments, { maxStepsPerConnection: 10 });
  const total = exchange.segments.length;
  assert.equal(connection.segments, total);
  const kept = connection.steps.map((step) => step.index);
  assert.deepEqual(kept.slice(0, 10), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'the first 10');
  assert.ok(kept.includes(204) && kept.includes(205), "the client's FIN and its ACK change states: kept");
  assert.deepEqual(kept.slice(-8), [total - 7, total - 6, total - 5, total - 4, total - 3, total - 2, total - 1, total], 'the last 8');
  const omitted = connection.omitted.reduce((sum, run) => sum + run.segments, 0);
  assert.equal(kept.length + omitted, total, 'every step is kept or counted');
  assert.deepEqual(connection.omitted[0], { firstIndex: 11, segments: 193, bytes: 96_000 });
  assert.deepEqual(connection.omitted[1], { firstIndex: 206, segments: 14, bytes: 7000 });
  assert.ok(connection.steps.every((step) => step.segment.payload.length <= 96), 'a step keeps only the start of its payload');
  assert.deepEqual(transitions(connection, 'client'), ['CLOSED', 'SYN_SENT', 'ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT']);
});

test('onFinished is called once per connection; a new SYN on the same ports is a new connection', () => {
  const first = daytimeExchange();
  first.server('ACK', { afterUs: 1000 }); // a stray repeat of the last ACK
  const again = new Exchange(undefined, { client: CLIENT_ISN + 100_000, server: SERVER_ISN + 7 }, START_US + 5_000_000);
  again.client('SYN');
  const { finished, tracker, steps } = track([...first.segments, ...again.segments]);
  assert.equal(finished.length, 1);
  assert.equal(steps[9], undefined, 'the stray is ignored');
  const [reused] = tracker.flush();
  assert.equal(reused!.id, 2);
  assert.deepEqual(reused!.states, { client: 'SYN_SENT', server: 'LISTEN' });
});

test('stateAt: the ladder\'s state of one end at any moment, TIME_WAIT ending after Linux\'s 60 s', () => {
  const connection = connectionOf(daytimeExchange().segments);
  const at = (offsetUs: number) => `${stateAt(connection, 'client', START_US + offsetUs)} ${stateAt(connection, 'server', START_US + offsetUs)}`;
  assert.equal(at(-1), 'CLOSED LISTEN', 'before the SYN');
  assert.equal(at(0), 'SYN_SENT LISTEN', 'a step counts from its own time on');
  assert.equal(at(11), 'ESTABLISHED SYN_RECV', 'the listener took the SYN as its SYN,ACK left');
  assert.equal(at(100), 'ESTABLISHED ESTABLISHED');
  assert.equal(at(200), 'CLOSE_WAIT FIN_WAIT1');
  assert.equal(at(1000), 'CLOSED TIME_WAIT');
  assert.equal(at(335 + 59_999_999), 'CLOSED TIME_WAIT', "the server's TIME_WAIT began with the client's FIN");
  assert.equal(at(335 + 60_000_000), 'CLOSED CLOSED');
});

test('stepToJson: one object per segment, with both states, for trace --json', () => {
  const { steps } = track(daytimeExchange().segments);
  assert.deepEqual(JSON.parse(JSON.stringify(stepToJson(steps[1]!))), {
    timeUs: START_US + 11,
    offsetMs: 0.011,
    connection: 1,
    from: '127.0.0.1:1313',
    to: '127.0.0.1:40312',
    sender: 'server',
    flags: ['SYN', 'ACK'],
    seq: 0,
    ack: 1,
    len: 0,
    window: 65483,
    scaledWindow: 65483,
    options: { mss: 65495, sackPermitted: true, timestamps: { value: 3_105_291_377, echo: 0 }, windowScale: 7 },
    clientState: 'ESTABLISHED',
    serverState: 'SYN_RECV',
    notes: [],
  });
  assert.equal('ack' in stepToJson(steps[0]!), false, 'a SYN without ACK has no acknowledgement');
});

test('sequence numbers that wrap past 2^32 still compare and count from 0', () => {
  const exchange = new Exchange(undefined, { client: 0xffff_fffe, server: 0xffff_ff00 });
  exchange.client('SYN', { afterUs: 0 });
  exchange.server('SYN,ACK');
  exchange.client('ACK');
  exchange.client('PSH,ACK', { payload: 'wrap' });
  exchange.client('PSH,ACK', { payload: 'wrap', seq: 0xffff_ffff }); // the same again
  exchange.server('ACK');
  const connection = connectionOf(exchange.segments);
  assert.deepEqual(connection.steps.map((step) => step.relativeSeq), [0, 0, 1, 1, 1, 1]);
  assert.deepEqual(connection.steps[4]!.notes, ['retransmission']);
  assert.equal(connection.steps[5]!.relativeAck, 5);
});

test('a SYN the listener drops (its accept queue full) leaves it LISTEN; the SYN sent again is a retransmission, and its SYN,ACK makes SYN_RECV', () => {
  const exchange = droppedSynExchange();
  const { steps } = track(exchange.segments);
  assert.deepEqual(
    steps.map((step) => `${step!.from} ${step!.segment.flags === 2 ? 'SYN' : ''} ${step!.states.client} ${step!.states.server}`.replace('  ', ' ')),
    ['client SYN SYN_SENT LISTEN', 'client SYN SYN_SENT LISTEN', 'server ESTABLISHED SYN_RECV', 'client ESTABLISHED ESTABLISHED'],
  );
  assert.deepEqual(steps.map((step) => step!.notes), [[], ['retransmission'], [], []]);
  const connection = connectionOf(exchange.segments);
  assert.deepEqual(transitions(connection, 'server'), ['LISTEN', 'SYN_RECV', 'ESTABLISHED']);
  // Between the two SYNs Linux has no socket for the pair, not even a request socket: the ladder agrees.
  const between = START_US + 500_000;
  assert.equal(stateAt(connection, 'server', between), 'LISTEN');
  assert.deepEqual(crossCheck(connection, [{ timeUs: between, end: 'server', state: 'none' }]).map((check) => check.agrees), [true]);
});

test('a SYN never answered at all leaves the server LISTEN', () => {
  const exchange = new Exchange();
  exchange.client('SYN', { afterUs: 0 });
  const connection = connectionOf(exchange.segments);
  assert.deepEqual(connection.states, { client: 'SYN_SENT', server: 'LISTEN' });
});

test('a socket connected to itself: one socket, SYN_SENT → SYN_RECV → ESTABLISHED by RFC 9293\'s simultaneous open, then FIN_WAIT1 → CLOSING → TIME_WAIT', () => {
  const { finished, steps, tracker } = track(selfConnectExchange().segments);
  assert.equal(finished.length, 1, 'over at the ACK of its FIN: the socket is in TIME_WAIT');
  assert.equal(tracker.tracking, 0);
  const connection = finished[0]!;
  assert.equal(connection.selfConnected, true);
  assert.deepEqual([connection.client, connection.server], [SELF, SELF]);
  assert.deepEqual(connection.initialStates, { client: 'CLOSED', server: 'CLOSED' }, 'no listener anywhere');
  assert.deepEqual(connection.states, { client: 'TIME_WAIT', server: 'TIME_WAIT' });
  // Each row: the socket as the segment left it, and as it came back.
  assert.deepEqual(
    steps.map((step) => `${step!.from} ${step!.states.client} ${step!.states.server}`),
    [
      'client SYN_SENT SYN_RECV',
      'client SYN_RECV ESTABLISHED',
      'client ESTABLISHED ESTABLISHED',
      'client ESTABLISHED ESTABLISHED',
      'client ESTABLISHED ESTABLISHED',
      'client FIN_WAIT1 CLOSING',
      'client CLOSING TIME_WAIT',
    ],
  );
  assert.deepEqual(
    steps.map((step) => step!.changed),
    [
      { client: true, server: true },
      { client: false, server: true },
      { client: false, server: false },
      { client: false, server: false },
      { client: false, server: false },
      { client: true, server: true },
      { client: false, server: true },
    ],
  );
  assert.deepEqual(statePath(connection, 'client'), ['CLOSED', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT1', 'CLOSING', 'TIME_WAIT']);
  assert.deepEqual(statePath(connection, 'server'), statePath(connection, 'client'), 'both ends are the one socket');
  // Its SYN,ACK repeats its SYN's number, as an answer, not a retransmission; the ACK after it changes
  // the window from a SYN's unscaled one to a scaled one, which is no window update.
  assert.deepEqual(steps.map((step) => step!.notes), [['simultaneous open'], [], [], [], [], ['simultaneous close'], []]);
  assert.deepEqual(steps.map((step) => step!.relativeSeq), [0, 0, 1, 1, 11, 11, 12]);
  assert.deepEqual(steps.map((step) => step!.relativeAck), [undefined, 1, 1, 1, 11, 11, 12]);
  assert.deepEqual(connection.bytes, { client: 10, server: 0 });
  // A kernel reading of either end is of the one socket: its state after the last segment came back.
  const at = (offsetUs: number) => [stateAt(connection, 'client', START_US + offsetUs), stateAt(connection, 'server', START_US + offsetUs)];
  assert.deepEqual(at(-1), ['CLOSED', 'CLOSED']);
  assert.deepEqual(at(0), ['SYN_RECV', 'SYN_RECV']);
  assert.deepEqual(at(1_000), ['ESTABLISHED', 'ESTABLISHED']);
  assert.deepEqual(at(60_000), ['TIME_WAIT', 'TIME_WAIT']);
});
