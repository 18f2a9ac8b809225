import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import test from 'node:test';
import { parseProcNetTcp, SocketTableParser, type TcpSocketEntry } from '../src/tcp-states/parse.js';
import { readStateTable } from '../src/tcp-states/read.js';
import { buildStateRows, formatStateTable, StateTableBuilder } from '../src/tcp-states/table.js';

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

test('the table fed in pieces that split lines anywhere parses as the whole text does', () => {
  const text = fixture('proc-net-tcp.txt');
  for (const size of [1, 7, 100, 4096]) {
    const entries: TcpSocketEntry[] = [];
    const parser = new SocketTableParser('/proc/net/tcp', 4, 'LE', undefined, (entry) => void entries.push(entry));
    for (let at = 0; at < text.length; at += size) parser.push(text.slice(at, at + size));
    parser.end();
    assert.deepEqual(entries, tcp, `pieces of ${size} characters`);
  }
});

test('with a limit: the listeners and the connections on the lowest ports, the rest counted by state', () => {
  const hex = (port: number): string => port.toString(16).toUpperCase().padStart(4, '0');
  const clientPorts = [40003, 40001, 40002, 40005, 40004];
  const entries = parseProcNetTcp(
    [
      HEADER,
      row('0A', '00000000:000D', '00000000:0000'),
      ...clientPorts.map((port) => row('06', `0100007F:000D`, `0100007F:${hex(port)}`, '03:00001770')),
      row('01', '0100007F:000D', '0100007F:9C4A'),
    ].join('\n'),
    4,
  );
  const builder = new StateTableBuilder({ port: 13, limit: 3 });
  for (const entry of entries) builder.add(entry);
  const { rows, total, omitted } = builder.finish();
  assert.deepEqual(rows.map((r) => [r.state, r.side, r.remote.port]), [
    ['LISTEN', 'server', 0],
    ['TIME_WAIT', 'server', 40001],
    ['TIME_WAIT', 'server', 40002],
  ]);
  assert.equal(total, 7);
  assert.deepEqual(omitted, { TIME_WAIT: 3, ESTABLISHED: 1 });
  assert.deepEqual(buildStateRows(entries, { port: 13 }).slice(0, 3), rows, 'the first rows of the whole table');
});

/** /proc/net/tcp with a listener on port 13 and `rows` TIME_WAIT rows under it, every tenth on port 5000 instead. */
async function writeSyntheticTable(path: string, rows: number): Promise<void> {
  const hex = (n: number, digits: number): string => n.toString(16).toUpperCase().padStart(digits, '0');
  const file = createWriteStream(path);
  file.write(`${HEADER}\n${row('0A', '00000000:000D', '00000000:0000')}\n`);
  for (let i = 0; i < rows; i++) {
    const serverPort = i % 10 === 9 ? '1388' : '000D';
    // The kernel widens the slot column past 9999 (`%4d:`); clients from 127.0.0.2 to .9, ports 32768 and up.
    const line = `${String(i + 1).padStart(4)}: 0100007F:${serverPort} 0${2 + (i % 8)}00007F:${hex(32768 + (i % 28000), 4)} 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000\n`;
    if (!file.write(line)) await once(file, 'drain');
  }
  file.end();
  await finished(file);
}

test('200,000 rows (a TIME_WAIT flood on daytime): states reads them as it lists them, without a crash', async () => {
  const ROWS = 200_000;
  const procRoot = await mkdtemp(join(tmpdir(), 'lab-server-proc-'));
  try {
    await mkdir(join(procRoot, 'net'));
    await writeSyntheticTable(join(procRoot, 'net', 'tcp'), ROWS);
    const onPort13 = ROWS - ROWS / 10 + 1;

    const limited = await readStateTable({ procRoot, port: 13, limit: 1000 });
    assert.equal(limited.total, onPort13);
    assert.equal(limited.rows.length, 1000);
    assert.equal(limited.rows[0]?.state, 'LISTEN');
    assert.deepEqual(limited.omitted, { TIME_WAIT: onPort13 - 1000 });
    assert.ok(limited.rows.slice(1).every((r) => r.side === 'server' && r.local.port === 13 && r.remote.port <= 32768 + 1000), 'the lowest client ports');

    // --limit 0: every row, printed as one table (Math.max(...widths) of 200,000 cells overflowed the stack).
    const all = await readStateTable({ procRoot, limit: 0 });
    assert.equal(all.rows.length, ROWS + 1);
    assert.deepEqual(all.omitted, {});
    assert.equal(formatStateTable(all.rows).split('\n').length, ROWS + 2);
  } finally {
    await rm(procRoot, { recursive: true });
  }
});
