import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SocketAddress } from 'node:net';
import test from 'node:test';
import {
  TCP_STATES,
  decodeAddress,
  findConnection,
  formatEndpoint,
  parseProcNetTcp,
  sameEndpoint,
  unmapIPv4,
  type TcpSocketEntry,
} from '../src/tcp-states/parse.js';

// Rows captured from a real Linux 6.18 x86_64 machine while loopback sockets sat in each state;
// SYN_RECV, CLOSE, CLOSING and NEW_SYN_RECV rows were written by hand (they cannot be held
// still on loopback). The compiled test runs from dist/test/, hence the ../../.
const fixture = (name: string): string => readFileSync(new URL(`../../test/fixtures/${name}`, import.meta.url), 'utf8');
const tcp = parseProcNetTcp(fixture('proc-net-tcp.txt'), 4);
const tcp6 = parseProcNetTcp(fixture('proc-net-tcp6.txt'), 6);

const HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
/** A well-formed IPv4 row with the given state code and local address column. */
const row = (state = '01', local = '0100007F:1F90'): string =>
  `   0: ${local} 0100007F:9C40 ${state} 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 20 4 0 10 -1`;

/** The row a fixture has for one end of a connection; fails the test if it is missing. */
function rowFor(entries: TcpSocketEntry[], local: string, remote: string): TcpSocketEntry {
  const [localAddress = '', localPort = ''] = local.split(/:(?=\d+$)/);
  const [remoteAddress = '', remotePort = ''] = remote.split(/:(?=\d+$)/);
  const entry = findConnection(
    entries,
    { address: localAddress, port: Number(localPort) },
    { address: remoteAddress, port: Number(remotePort) },
  );
  assert.ok(entry, `no row for ${local} -> ${remote}`);
  return entry;
}

test('every kernel state code 0x01..0x0C has its name, and the fixture has them all', () => {
  TCP_STATES.forEach((name, index) => {
    const code = (index + 1).toString(16).toUpperCase().padStart(2, '0');
    const [entry] = parseProcNetTcp(row(code), 4);
    assert.equal(entry?.state, name);
    assert.equal(entry?.stateCode, index + 1);
  });
  assert.deepEqual(
    [...new Set(tcp.map((e) => e.stateCode))].sort((a, b) => a - b),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
  );
});

test('an unknown state code is kept, with its number', () => {
  const [entry] = parseProcNetTcp(row('0D'), 4);
  assert.equal(entry?.state, 'UNKNOWN');
  assert.equal(entry?.stateCode, 0x0d);
});

test('IPv4: the 32-bit word is printed in host (little-endian) byte order; the port is not', () => {
  const [entry] = parseProcNetTcp(row('0A', '0100007F:1F90'), 4);
  assert.deepEqual(entry?.local, { address: '127.0.0.1', port: 8080 });
  assert.equal(decodeAddress('0101A8C0', 4), '192.168.1.1');
  assert.equal(decodeAddress('00000000', 4), '0.0.0.0');
});

test('the other columns: queues, uid, inode, retransmits', () => {
  const [entry] = parseProcNetTcp(row(), 4);
  assert.deepEqual(entry, {
    family: 4,
    stateCode: 1,
    state: 'ESTABLISHED',
    local: { address: '127.0.0.1', port: 8080 },
    remote: { address: '127.0.0.1', port: 40000 },
    txQueue: 0,
    rxQueue: 0,
    timer: { kind: 'none', code: 0, remainingMs: 0 },
    retransmits: 0,
    probes: 0,
    uid: 1000,
    inode: 4242,
  });
  // 13 unread bytes ("hello, kernel") wait in the receive queue of a server that never read them.
  assert.equal(rowFor(tcp, '127.0.0.1:36637', '127.0.0.1:58786').rxQueue, 13);
  // On a listening socket rx_queue counts connections waiting for accept().
  assert.equal(rowFor(tcp, '127.0.0.1:59903', '0.0.0.0:0').rxQueue, 1);
});

