/** The PROXY protocol: the parser, the server behind a proxy, the CLI's flags, and a real HAProxy in front. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AccessControl } from '../src/framework/access-control.js';
import { parseProxyHeader, V1_MAX_LENGTH, V2_MAX_PAYLOAD, type ProxyVersions } from '../src/framework/proxy-protocol.js';
import type { ProxyProtocolOptions } from '../src/framework/server.js';
import { daytime } from '../src/protocols/daytime.js';
import { echo } from '../src/protocols/echo.js';
import { assertOneLineError, LAB_SERVER, run, startServerProcess } from './helpers/cli.js';
import { runs } from './helpers/programs.js';
import { freePort, readAll, startServer, waitFor } from './helpers/servers.js';

const v1 = (line: string): Buffer => Buffer.from(`${line}\r\n`, 'latin1');

/** A v2 header as HAProxy's send-proxy-v2 writes it: signature, version 2 and command, family, length, addresses. */
function v2({ command = 0x1, family = 0x11, addresses = Buffer.from([10, 1, 2, 3, 127, 0, 0, 1, 0x9c, 0x40, 0x00, 0x0d]), length = addresses.length }: { command?: number; family?: number; addresses?: Buffer; length?: number } = {}): Buffer {
  const fixed = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20 | command, family, 0, 0]);
  fixed.writeUInt16BE(length, 14);
  return Buffer.concat([fixed, addresses]);
}

const parsed = (bytes: Buffer, versions: ProxyVersions = 'any') => parseProxyHeader(bytes, versions);

test('v1: TCP4 and TCP6 give the client pair; UNKNOWN none; the header length is where the data starts', () => {
  const header = v1('PROXY TCP4 10.1.2.3 127.0.0.1 40000 13');
  assert.deepEqual(parsed(Buffer.concat([header, Buffer.from('hello')])), {
    status: 'complete',
    header: { version: 1, length: header.length, client: { remote: { address: '10.1.2.3', port: 40000 }, local: { address: '127.0.0.1', port: 13 } } },
  });
  const six = parsed(v1('PROXY TCP6 2001:db8::1 ::1 65535 0'));
  assert.equal(six.status === 'complete' && six.header.client?.remote.address, '2001:db8::1');
  const unknown = v1('PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 1 2');
  assert.deepEqual(parsed(unknown), { status: 'complete', header: { version: 1, length: unknown.length } });
});

test('v1: incomplete until CRLF; malformed as soon as the bytes cannot be a header', () => {
  const whole = v1('PROXY TCP4 10.1.2.3 127.0.0.1 40000 13');
  for (let end = 0; end < whole.length; end += 1) assert.equal(parsed(whole.subarray(0, end)).status, 'incomplete', `${end} bytes`);
  const malformed = [
    'GET / HTTP/1.1', 'PROXY TCP5 10.1.2.3 127.0.0.1 1 2', 'PROXY TCP4 10.1.2.3 127.0.0.1 1', 'PROXY TCP4 ::1 127.0.0.1 1 2',
    'PROXY TCP4 10.1.2.3 127.0.0.1 65536 2', 'PROXY TCP4 10.1.2.3 127.0.0.1 01 2', 'PROXY TCP4 10.1.2.3 127.0.0.1 1 2 extra', 'PROXY TCP4 10.1.2.300 127.0.0.1 1 2',
  ];
  for (const line of malformed) assert.equal(parsed(v1(line)).status, 'malformed', line);
  assert.equal(parsed(Buffer.from('GET ')).status, 'malformed', 'wrong from the first bytes: no need to wait');
  assert.deepEqual(parsed(Buffer.from(`PROXY UNKNOWN ${'x'.repeat(V1_MAX_LENGTH)}`)), { status: 'malformed', problem: `no CRLF within a v1 header's ${V1_MAX_LENGTH} bytes` });
  assert.equal(parsed(v1('PROXY TCP4 10.1.2.3 127.0.0.1 40000 13'), 'v2').status, 'malformed', 'v1 where only v2 is accepted');
});

