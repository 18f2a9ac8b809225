import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import test from 'node:test';
import { parseProcNetTcp } from '../src/tcp-states/parse.js';
import { buildStateRows, formatStateTable } from '../src/tcp-states/table.js';

// The compiled test runs from dist/test/, hence the ../../.
const fixture = (name: string): string => readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url), 'utf8');
const tcp = parseProcNetTcp(fixture('proc-net-tcp.txt'), 4);
const tcp6 = parseProcNetTcp(fixture('proc-net-tcp6.txt'), 6);

const HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
/** One IPv4 row: state code, local and remote as kernel hex, the timer column. */
const row = (st: string, local: string, remote: string, timer = '00:00000000'): string =>
  `   0: ${local} ${remote} ${st} 00000000:00000000 ${timer} 00000000     0        0 0 1 0000000000000000`;

test('port 46867 of the fixture: the listener and its connection\'s local end are the server, the other end the client', () => {
  const rows = buildStateRows(tcp, { port: 46867 });
  assert.deepEqual(
    rows.map((r) => [r.state, r.side, r.local.port, r.remote.port, r.remainingMs]),
    [
      ['LISTEN', 'server', 46867, 0, null],
      ['CLOSE_WAIT', 'server', 46867, 59690, null],
      // An orphaned FIN_WAIT2 (its program has closed it) runs on the TIME_WAIT timer.
      ['FIN_WAIT2', 'client', 59690, 46867, 59780],
    ],
  );
  assert.equal(
    formatStateTable(rows, { port: 46867 }),
    [
      'State       Side    Recv-Q  Send-Q  Local            Remote           Timer',
      'LISTEN      server  0       0       127.0.0.1:46867  *:*',
      'CLOSE_WAIT  server  0       0       127.0.0.1:46867  127.0.0.1:59690',
      'FIN_WAIT2   client  0       0       127.0.0.1:59690  127.0.0.1:46867  59.8 s left',
    ].join('\n'),
  );
});

test('a dual-stack (::) listener owns IPv4-mapped connections on its port; its local address prints as *', () => {
  // Port 0xAF05 = 44805: `::` listener in tcp6, an IPv4 client in tcp and its mapped server end in tcp6.
  const rows = buildStateRows([...tcp, ...tcp6], { port: 44805 });
  const listener = rows[0];
  assert.equal(listener?.state, 'LISTEN');
  assert.equal(listener?.family, 6);
  assert.ok(rows.filter((r) => r.state !== 'LISTEN').length >= 2);
  for (const r of rows.filter((x) => x.state !== 'LISTEN')) {
    assert.equal(r.side, r.local.port === 44805 ? 'server' : 'client');
  }
  const text = formatStateTable(rows, { port: 44805 });
  assert.match(text.split('\n')[1] ?? '', /^LISTEN +server .* \*:44805 +\*:\*$/);
  assert.match(text, /127\.0\.0\.1:44805 +127\.0\.0\.1:47246/, 'mapped addresses are shown as IPv4');
});

test('no listener left (the server stopped): the port asked about is the server side; without one, unknown', () => {
  const entries = parseProcNetTcp(
    [HEADER, row('06', '0100007F:1388', '0100007F:9C40', '03:00001770'), row('06', '0100007F:9C41', '0100007F:1388', '03:00000BB8')].join('\n'),
    4,
  );
  assert.deepEqual(buildStateRows(entries, { port: 5000 }).map((r) => [r.side, r.remainingMs]), [
    ['server', 60000],
    ['client', 30000],
  ]);
  assert.deepEqual(buildStateRows(entries).map((r) => r.side), ['unknown', 'unknown']);
});

test('a listener on one address does not own the same port on another address', () => {
  const entries = parseProcNetTcp(
    [HEADER, row('0A', '0100007F:1388', '00000000:0000'), row('01', '0200007F:1388', '0100007F:9C40')].join('\n'),
    4,
  );
  // 127.0.0.2:5000 has no listener of its own, so only the --port fallback makes it the server.
  assert.equal(buildStateRows(entries)[1]?.side, 'unknown');
  assert.equal(buildStateRows(entries, { port: 5000 })[1]?.side, 'server');
});

test('nothing on the port', () => {
  assert.deepEqual(buildStateRows(tcp, { port: 1 }), []);
  assert.equal(formatStateTable([], { port: 1 }), 'no TCP sockets on port 1');
  assert.equal(formatStateTable([]), 'no TCP sockets');
});