test('IPv6: each of the four 32-bit words is reversed on its own', () => {
  assert.equal(decodeAddress('00000000000000000000000001000000', 6), '::1');
  assert.equal(decodeAddress('00000000000000000000000000000000', 6), '::');
  assert.equal(decodeAddress('000080FE000000000000000001000000', 6), 'fe80::1');
  assert.equal(decodeAddress('B80D0120D308A3852E8A191348737003', 6), '2001:db8:85a3:8d3:1319:8a2e:370:7348');
  const [listener, , , client] = tcp6;
  assert.deepEqual(listener?.local, { address: '::1', port: 44489 });
  assert.deepEqual(client?.remote, { address: '::1', port: 44489 });
});

test('IPv6 text follows RFC 5952 and matches what Node prints', () => {
  const cases: Array<[full: string, expected: string]> = [
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'], // leading zeros dropped
    ['2001:DB8:0:0:0:0:0:ABCD', '2001:db8::abcd'], // lowercase
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group is not compressed
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // equal runs: compress the first
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // compress the longest run
  ];
  for (const [full, expected] of cases) {
    assert.equal(decodeAddress(kernelHex(full), 6), expected, full);
    assert.equal(new SocketAddress({ address: full, family: 'ipv6' }).address, expected, `Node on ${full}`);
  }
});

test('IPv4-mapped IPv6: a dual-stack listener sees an IPv4 client as ::ffff:127.0.0.1', () => {
  const mapped = rowFor(tcp6, '::ffff:127.0.0.1:44805', '::ffff:127.0.0.1:47246');
  assert.equal(mapped.family, 6);
  assert.equal(mapped.state, 'ESTABLISHED');
  // The same row is found with the plain IPv4 address a student would type ...
  assert.equal(rowFor(tcp6, '127.0.0.1:44805', '127.0.0.1:47246'), mapped);
  // ... while the client's own socket is plain IPv4, in /proc/net/tcp.
  assert.equal(rowFor(tcp, '127.0.0.1:47246', '127.0.0.1:44805').family, 4);
  assert.equal(unmapIPv4('::ffff:1.2.3.4'), '1.2.3.4');
  assert.equal(unmapIPv4('::1'), '::1');
  assert.ok(sameEndpoint({ address: '::ffff:127.0.0.1', port: 7 }, { address: '127.0.0.1', port: 7 }));
  assert.ok(!sameEndpoint({ address: '::1', port: 7 }, { address: '127.0.0.1', port: 7 }));
});

test('timers: TIME_WAIT counts down 60 s in 1/100 s ticks', () => {
  const timeWait = rowFor(tcp, '127.0.0.1:55100', '127.0.0.1:45545');
  assert.equal(timeWait.state, 'TIME_WAIT');
  assert.deepEqual(timeWait.timer, { kind: 'time-wait', code: 3, remainingMs: 59_720 }); // 03:00001754
  // No process owns a TIME_WAIT socket any more: uid and inode are printed as 0.
  assert.equal(timeWait.uid, 0);
  assert.equal(timeWait.inode, 0);
  // An orphaned FIN_WAIT2 (closed by its process, waiting for the peer's FIN) uses the same timer.
  const orphan = rowFor(tcp, '127.0.0.1:59690', '127.0.0.1:46867');
  assert.equal(orphan.state, 'FIN_WAIT2');
  assert.deepEqual(orphan.timer, { kind: 'time-wait', code: 3, remainingMs: 59_780 });
  // FIN_WAIT1 stuck behind data the peer will not read: the zero-window probe timer.
  const finWait1 = rowFor(tcp, '127.0.0.1:34924', '127.0.0.1:46417');
  assert.equal(finWait1.state, 'FIN_WAIT1');
  assert.deepEqual(finWait1.timer, { kind: 'zero-window-probe', code: 4, remainingMs: 1_600 });
  const synSent = rowFor(tcp, '127.0.0.1:34774', '127.0.0.1:59903');
  assert.deepEqual([synSent.state, synSent.timer.kind, synSent.retransmits], ['SYN_SENT', 'retransmit', 1]);
  assert.equal(rowFor(tcp6, '::1:40984', '::1:34293').timer.remainingMs, 58_490);
});

