import assert from 'node:assert/strict';
import test from 'node:test';
import { ConnectionTracker, type Connection } from '../src/capture/connection-tracker.js';
import { crossCheck, type KernelReading } from '../src/capture/cross-check.js';
import { formatOffset, renderLadder, summarizeConnection } from '../src/capture/ladder.js';
import type { Segment } from '../src/capture/segment.js';
import { displayWidth } from '../src/cli/terminal.js';
import { Exchange, START_US, daytimeExchange, droppedSynExchange, selfConnectExchange } from './helpers/segments.js';

const WIDTHS = [60, 80, 120];
const SOURCE = 'captured with tcpdump';

/** Every connection the segments make, finished first, then those left open. */
function connectionsOf(segments: readonly Segment[], maxStepsPerConnection?: number): Connection[] {
  const finished: Connection[] = [];
  const tracker = new ConnectionTracker({ maxStepsPerConnection, onFinished: (connection) => finished.push(connection) });
  for (const segment of segments) tracker.add(segment);
  return [...finished, ...tracker.flush()];
}

const daytime = (): Connection => connectionsOf(daytimeExchange().segments)[0]!;

/** A reading of one end's kernel state, `offsetUs` after the connection's first segment. */
const reading = (offsetUs: number, end: 'client' | 'server', state: string): KernelReading => ({ timeUs: START_US + offsetUs, end, state });

/** An arrow's row: where the arrow starts and ends, and what is written either side of it. */
function arrowRows(lines: readonly string[]) {
  return lines
    .filter((line) => /[▶◀]/.test(line))
    .map((line) => {
      const start = line.search(/[─◀]/);
      const end = Math.max(line.lastIndexOf('▶'), line.lastIndexOf('─')) + 1;
      return { left: line.slice(0, start), arrow: line.slice(start, end), right: line.slice(end).trim(), flags: /[─◀] ([A-Z,]+)\b/.exec(line.slice(start))?.[1] };
    });
}

test('the daytime ladder, at 80 columns: this is the design', () => {
  assert.deepEqual(renderLadder(daytime(), { source: SOURCE }), [
    '#1 127.0.0.1:40312 → 127.0.0.1:1313: captured with tcpdump',
    '           client 127.0.0.1:40312                          server 127.0.0.1:1313',
    '           CLOSED                                          LISTEN',
    '+0.000 ms  SYN_SENT    ─ SYN seq=0 ──────────────────────▶',
    '                         win 65495, mss 65495, sackOK, TS, wscale 7',
    '+0.011 ms  ESTABLISHED ◀──────────── SYN,ACK seq=0 ack=1 ─ SYN_RECV',
    '                         win 65483, mss 65495, sackOK, TS, wscale 7',
    '+0.020 ms              ─ ACK seq=1 ack=1 ────────────────▶ ESTABLISHED',
    '+0.154 ms              ◀───── PSH,ACK seq=1 ack=1 len=25 ─',
    '                         "Tue Dec  1 21:18:06 2026\\n"',
    '+0.162 ms              ─ ACK seq=1 ack=26 ───────────────▶',
    '+0.183 ms  CLOSE_WAIT  ◀─────────── FIN,ACK seq=26 ack=1 ─ FIN_WAIT1',
    '+0.223 ms              ─ ACK seq=1 ack=27 ───────────────▶ FIN_WAIT2',
    '+0.335 ms  LAST_ACK    ─ FIN,ACK seq=1 ack=27 ───────────▶ TIME_WAIT (60 s)',
    '+0.345 ms  CLOSED      ◀─────────────── ACK seq=27 ack=2 ─',
  ]);
});

