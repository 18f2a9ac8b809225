/**
 * The descriptor probe (src/framework/socket-probe.ts) on real sockets of each kind: a launcher
 * (python3, which has socket(), dup2() and exec) opens them, puts them on descriptors 3 and up, and
 * execs node, which probes each one and prints what it found. Then the kernel's UDP tables, parsed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { parseProcNetUdp } from '../src/tcp-states/parse.js';
import { hasPython3 } from './helpers/programs.js';


/** Opens one socket (or file) of each kind on descriptors 3 to 10, and execs node with them. */
const LAUNCHER = `
import os, socket, sys
# Hold descriptors 3 to 10 first, so that the sockets get higher numbers and dup2() below overwrites none of them.
held = [os.open('/dev/null', os.O_RDONLY) for _ in range(8)]
fds = []
listening4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM); listening4.bind(('127.0.0.1', 0)); listening4.listen(); fds.append(listening4)
listening6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM); listening6.bind(('::1', 0)); listening6.listen(); fds.append(listening6)
client = socket.create_connection(listening4.getsockname()); accepted, _ = listening4.accept(); fds.append(accepted)
udp4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp4.bind(('127.0.0.1', 0)); fds.append(udp4)
udp6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); udp6.bind(('::1', 0)); fds.append(udp6)
unix, _ = socket.socketpair(); fds.append(unix)
read_end, _ = os.pipe()
for number, s in enumerate(fds, start=3):
    os.dup2(s.fileno(), number); os.set_inheritable(number, True)
os.dup2(read_end, 9); os.set_inheritable(9, True)
os.dup2(accepted.fileno(), 10); os.set_inheritable(10, True)
print(listening4.getsockname()[1], listening6.getsockname()[1], client.getsockname()[1], udp4.getsockname()[1], udp6.getsockname()[1], flush=True)
os.execv(sys.argv[1], [sys.argv[1], '--input-type=module', '-e', sys.argv[2]])`;

test('the probe tells listening, connected and UDP sockets apart, IPv4 and IPv6, without touching them', { skip: !hasPython3 && 'needs python3 to open the sockets and exec node' }, async () => {
  const probeModule = new URL('../src/framework/socket-probe.js', import.meta.url).href;
  const script = `
    const { probeSocket, sameSocket } = await import(${JSON.stringify(probeModule)});
    const found = {};
    for (const fd of [3, 4, 5, 6, 7, 8, 9]) found[fd] = await probeSocket(fd).catch((error) => ({ code: error.code, message: error.message }));
    found.same = [sameSocket(5, 10), sameSocket(5, 3), sameSocket(9, 9)];
    console.log(JSON.stringify(found));`;
  const child = spawn('python3', ['-c', LAUNCHER, process.execPath, script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await once(child, 'close', { signal: AbortSignal.timeout(15_000) });
  const [ports = '', json = '{}'] = output.trim().split('\n');
  const [tcp4, tcp6, clientPort, udp4, udp6] = ports.split(' ').map(Number);
  const found = JSON.parse(json) as Record<string, unknown>;
  assert.deepEqual(found[3], { fd: 3, family: 4, local: { address: '127.0.0.1', port: tcp4 }, role: 'listening' });
  assert.deepEqual(found[4], { fd: 4, family: 6, local: { address: '::1', port: tcp6 }, role: 'listening' });
  assert.deepEqual(found[5], { fd: 5, family: 4, local: { address: '127.0.0.1', port: tcp4 }, role: 'connected', remote: { address: '127.0.0.1', port: clientPort } });
  assert.deepEqual(found[6], { fd: 6, family: 4, local: { address: '127.0.0.1', port: udp4 }, role: 'datagram' });
  assert.deepEqual(found[7], { fd: 7, family: 6, local: { address: '::1', port: udp6 }, role: 'datagram' });
  assert.deepEqual(found[8], { code: 'ERR_BAD_DESCRIPTOR', message: (found[8] as { message: string }).message });
  assert.match((found[8] as { message: string }).message, /^descriptor 8 is a socket, but not a TCP or UDP socket of this network namespace \(a UNIX-domain socket\?/);
  assert.deepEqual(found[9], { code: 'ERR_BAD_DESCRIPTOR', message: 'descriptor 9 is a pipe, not a socket: nothing handed a socket over there' });
  assert.deepEqual(found.same, [true, false, false], 'a dup of the connection is the same socket; the listener is another; a pipe is no socket');
});

test('the UDP tables parse like the TCP ones, and an inode filter keeps one socket', () => {
  const header = '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops';
  const rows = [
    '  978: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0',
    '  979: 0100007F:1F91 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 74242 2 0000000000000000 0',
  ];
  const all = parseProcNetUdp([header, ...rows, ''].join('\n'), 4);
  assert.deepEqual(
    all.map(({ state, local, remote, inode }) => ({ state, local, remote, inode })),
    [
      { state: 'CLOSE', local: { address: '127.0.0.1', port: 8080 }, remote: { address: '0.0.0.0', port: 0 }, inode: 4242 },
      { state: 'ESTABLISHED', local: { address: '127.0.0.1', port: 8081 }, remote: { address: '127.0.0.1', port: 54321 }, inode: 74242 },
    ],
  );
  // " 4242 " is in one row only: the filter is a cheap text match, and "74242" does not match it.
  assert.deepEqual(parseProcNetUdp([header, ...rows].join('\n'), 4, 'LE', { inode: 4242 }).map((row) => row.inode), [4242]);
  assert.throws(() => parseProcNetUdp(`${header}\n  0: 0100007F:1F90 0A\n`, 6), /^Error: \/proc\/net\/udp6 line 2: expected at least 10 columns/);
});