test('skips the header and blank lines, tolerates missing or extra trailing columns', () => {
  assert.deepEqual(parseProcNetTcp('', 4), []);
  assert.deepEqual(parseProcNetTcp(`${HEADER}\n`, 4), []);
  assert.equal(parseProcNetTcp(`\n${HEADER}\n\n${row()} 1 2 3\n\n`, 4).length, 1);
  assert.equal(tcp.length, 29);
  assert.equal(tcp6.length, 7);
});

test('a malformed row is an error naming the file and the line', () => {
  assert.throws(
    () => parseProcNetTcp(`${HEADER}\n${row()}\n${row('01', '0100007F:1F9')}\n`, 4),
    /^Error: \/proc\/net\/tcp line 3: bad local_address "0100007F:1F9"/,
  );
  assert.throws(() => parseProcNetTcp(`${HEADER}\n   0: 0100007F:1F90 0A\n`, 4), /line 2: expected at least 10 columns/);
  assert.throws(() => parseProcNetTcp(row(), 6), /\/proc\/net\/tcp6 line 1: bad local_address/);
  assert.throws(() => parseProcNetTcp(row('XY'), 4), /line 1: bad state "XY"/);
});

test('big-endian hosts print the address bytes in network order', () => {
  assert.equal(decodeAddress('7F000001', 4, 'BE'), '127.0.0.1');
  assert.equal(decodeAddress('7F000001', 4, 'LE'), '1.0.0.127');
  assert.equal(decodeAddress('00000000000000000000000000000001', 6, 'BE'), '::1');
  assert.equal(decodeAddress('00000000000000000000FFFF7F000001', 6, 'BE'), '::ffff:127.0.0.1');
  const [entry] = parseProcNetTcp(row('01', '7F000001:1F90'), 4, 'BE');
  assert.deepEqual(entry?.local, { address: '127.0.0.1', port: 8080 });
});

test('formatEndpoint brackets IPv6 so the port stays readable', () => {
  assert.equal(formatEndpoint({ address: '127.0.0.1', port: 5000 }), '127.0.0.1:5000');
  assert.equal(formatEndpoint({ address: '::1', port: 5000 }), '[::1]:5000');
});

/** What a little-endian kernel prints for a full (uncompressed) IPv6 address. */
function kernelHex(full: string): string {
  const hex = full
    .split(':')
    .map((group) => group.padStart(4, '0'))
    .join('');
  const words = hex.match(/.{8}/g) ?? [];
  return words.map((word) => (word.match(/../g) ?? []).reverse().join('')).join('').toUpperCase();
}

test('a row filter decodes only the rows between a port and the given peer ports', () => {
  const text = fixture('proc-net-tcp.txt');
  const server = 0xe9ff; // a listener with one connection established and three in the handshake
  const pairs = (entries: TcpSocketEntry[]): string[] => entries.map((e) => `${e.local.port}-${e.remote.port} ${e.state}`).sort();
  const withPort = parseProcNetTcp(text, 4, 'LE', { port: server });
  assert.ok(withPort.length >= 5 && withPort.every((e) => e.local.port === server || e.remote.port === server));
  assert.ok(withPort.some((e) => e.state === 'LISTEN'));
  const withPeers = parseProcNetTcp(text, 4, 'LE', { port: server, peerPorts: [0x87d6, 0x87ea] });
  assert.deepEqual(pairs(withPeers), [`${0x87d6}-${server} SYN_SENT`, `${server}-${0x87ea} SYN_RECV`]);
  assert.deepEqual(parseProcNetTcp(text, 4, 'LE', { port: server, peerPorts: [1] }), []);
});
