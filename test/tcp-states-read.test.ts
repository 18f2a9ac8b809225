import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { platform, tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { LabError } from '../src/errors.js';
import { findConnection, isTcpStateReadingSupported, readTcpSockets, readTcpTableSize } from '../src/tcp-states/read.js';

const linuxOnly = platform() === 'linux' ? false : 'reading TCP states needs Linux /proc/net/tcp';

/** A listener on `listenHost`, port 0, and one client connected to it from `connectHost`. */
async function connectedPair(listenHost: string, connectHost: string) {
  const server = createServer();
  server.listen(0, listenHost);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect(port, connectHost);
  await once(client, 'connect');
  const [serverSide] = await accepted;
  const close = async (): Promise<void> => {
    client.destroy();
    serverSide.destroy();
    server.close();
    await once(server, 'close');
  };
  return { port, client, serverSide, close };
}

test('finds the LISTEN socket and both ESTABLISHED ends of a loopback connection', { skip: linuxOnly }, async () => {
  const { port, client, serverSide, close } = await connectedPair('127.0.0.1', '127.0.0.1');
  try {
    const entries = await readTcpSockets();
    const listener = findConnection(entries, { address: '127.0.0.1', port }, { address: '0.0.0.0', port: 0 });
    assert.equal(listener?.state, 'LISTEN');

    const clientEnd = findConnection(
      entries,
      { address: client.localAddress ?? '', port: client.localPort ?? 0 },
      { address: '127.0.0.1', port },
    );
    const serverEnd = findConnection(
      entries,
      { address: serverSide.localAddress ?? '', port: serverSide.localPort ?? 0 },
      { address: serverSide.remoteAddress ?? '', port: serverSide.remotePort ?? 0 },
    );
    assert.equal(clientEnd?.state, 'ESTABLISHED');
    assert.equal(serverEnd?.state, 'ESTABLISHED');
    assert.equal(clientEnd?.family, 4);
    // Two sockets, one connection: each end's local is the other's remote.
    assert.deepEqual(clientEnd?.local, serverEnd?.remote);
    assert.notEqual(clientEnd?.inode, serverEnd?.inode);
  } finally {
    await close();
  }
});

test('an IPv4 client of a dual-stack listener is an IPv4-mapped row in tcp6', {
  skip: linuxOnly || (!existsSync('/proc/net/tcp6') && 'IPv6 is disabled on this system'),
}, async () => {
  const { port, serverSide, close } = await connectedPair('::', '127.0.0.1');
  try {
    assert.equal(serverSide.remoteAddress, '::ffff:127.0.0.1');
    const entries = await readTcpSockets();
    assert.equal(findConnection(entries, { address: '::', port }, { address: '::', port: 0 })?.state, 'LISTEN');
    // Node's own view of the accepted socket finds the kernel's row, mapped addresses and all.
    const serverEnd = findConnection(
      entries,
      { address: serverSide.localAddress ?? '', port },
      { address: serverSide.remoteAddress, port: serverSide.remotePort ?? 0 },
    );
    assert.equal(serverEnd?.family, 6);
    assert.equal(serverEnd?.state, 'ESTABLISHED');
    assert.deepEqual(serverEnd?.local, { address: '::ffff:127.0.0.1', port });
  } finally {
    await close();
  }
});

test('without net/tcp under the proc root: ERR_TCP_STATES_UNAVAILABLE', async () => {
  const procRoot = await mkdtemp(join(tmpdir(), 'lab-server-proc-'));
  try {
    assert.equal(isTcpStateReadingSupported({ procRoot }), false);
    await assert.rejects(readTcpSockets({ procRoot }), (error: unknown) => {
      assert.ok(error instanceof LabError);
      assert.equal(error.code, 'ERR_TCP_STATES_UNAVAILABLE');
      assert.equal(error.exitCode, 69);
      assert.match(error.message, /netstat -an or ss -tan/);
      return true;
    });
  } finally {
    await rm(procRoot, { recursive: true });
  }
});

test('without net/tcp6 (IPv6 disabled): only the IPv4 rows', async () => {
  const procRoot = await mkdtemp(join(tmpdir(), 'lab-server-proc-'));
  try {
    await mkdir(join(procRoot, 'net'));
    await copyFile(new URL('../../test/fixtures/proc-net-tcp.txt', import.meta.url), join(procRoot, 'net', 'tcp'));
    assert.equal(isTcpStateReadingSupported({ procRoot }), true);
    const entries = await readTcpSockets({ procRoot });
    assert.equal(entries.length, 29);
    assert.ok(entries.every((entry) => entry.family === 4));
  } finally {
    await rm(procRoot, { recursive: true });
  }
});

test('readTcpTableSize: the counters from sockstat and sockstat6, without printing the table', async () => {
  const procRoot = await mkdtemp(join(tmpdir(), 'lab-server-proc-'));
  try {
    assert.equal(await readTcpTableSize({ procRoot }), undefined, 'no /proc/net/sockstat: not Linux');
    await mkdir(join(procRoot, 'net'));
    // Captured on loopback during a daytime load: TIME_WAIT pairs outnumber open sockets.
    await writeFile(join(procRoot, 'net', 'sockstat'), 'sockets: used 9\nTCP: inuse 7 orphan 1 tw 43088 alloc 9 mem 3\nUDP: inuse 0 mem 0\n');
    assert.deepEqual(await readTcpTableSize({ procRoot }), { sockets: 7 + 43088, timeWait: 43088 });
    await writeFile(join(procRoot, 'net', 'sockstat6'), 'TCP6: inuse 4\nUDP6: inuse 0\n');
    assert.deepEqual(await readTcpTableSize({ procRoot }), { sockets: 7 + 4 + 43088, timeWait: 43088 });
  } finally {
    await rm(procRoot, { recursive: true });
  }
});

test('readTcpTableSize agrees with the table it sizes (this machine, now)', { skip: linuxOnly }, async () => {
  const { port, close } = await connectedPair('127.0.0.1', '127.0.0.1');
  try {
    const before = await readTcpTableSize();
    const rows = (await readTcpSockets()).length;
    const after = await readTcpTableSize();
    assert.ok(before !== undefined && after !== undefined && before.sockets >= 3, `a listener and both ends of a connection at least: ${JSON.stringify(before)}`);
    // Other tests open and close sockets meanwhile: the table is counted between the two counts, roughly.
    const [low, high] = [Math.min(before.sockets, after.sockets), Math.max(before.sockets, after.sockets)];
    assert.ok(rows >= low * 0.8 - 100 && rows <= high * 1.2 + 100, `sockstat said ${before.sockets} then ${after.sockets}; the table had ${rows} rows (port ${port})`);
  } finally {
    await close();
  }
});
