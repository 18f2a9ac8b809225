import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { platform } from 'node:os';
import test from 'node:test';
import { labs } from '../src/labs/index.js';
import type { StateRow } from '../src/tcp-states/table.js';
import { execFileSync } from 'node:child_process';
import { assertOneLineError, LAB_SERVER, run, start } from './helpers/cli.js';
import { runs } from './helpers/programs.js';

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

/** As root, the test drops to nobody (uid 65534) with setpriv; as anyone else, it runs as it is. */
const isRoot = process.getuid?.() === 0;
const asNobody = isRoot ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
const cannotDropRoot = (): string | false => {
  if (!isRoot) return false;
  if (!runs('setpriv', '--version')) return 'setpriv (util-linux) is not installed';
  // The checkout must be readable by nobody, as a user's installed copy would be.
  return runs(asNobody[0]!, ...asNobody.slice(1), process.execPath, '-e', `require('node:fs').accessSync(${JSON.stringify(LAB_SERVER)})`) ? false : `user 65534 cannot read ${LAB_SERVER}`;
};
const noSetpriv = cannotDropRoot();

test('lab-server lab host-crash without root: one line saying what it needs, exit 77 (skipped), no step run', { skip: linuxOnly || noSetpriv }, async () => {
  const result = await run(LAB_SERVER, ['lab', 'host-crash'], { prefix: asNobody });
  assertOneLineError(result, 77, /^lab-server: lab host-crash needs root to create network namespaces \(CAP_NET_ADMIN\) and iproute2's ip: .*run it with sudo$/);
  assert.equal(result.stdout, '');
});

test('lab-server lab keepalive, Ctrl-C mid-lab: exit 130, its programs stopped and its namespaces deleted first', { skip: linuxOnly || (isRoot ? false : 'needs root, to make network namespaces') }, async () => {
  const lab = start(LAB_SERVER, ['lab', 'keepalive']);
  await lab.stdoutLine(/^3\. /);
  lab.child.kill('SIGINT');
  const result = await lab.finished;
  assertOneLineError(result, 130, /^lab-server: interrupted \(Ctrl-C\)/);
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((line) => line.startsWith(`labsrv-${lab.child.pid}-`));
  assert.deepEqual(left, []);
});

test('lab-server lab rst: the narration, and exit 0 when the kernel agreed', { skip: linuxOnly }, async () => {
  const { code, stdout } = await run(LAB_SERVER, ['lab', 'rst']);
  assert.equal(code, 0);
  assert.match(stdout, /^lab rst: /);
  assert.match(stdout.trimEnd().split('\n').at(-1) ?? '', /^passed: /);
});
