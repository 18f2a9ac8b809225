import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { platform } from 'node:os';
import test from 'node:test';
import { labs } from '../src/labs/index.js';
import type { StateRow } from '../src/tcp-states/table.js';
import { LAB_SERVER, run } from './helpers/cli.js';

const linuxOnly = platform() === 'linux' ? false : 'reading TCP states needs Linux /proc/net/tcp';

test('lab-server states --json --port N: the listener and both ends of a connection, with their sides', { skip: linuxOnly }, async () => {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect(port, '127.0.0.1');
  await once(client, 'connect');
  const [serverSide] = await accepted;
  try {
    const { code, stdout, stderr } = await run(LAB_SERVER, ['states', '--json', '--port', String(port)]);
    assert.equal(code, 0, stderr);
    const rows = JSON.parse(stdout) as StateRow[];
    // Only our sockets: the same port number may be in use on other loopback addresses.
    const ours = rows.filter((r) => r.local.address === '127.0.0.1' && [port, client.localPort].includes(r.local.port));
    const summary = ours.map((r) => [r.state, r.side, r.local.port, r.remote.port]);
    assert.deepEqual(summary, [
      ['LISTEN', 'server', port, 0],
      ['ESTABLISHED', 'server', port, client.localPort],
      ['ESTABLISHED', 'client', client.localPort, port],
    ]);
  } finally {
    client.destroy();
    serverSide.destroy();
    server.close();
  }
});

test('lab-server states --port N: a table, or a plain line when nothing is there', { skip: linuxOnly }, async () => {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  try {
    const { code, stdout } = await run(LAB_SERVER, ['states', '--port', String(port)]);
    assert.equal(code, 0);
    assert.match(stdout.split('\n')[1] ?? '', new RegExp(`^LISTEN +server +0 +0 +127\\.0\\.0\\.1:${port} +\\*:\\*$`));
  } finally {
    server.close();
  }
  await once(server, 'close');
  // Our listener is gone. (Other sockets on this machine may still use the same port number
  // with other addresses, e.g. in TIME_WAIT, so the table is not necessarily empty.)
  const after = await run(LAB_SERVER, ['states', '--port', String(port)]);
  assert.doesNotMatch(after.stdout, new RegExp(`^LISTEN .*127\\.0\\.0\\.1:${port} `, 'm'));
  if (!after.stdout.startsWith('State')) assert.equal(after.stdout, `no TCP sockets on port ${port}\n`);
});

test('lab-server states --limit N: N sockets listed, the others counted by state on one more line', { skip: linuxOnly }, async () => {
  // A server that closes first, like daytime: each connection leaves the server's end in TIME_WAIT.
  const server = net.createServer((socket) => socket.end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const CLIENTS = 12;
  try {
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        const client = net.connect(port, '127.0.0.1').resume();
        await once(client, 'close');
      }),
    );
    const { code, stdout, stderr } = await run(LAB_SERVER, ['states', '--port', String(port), '--limit', '5']);
    assert.equal(code, 0, stderr);
    const lines = stdout.trimEnd().split('\n');
    assert.equal(lines.length, 1 + 5 + 1, stdout);
    assert.match(lines[1]!, /^LISTEN /);
    const more = /^(\d+) more sockets not listed \(--limit 5\): .*\bTIME_WAIT\b/.exec(lines.at(-1)!);
    assert.ok(more !== null && Number(more[1]) >= CLIENTS - 4, lines.at(-1));
  } finally {
    server.close();
  }
});

test('lab-server lab --list: one line per lab, name first', async () => {
  const { code, stdout } = await run(LAB_SERVER, ['lab', '--list']);
  assert.equal(code, 0);
  assert.deepEqual(stdout.trimEnd().split('\n').map((line) => line.split(/\s+/)[0]), labs.map((lab) => lab.name));
});

test('lab-server lab <unknown>: a one-line usage error, exit 64', async () => {
  const { code, stdout, stderr } = await run(LAB_SERVER, ['lab', 'no-such-lab']);
  assert.equal(code, 64);
  assert.equal(stdout, '');
  assert.equal(stderr.trimEnd().split('\n').length, 1);
  assert.match(stderr, /^lab-server: .*no-such-lab/);
});

test('lab-server states --port with a bad port: exit 64', async () => {
  const { code, stderr } = await run(LAB_SERVER, ['states', '--port', 'http']);
  assert.equal(code, 64);
  assert.equal(stderr.trimEnd().split('\n').length, 1);
});

test('lab-server lab rst: the narration, and exit 0 when the kernel agreed', { skip: linuxOnly }, async () => {
  const { code, stdout } = await run(LAB_SERVER, ['lab', 'rst']);
  assert.equal(code, 0);
  assert.match(stdout, /^lab rst: /);
  assert.match(stdout.trimEnd().split('\n').at(-1) ?? '', /^passed: /);
});