test('at every width: the flags in order, arrows pointing from the sender, each state on its own end\'s side', () => {
  for (const width of WIDTHS) {
    const rows = arrowRows(renderLadder(daytime(), { source: SOURCE, width }));
    assert.deepEqual(
      rows.map((row) => row.flags),
      ['SYN', 'SYN,ACK', 'ACK', 'PSH,ACK', 'ACK', 'FIN,ACK', 'ACK', 'FIN,ACK', 'ACK'],
      `width ${width}`,
    );
    assert.deepEqual(
      rows.map((row) => (row.arrow.endsWith('▶') ? '→' : '←')),
      ['→', '←', '→', '←', '→', '←', '→', '→', '←'],
    );
    assert.deepEqual(
      rows.map((row) => row.left.replace(/^\+[\d.]+ ms/, '').trim()),
      ['SYN_SENT', 'ESTABLISHED', '', '', '', 'CLOSE_WAIT', '', 'LAST_ACK', 'CLOSED'],
      "the client's states on the left",
    );
    assert.deepEqual(
      rows.map((row) => row.right),
      ['', 'SYN_RECV', 'ESTABLISHED', '', '', 'FIN_WAIT1', 'FIN_WAIT2', 'TIME_WAIT (60 s)', ''],
      "the server's on the right",
    );
  }
});

test('a simultaneous close writes the state an end passed through: FIN_WAIT1 → CLOSING', () => {
  const exchange = new Exchange();
  exchange.client('SYN', { afterUs: 0 });
  exchange.server('SYN,ACK');
  exchange.client('ACK');
  const clientFin = exchange.next('client');
  exchange.client('FIN,ACK');
  exchange.server('FIN,ACK', { ack: clientFin });
  exchange.client('ACK');
  exchange.server('ACK');
  const lines = renderLadder(connectionsOf(exchange.segments)[0]!, { source: SOURCE });
  const crossing = arrowRows(lines)[4]!;
  assert.equal(crossing.left.trim().endsWith('CLOSING'), true);
  assert.equal(crossing.right, 'FIN_WAIT1 → CLOSING');
  assert.ok(lines.includes(`${' '.repeat(30)}[simultaneous close]`), lines.join('\n'));
});