test('v2: TCP over IPv4 and IPv6, LOCAL, UNSPEC, and every way to be wrong', () => {
  assert.deepEqual(parsed(v2()), { status: 'complete', header: { version: 2, length: 28, client: { remote: { address: '10.1.2.3', port: 40000 }, local: { address: '127.0.0.1', port: 13 } } } });
  const ipv6 = Buffer.alloc(36);
  ipv6[15] = 1; // ::1
  ipv6.writeUInt16BE(0x2001, 16); // 2001::
  ipv6.writeUInt16BE(5000, 32);
  ipv6.writeUInt16BE(7, 34);
  assert.deepEqual(parsed(v2({ family: 0x21, addresses: ipv6 })), { status: 'complete', header: { version: 2, length: 52, client: { remote: { address: '::1', port: 5000 }, local: { address: '2001::', port: 7 } } } });
  assert.deepEqual(parsed(v2({ command: 0x0, family: 0x00, addresses: Buffer.alloc(0) })), { status: 'complete', header: { version: 2, length: 16 } }, 'LOCAL: a health check');
  assert.deepEqual(parsed(v2({ family: 0x00, addresses: Buffer.alloc(0) })), { status: 'complete', header: { version: 2, length: 16 } }, 'UNSPEC: the real connection');
  const whole = v2();
  for (let end = 0; end < whole.length; end += 1) assert.equal(parsed(whole.subarray(0, end)).status, 'incomplete', `${end} bytes`);
  const version3 = v2();
  version3[12] = 0x31;
  const wrong: [string, Buffer][] = [
    ['version 3', version3],
    ['command 2', v2({ command: 0x2 })],
    ['family 4', v2({ family: 0x41 })],
    ['oversized', v2({ length: V2_MAX_PAYLOAD + 1 })],
    ['too short for IPv4 addresses', v2({ addresses: Buffer.alloc(8) })],
  ];
  for (const [what, bytes] of wrong) assert.equal(parsed(bytes).status, 'malformed', what);
  assert.equal(parsed(v2(), 'v1').status, 'malformed', 'v2 where only v1 is accepted');
});

const trustLoopback = (options: Partial<ProxyProtocolOptions> = {}): ProxyProtocolOptions => ({ versions: 'any', trusted: new AccessControl(['127.0.0.1']), timeoutMs: 10_000, ...options });

/**
 * Connects from `localAddress`, writes `chunks` (the header, possibly in pieces), and reads to the
 * end: the bytes, or the error code (ECONNRESET when refused: the RST may beat connect() itself).
 */
function exchange(port: number, chunks: Buffer[], localAddress = '127.0.0.1'): Promise<{ received: Buffer; error?: string; localPort?: number }> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  for (const chunk of chunks) socket.write(chunk);
  const received: Buffer[] = [];
  let localPort: number | undefined;
  socket.on('connect', () => (localPort = socket.localPort)).on('data', (chunk: Buffer) => received.push(chunk));
  return new Promise((resolve) => {
    const done = (error?: string): void => {
      clearTimeout(deadline);
      socket.destroy();
      resolve({ received: Buffer.concat(received), ...(error !== undefined && { error }), ...(localPort !== undefined && { localPort }) });
    };
    const deadline = setTimeout(() => done('no end within 10 s'), 10_000);
    socket.once('end', () => done()).once('error', (error: NodeJS.ErrnoException) => done(error.code ?? error.message));
  });
}

test('behind a proxy: the header names the client; events, limits and bytes are the client\'s, and nothing is sent before the header is whole', async (t) => {
  const { server, port, events } = await startServer(daytime, { proxyProtocol: trustLoopback() });
  t.after(() => server.close(0));
  const header = v1('PROXY TCP4 10.1.2.3 192.0.2.1 40000 13');
  const socket = net.connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  let headerWhole = false;
  const received = readAll(socket, 10_000);
  socket.on('data', () => assert.ok(headerWhole, 'daytime spoke before the header was whole'));
  socket.write(header.subarray(0, 10));
  // Nothing to wait for: the test is that nothing comes. A moment, then the rest.
  await new Promise((resolve) => setTimeout(resolve, 100));
  headerWhole = true;
  socket.write(header.subarray(10));
  assert.match((await received).toString(), /^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\r?\n$/);
  const accepted = await events.waitFor('accepted');
  assert.deepEqual([accepted.remote, accepted.local], [{ address: '10.1.2.3', port: 40000 }, { address: '192.0.2.1', port: 13 }]);
  assert.deepEqual([accepted.proxy?.version, accepted.proxy?.remote], [1, { address: '127.0.0.1', port: socket.localPort }]);
  const closed = await events.waitFor('closed');
  assert.equal(closed.bytesIn, 0, 'the header is not the client\'s data');
  assert.equal(closed.proxy?.headerBytes, header.length);
});

test('behind a proxy: bytes after the header in the same segment reach the protocol', async (t) => {
  const { server, port, events } = await startServer(echo, { proxyProtocol: trustLoopback({ versions: 'v2' }) });
  t.after(() => server.close(0));
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  await once(socket, 'connect');
  socket.end(Buffer.concat([v2(), Buffer.from('hello\n')]));
  assert.equal((await readAll(socket, 10_000)).toString(), 'hello\n');
  assert.equal((await events.waitFor('closed')).bytesIn, 6);
});

