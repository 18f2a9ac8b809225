import assert from 'node:assert/strict';
import { platform } from 'node:os';
import test from 'node:test';
import { parseCounters, readCounter, readCounters } from '../src/tcp-states/counters.js';

const linuxOnly = platform() === 'linux' ? false : 'the counters are Linux /proc/net/snmp and /proc/net/netstat';

test('parseCounters: each group is a line of names, then a line of values, run together as nstat spells them', () => {
  const snmp = [
    'Icmp: InMsgs InDestUnreachs OutDestUnreachs',
    'Icmp: 7 2 3',
    'IcmpMsg: InType3 OutType3',
    'IcmpMsg: 2 3',
    'Udp: InDatagrams NoPorts',
    'Udp: 40 5',
    '',
  ].join('\n');
  assert.deepEqual([...parseCounters(snmp)], [
    ['IcmpInMsgs', 7], ['IcmpInDestUnreachs', 2], ['IcmpOutDestUnreachs', 3],
    ['IcmpMsgInType3', 2], ['IcmpMsgOutType3', 3],
    ['UdpInDatagrams', 40], ['UdpNoPorts', 5],
  ]);
});

test('parseCounters: a pair whose groups differ is skipped, not mislabelled', () => {
  assert.deepEqual([...parseCounters('Tcp: OutRsts\nUdp: 4\n')], []);
});

test('readCounters: this kernel counts resets and datagrams to closed ports', { skip: linuxOnly }, async () => {
  const counters = await readCounters();
  for (const name of ['TcpOutRsts', 'UdpNoPorts', 'IcmpInDestUnreachs', 'TcpExtTCPAbortOnClose']) assert.ok(Number.isInteger(counters.get(name)), name);
  assert.ok(Number.isNaN(await readCounter('NoSuchCounter')));
});