test('payload bytes are shown escaped, never raw: terminal escapes, CR LF, a bidi override', () => {
  const hostile = Buffer.concat([Buffer.from('\x1b[2J\x1b]0;pwned\x07 ok\r\n\u202eevil\u2066 日本\x7f'), Buffer.from([0xff])]);
  const exchange = new Exchange();
  exchange.client('SYN', { afterUs: 0 });
  exchange.server('SYN,ACK');
  exchange.client('ACK');
  exchange.client('PSH,ACK', { payload: hostile });
  for (const width of WIDTHS) {
    for (const colour of [false, true]) {
      const text = renderLadder(connectionsOf(exchange.segments)[0]!, { source: SOURCE, width, colour }).join('\n');
      const withoutOurColours = text.replace(/\x1b\[[0-9;]*m/g, '');
      assert.doesNotMatch(withoutOurColours, /[\x00-\x09\x0b-\x1f\x7f\u202e\u2066]/u, 'no control character reaches the terminal');
      assert.ok(text.includes('"\\x1b[2J\\x1b]0;pwned\\x07 ok\\r\\n'), `width ${width}: ${text}`);
    }
  }
  const wide = renderLadder(connectionsOf(exchange.segments)[0]!, { source: SOURCE, width: 120 }).join('\n');
  assert.ok(wide.includes('"\\x1b[2J\\x1b]0;pwned\\x07 ok\\r\\n\\u{202e}evil\\u{2066} 日本\\x7f\\xff"'), wide);
});

test('a long payload is cut between escapes, with … after the quote; so is one the capture did not keep whole', () => {
  const exchange = new Exchange();
  exchange.client('SYN', { afterUs: 0 });
  exchange.server('SYN,ACK');
  exchange.client('ACK');
  exchange.client('PSH,ACK', { payload: '\x1b'.repeat(40) });
  const cut = exchange.client('PSH,ACK', { payload: 'GET / HTTP/1.1' });
  cut.payloadLength = 1448; // the snapshot length kept only the start
  const lines = renderLadder(connectionsOf(exchange.segments)[0]!, { source: SOURCE, width: 60 });
  const previews = lines.filter((line) => line.trimStart().startsWith('"')).map((line) => line.trim());
  assert.equal(previews[0], `"${'\\x1b'.repeat(8)}"…`, 'the 35 columns right of the arrows hold 8 escapes, never 8½');
  assert.equal(previews[1], '"GET / HTTP/1.1"…');
});

test('no line is wider than asked, whatever it shows', () => {
  const exchange = new Exchange({ client: { address: '2001:db8:ffff:ffff:ffff:ffff:ffff:1', port: 65535 }, server: { address: '2001:db8::1', port: 7 } });
  exchange.client('SYN', { afterUs: 0 });
  exchange.server('SYN,ACK');
  exchange.client('ACK');
  for (let i = 0; i < 40; i++) exchange.client('PSH,ACK', { payload: `日本語のテキスト ${'x'.repeat(200)} ${i}` });
  exchange.server('ACK', { window: 0 });
  exchange.client('FIN,PSH,ACK', { payload: 'bye' });
  const readings = [reading(10, 'server', 'SYN_RECV'), reading(5_000, 'client', 'FIN_WAIT1'), reading(61_000_000, 'client', 'none')];
  const cases = [
    ...connectionsOf(exchange.segments, 6),
    ...connectionsOf(exchange.segments.slice(5)), // joined late
    daytime(),
  ];
  for (const width of [...WIDTHS, 40]) {
    for (const connection of cases) {
      for (const line of renderLadder(connection, { source: "inferred from the server's events (no capture: tcpdump is not installed)", width, readings })) {
        assert.ok(displayWidth(line) <= width, `width ${width}: ${displayWidth(line)} columns: ${line}`);
      }
    }
  }
});

test('colour only when asked; with it, the same text', () => {
  const exchange = daytimeExchange();
  exchange.server('RST', { seq: exchange.next('server') });
  const connection = connectionsOf(exchange.segments)[0]!;
  const readings = [reading(1_000, 'server', 'TIME_WAIT'), reading(1_100, 'client', 'LAST_ACK')];
  const plain = renderLadder(connection, { source: SOURCE, readings });
  assert.ok(plain.every((line) => !line.includes('\x1b')));
  const coloured = renderLadder(connection, { source: SOURCE, readings, colour: true });
  assert.deepEqual(
    coloured.map((line) => line.replace(/\x1b\[[0-9;]*m/g, '')),
    plain,
  );
  assert.ok(coloured.some((line) => line.includes('\x1b[36m─ SYN seq=0')), 'client → server in cyan');
  assert.ok(coloured.some((line) => line.includes('\x1b[33m◀')), 'server → client in yellow');
  assert.ok(coloured.some((line) => line.includes('\x1b[32m✓\x1b[0m')) && coloured.some((line) => line.includes('\x1b[31m✗\x1b[0m')));
});

test('kernel readings are drawn at their time among the arrows, in time order, and checked', () => {
  const readings = [
    reading(61_000_000, 'server', 'none'), // after Linux's 60 s of TIME_WAIT
    reading(200, 'server', 'FIN_WAIT1'),
    reading(1_000, 'server', 'TIME_WAIT'),
    reading(1_000, 'client', 'none'),
    reading(15, 'server', 'SYN_RECV'),
    reading(300, 'server', 'TIME_WAIT'), // the ladder says FIN_WAIT2 here: the kernel wins
  ];
  const lines = renderLadder(daytime(), { source: SOURCE, readings });
  const order = lines.filter((line) => /[▶◀┄]/.test(line)).map((line) => (line.includes('┄┄') ? line.trim() : arrowRows([line])[0]!.flags));
  assert.deepEqual(order, [
    'SYN',
    'SYN,ACK',
    '+0.015 ms  ┄┄ kernel (/proc/net/tcp): server SYN_RECV ✓ agrees',
    'ACK',
    'PSH,ACK',
    'ACK',
    'FIN,ACK',
    '+0.200 ms  ┄┄ kernel (/proc/net/tcp): server FIN_WAIT1 ✓ agrees',
    'ACK',
    '+0.300 ms  ┄┄ kernel (/proc/net/tcp): server TIME_WAIT ✗ the ladder says',
    'FIN,ACK',
    'ACK',
    '+1.000 ms  ┄┄ kernel (/proc/net/tcp): server TIME_WAIT ✓ agrees',
    '+1.000 ms  ┄┄ kernel (/proc/net/tcp): client has no socket ✓ agrees',
    '+61.000 s  ┄┄ kernel (/proc/net/tcp): server has no socket ✓ agrees',
  ]);
  assert.ok(lines.includes('              FIN_WAIT2: the kernel wins'), 'a long verdict wraps under its text');
});

test('crossCheck: the same verdicts, as data a lab can record', () => {
  const connection = daytime();
  const checks = crossCheck(connection, [
    reading(300, 'server', 'TIME_WAIT'),
    { ...reading(-10, 'server', 'LISTEN'), source: 'ss' },
    reading(-10, 'client', 'none'),
    reading(100, 'server', 'NEW_SYN_RECV'),
    reading(1_000, 'client', 'CLOSE'),
    reading(1_000, 'server', 'none'),
  ]);
  assert.deepEqual(
    checks.map(({ reading: { end, state }, offsetMs, ladderState, agrees }) => ({ end, state, offsetMs, ladderState, agrees })),
    [
      { end: 'server', state: 'LISTEN', offsetMs: -0.01, ladderState: 'LISTEN', agrees: true },
      { end: 'client', state: 'none', offsetMs: -0.01, ladderState: 'CLOSED', agrees: true },
      { end: 'server', state: 'NEW_SYN_RECV', offsetMs: 0.1, ladderState: 'ESTABLISHED', agrees: false },
      { end: 'server', state: 'TIME_WAIT', offsetMs: 0.3, ladderState: 'FIN_WAIT2', agrees: false },
      { end: 'client', state: 'CLOSE', offsetMs: 1, ladderState: 'CLOSED', agrees: true },
      { end: 'server', state: 'none', offsetMs: 1, ladderState: 'TIME_WAIT', agrees: false },
    ],
  );
});

test('steps the tracker did not keep are one line, with how many and how much', () => {
  const exchange = new Exchange();
  exchange.client('SYN', { afterUs: 0 });
  exchange.server('SYN,ACK');
  exchange.client('ACK');
  for (let i = 0; i < 4180; i++) exchange.server('ACK', { payload: Buffer.alloc(3000) });
  exchange.server('FIN,ACK');
  exchange.client('FIN,ACK');
  exchange.server('ACK');
  const connection = connectionsOf(exchange.segments, 3)[0]!;
  const lines = renderLadder(connection, { source: SOURCE });
  assert.ok(lines.includes(`${' '.repeat(25)}… 4,175 segments, 13 MB, not drawn …`), lines.join('\n'));
  assert.equal(arrowRows(lines).length, 3 + 8, 'the first 3 and the last 8');
});

test('a connection the capture did not see close says so', () => {
  const exchange = new Exchange();
  exchange.client('SYN', { afterUs: 0 });
  const lines = renderLadder(connectionsOf(exchange.segments)[0]!, { source: SOURCE });
  assert.equal(lines.at(-1), '           … not seen to close: the capture ended, or missed its last segments');
});

test('one line per connection, for labs with many', () => {
  assert.equal(summarizeConnection(daytime()), '#1 127.0.0.1:40312 → 127.0.0.1:1313: 9 segments, 25 bytes ←, server closed first (FIN), server TIME_WAIT');

  const refused = new Exchange();
  refused.client('SYN', { afterUs: 0 });
  refused.server('RST,ACK', { seq: 0 });
  assert.equal(summarizeConnection(connectionsOf(refused.segments)[0]!), '#1 127.0.0.1:40312 → 127.0.0.1:1313: 2 segments, no data, refused: no listener (RST), both CLOSED');

  const reset = new Exchange();
  reset.client('SYN', { afterUs: 0 });
  reset.server('SYN,ACK');
  reset.client('ACK');
  reset.client('PSH,ACK', { payload: Buffer.alloc(2500) });
  reset.server('PSH,ACK', { payload: 'x' });
  reset.client('RST,ACK');
  assert.equal(summarizeConnection(connectionsOf(reset.segments)[0]!), '#1 127.0.0.1:40312 → 127.0.0.1:1313: 6 segments, 2.5 kB →, 1 byte ←, client reset it (RST), both CLOSED');
});

test('time offsets: milliseconds to the microsecond, seconds from one second on', () => {
  assert.deepEqual([0, 0.052, 999.999, 1000, 61_002.4, -0.01].map(formatOffset), ['+0.000 ms', '+0.052 ms', '+999.999 ms', '+1.000 s', '+61.002 s', '-0.010 ms']);
});

test('a socket connected to itself: one socket in both columns, as each segment leaves it and comes back, and no listener', () => {
  const connection = connectionsOf(selfConnectExchange().segments)[0]!;
  const readings = [reading(1_000, 'client', 'ESTABLISHED'), reading(60_000, 'client', 'TIME_WAIT')];
  assert.deepEqual(renderLadder(connection, { source: SOURCE, readings }), [
    '#1 127.0.0.1:42163 → 127.0.0.1:42163: captured with tcpdump',
    'one socket connected to itself: each segment leaves it (left) and comes back to',
    '  it (right); its state is written where it changes, as the segment leaves or as',
    '  it arrives',
    '            socket 127.0.0.1:42163 sends                the same socket receives',
    '            CLOSED',
    ' +0.000 ms  SYN_SENT  ─ SYN seq=0 ────────────────────▶ SYN_RECV',
    '                        win 65495, mss 65495, sackOK, TS, wscale 7',
    '                        [simultaneous open]',
    ' +0.013 ms            ─ SYN,ACK seq=0 ack=1 ──────────▶ ESTABLISHED',
    '                        win 65495, mss 65495, sackOK, TS, wscale 7',
    ' +0.029 ms            ─ ACK seq=1 ack=1 ──────────────▶',
    ' +1.000 ms  ┄┄ kernel (/proc/net/tcp): the socket ESTABLISHED ✓ agrees',
    '+53.469 ms            ─ PSH,ACK seq=1 ack=1 len=10 ───▶',
    '                        "hello, me\\n"',
    '+53.489 ms            ─ ACK seq=11 ack=11 ────────────▶',
    '+55.360 ms  FIN_WAIT1 ─ FIN,ACK seq=11 ack=11 ────────▶ CLOSING',
    '                        [simultaneous close]',
    '+55.375 ms            ─ ACK seq=12 ack=12 ────────────▶ TIME_WAIT (60 s)',
    '+60.000 ms  ┄┄ kernel (/proc/net/tcp): the socket TIME_WAIT ✓ agrees',
  ]);
  for (const width of WIDTHS) {
    const lines = renderLadder(connection, { source: SOURCE, width });
    assert.ok(!lines.some((line) => /LISTEN|client|server/.test(line)), `width ${width}: no listener, no second end\n${lines.join('\n')}`);
    assert.ok(arrowRows(lines).every((row) => row.arrow.endsWith('▶')), 'every arrow from the socket sending to the socket receiving');
  }
  assert.equal(
    summarizeConnection(connection),
    '#1 127.0.0.1:42163 → 127.0.0.1:42163: one socket connected to itself, 7 segments, 10 bytes →, closed (FIN): a simultaneous close with itself, the socket TIME_WAIT',
  );
});

test('a SYN the listener dropped: no SYN_RECV on its row, the kernel\'s "no socket" agrees, the second SYN is a retransmission', () => {
  const connection = connectionsOf(droppedSynExchange().segments)[0]!;
  const lines = renderLadder(connection, { source: SOURCE, readings: [reading(500_000, 'server', 'none')] });
  const rows = arrowRows(lines);
  assert.deepEqual(rows.map((row) => row.flags), ['SYN', 'SYN', 'SYN,ACK', 'ACK']);
  assert.deepEqual(rows.map((row) => row.right), ['', '', 'SYN_RECV', 'ESTABLISHED'], "the server's column");
  assert.ok(lines.includes('+500.000 ms  ┄┄ kernel (/proc/net/tcp): server has no socket ✓ agrees'), lines.join('\n'));
  assert.equal(lines.filter((line) => line.trim() === '[retransmission]').length, 1);
  assert.equal(lines.indexOf('                           [retransmission]') > lines.findIndex((line) => line.includes('+1.029 s')), true, 'under the second SYN');
});