test('behind a proxy: refused with a reason: untrusted peer, malformed header (at once), incomplete header (after the timeout)', async (t) => {
  const { server, port, events } = await startServer(echo, { proxyProtocol: trustLoopback({ trusted: new AccessControl(['127.0.0.3']), timeoutMs: 60_000 }) });
  t.after(() => server.close(0));
  const untrusted = await exchange(port, [v2()], '127.0.0.1');
  assert.equal(untrusted.error, 'ECONNRESET');
  assert.equal((await events.waitFor('refused', (e) => e.remote.address === '127.0.0.1')).reason, 'proxy-untrusted');
  // The timeout is a minute: only a refusal at once passes within waitFor's 5 s.
  const malformed = await exchange(port, [Buffer.from('GET / HTTP/1.0\r\n\r\n')], '127.0.0.3');
  assert.equal(malformed.error, 'ECONNRESET');
  const refusal = await events.waitFor('refused', (e) => e.remote.address === '127.0.0.3');
  assert.deepEqual([refusal.reason, refusal.problem], ['proxy-malformed', 'not a PROXY protocol header']);

  const quick = await startServer(echo, { proxyProtocol: trustLoopback({ timeoutMs: 200 }) });
  t.after(() => quick.server.close(0));
  const incomplete = await exchange(quick.port, [Buffer.from('PROXY TCP4 ')]);
  assert.equal(incomplete.error, 'ECONNRESET');
  assert.deepEqual(await quick.events.waitFor('refused').then((e) => [e.reason, e.problem]), ['proxy-incomplete', 'no complete header within 0.2 s']);
});

test("behind a proxy: --deny and --max-per-source judge the header's client, not the proxy; LOCAL is served as a direct connection", async (t) => {
  const { server, port, events } = await startServer(echo, { proxyProtocol: trustLoopback(), access: new AccessControl([], ['10.9.9.9']), limits: { maxPerSource: 1 } });
  t.after(() => server.close(0));
  const claiming = (address: string, sourcePort: number): Buffer => v1(`PROXY TCP4 ${address} 127.0.0.1 ${sourcePort} 7`);
  const denied = await exchange(port, [claiming('10.9.9.9', 1000)]);
  assert.equal(denied.error, 'ECONNRESET');
  const refusal = await events.waitFor('refused', (e) => e.reason === 'denied');
  assert.deepEqual([refusal.remote.address, refusal.proxy?.remote.address], ['10.9.9.9', '127.0.0.1']);
  // One connection held open from 10.1.1.1; a second from it is over the limit; 10.2.2.2 is not.
  const held = net.connect({ host: '127.0.0.1', port });
  held.write(claiming('10.1.1.1', 1001));
  await events.waitFor('accepted', (e) => e.remote.address === '10.1.1.1');
  t.after(() => held.destroy());
  assert.equal((await exchange(port, [claiming('10.1.1.1', 1002)])).error, 'ECONNRESET');
  assert.equal((await events.waitFor('refused', (e) => e.remote.address === '10.1.1.1')).reason, 'max-per-source');
  const other = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  other.end(Buffer.concat([claiming('10.2.2.2', 1003), Buffer.from('hi\n')]));
  assert.equal((await readAll(other, 10_000)).toString(), 'hi\n');
  const health = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  health.end(Buffer.concat([v2({ command: 0x0, family: 0x00, addresses: Buffer.alloc(0) }), Buffer.from('ok\n')]));
  assert.equal((await readAll(health, 10_000)).toString(), 'ok\n');
  const direct = events.of('accepted', (e) => e.remote.address === '127.0.0.1');
  assert.equal(direct.length, 1, 'LOCAL: served as the proxy\'s own connection, the only one not from a claimed client');
  assert.equal(direct[0]!.proxy, undefined);
});

test('--proxy-protocol and --proxy-from come together; a bad version is a usage error', async () => {
  assertOneLineError(await run(LAB_SERVER, ['echo', '--port', '0', '--proxy-protocol', 'v2']), 64, /--proxy-protocol needs --proxy-from/);
  assertOneLineError(await run(LAB_SERVER, ['echo', '--port', '0', '--proxy-from', '127.0.0.1']), 64, /--proxy-from without --proxy-protocol/);
  assertOneLineError(await run(LAB_SERVER, ['echo', '--port', '0', '--proxy-protocol', 'v3', '--proxy-from', '127.0.0.1']), 64, /proxy-protocol/);
  assertOneLineError(await run(LAB_SERVER, ['echo', '--port', '0', '--proxy-protocol', 'v1', '--proxy-from', '127.0.0.300']), 64, /invalid address or subnet/);
});

const hasHaproxy = runs('haproxy', '-v');
const SAMPLE_CONFIG = fileURLToPath(new URL('../../contrib/haproxy/haproxy.cfg', import.meta.url));

/**
 * A real HAProxy in front of lab-server, both on loopback, with contrib/haproxy/haproxy.cfg (its
 * ports changed): daytime behind send-proxy-v2, echo behind send-proxy. Clients connect to HAProxy
 * from 127.0.0.2 (allowed) or 127.0.0.4 (not); HAProxy connects from 127.0.0.3, the trusted proxy.
 */
for (const workers of [[], ['--workers', '2']]) {
test(`through a real HAProxy (send-proxy and send-proxy-v2)${workers.length > 0 ? ', with --workers 2' : ''}: logs and --allow see the client, not HAProxy; a direct connection is refused`, { skip: hasHaproxy ? false : 'haproxy is not installed (Debian: apt install haproxy)' }, async (t) => {
  const behindProxy = ['--proxy-protocol', 'any', '--proxy-from', '127.0.0.3', '--allow', '127.0.0.2', '--host', '127.0.0.1', ...workers];
  const daytimeServer = await startServerProcess(['daytime', ...behindProxy]);
  t.after(() => daytimeServer.stop().catch(() => {}));
  const echoServer = await startServerProcess(['echo', ...behindProxy]);
  t.after(() => echoServer.stop().catch(() => {}));
  const [daytimeFrontend, echoFrontend] = [await freePort(), await freePort()];
  const folder = await mkdtemp(join(tmpdir(), 'lab-server-haproxy-'));
  t.after(() => rm(folder, { recursive: true, force: true }));
  const config = join(folder, 'haproxy.cfg');
  const sample = await readFile(SAMPLE_CONFIG, 'utf8');
  await writeFile(
    config,
    sample
      .replace('bind 127.0.0.1:8013', `bind 127.0.0.1:${daytimeFrontend}`)
      .replace('bind 127.0.0.1:8007', `bind 127.0.0.1:${echoFrontend}`)
      .replace('server lab 127.0.0.1:10013', `server lab 127.0.0.1:${daytimeServer.port} source 127.0.0.3`)
      .replace('server lab 127.0.0.1:10007', `server lab 127.0.0.1:${echoServer.port} source 127.0.0.3`),
  );
  const haproxy = spawn('haproxy', ['-f', config, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(() => haproxy.kill());
  let haproxyErrors = '';
  haproxy.stderr.setEncoding('utf8').on('data', (text: string) => (haproxyErrors += text));
  // Ready when its frontend accepts; the probe comes from 127.0.0.1, which --allow refuses behind it.
  await waitFor(`haproxy to listen (${haproxyErrors})`, () => new Promise<true | undefined>((resolve) => {
    const probe = net.connect({ host: '127.0.0.1', port: echoFrontend }, () => (probe.destroy(), resolve(true))).on('error', () => resolve(undefined));
  }), 10_000, 50);

  const cases = [
    { server: daytimeServer, frontend: daytimeFrontend, input: [], reply: /^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\r?\n$/, version: 2 },
    { server: echoServer, frontend: echoFrontend, input: [Buffer.from('through the proxy\n')], reply: /^through the proxy\n$/, version: 1 },
  ];
  for (const { server, frontend, input, reply, version } of cases) {
    const served = await exchange(frontend, input, '127.0.0.2');
    assert.match(served.received.toString(), reply, `served through send-proxy${version === 2 ? '-v2' : ''}`);
    assert.ok(served.localPort !== undefined);
    const accepted = await waitFor('the accepted line', () => server.lines.find((l) => l.event === 'accepted' && l.remote === `127.0.0.2:${served.localPort}`));
    const proxy = accepted.proxy as { pair: string; version: number };
    assert.match(proxy.pair, /127\.0\.0\.3:\d+/, 'the proxy hop is logged too');
    assert.equal(proxy.version, version);
    if (workers.length > 0) assert.ok([1, 2].includes(Number(accepted.worker)), 'a worker read the header and serves the client');
    // Through HAProxy, from an address --allow does not list: the header's address is judged.
    const other = await exchange(frontend, input, '127.0.0.4');
    assert.equal(other.received.length, 0, 'nothing served to 127.0.0.4');
    const denied = await waitFor('the refusal', () => server.lines.find((l) => l.event === 'refused' && String(l.pair).includes('127.0.0.4:')));
    assert.equal(denied.reason, 'denied');
    // Straight to lab-server from an allowed address, but not through the trusted proxy.
    const direct = await exchange(server.port, input, '127.0.0.2');
    assert.equal(direct.received.length, 0);
    await waitFor('the untrusted refusal', () => server.lines.find((l) => l.event === 'refused' && l.reason === 'proxy-untrusted'));
  }
});
}
