/** UDP: one datagram in, one out, and the guards against loops, reflection and amplification. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { test } from 'node:test';
import { AccessControl } from '../src/framework/access-control.js';
import { EventRecorder } from '../src/framework/event-recorder.js';
import { DatagramServer, MAX_REPLY_BYTES, type DatagramServerOptions } from '../src/framework/datagram-server.js';
import type { Protocol } from '../src/framework/protocol.js';
import { chargen } from '../src/protocols/chargen.js';
import { daytime } from '../src/protocols/daytime.js';
import { discard } from '../src/protocols/discard.js';
import { echo } from '../src/protocols/echo.js';
import { qotd } from '../src/protocols/qotd.js';
import { time } from '../src/protocols/time.js';
import { waitFor } from './helpers/servers.js';
import { hasPython3 } from './helpers/programs.js';

const NO_REPLY_WAIT_MS = 300;

async function startUdp(protocol: Protocol, options: Partial<DatagramServerOptions> = {}) {
  const server = new DatagramServer({ protocol, ownPorts: new Set(), ...options });
  const events = new EventRecorder(server.events.stream);
  const [local] = await server.listen({ host: '127.0.0.1', port: 0 });
  return { server, port: local!.port, events };
}

/** A client socket on an ephemeral port (or a given one); ask() sends and awaits a reply or its absence. */
async function udpClient(localPort = 0, localAddress = '127.0.0.1') {
  const socket = dgram.createSocket('udp4');
  socket.bind(localPort, localAddress);
  await once(socket, 'listening');
  const ask = (port: number, payload: Buffer | string): Promise<Buffer | undefined> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        socket.off('message', onMessage);
        resolve(undefined);
      }, NO_REPLY_WAIT_MS * 5);
      const onMessage = (reply: Buffer): void => {
        clearTimeout(timer);
        resolve(reply);
      };
      socket.once('message', onMessage);
      socket.send(payload, port, '127.0.0.1');
    });
  return { socket, ask, port: socket.address().port };
}

test('each protocol answers a datagram with one datagram of its kind (discard with none)', async (t) => {
  const now = () => new Date('2026-11-01T09:05:03Z');
  const client = await udpClient();
  t.after(() => client.socket.close());
  const servers = await Promise.all([echo, daytime, qotd, time, chargen].map((p) => startUdp(p, { now, settings: { utc: true, crlf: false } })));
  t.after(() => Promise.all(servers.map(({ server }) => server.close())));
  const replies: (Buffer | undefined)[] = [];
  for (const [i, { port }] of servers.entries()) replies.push(await client.ask(port, i === 0 ? 'ping' : '')); // one at a time: one client socket
  const [echoed, line, quote, seconds, characters] = replies;
  assert.equal(echoed?.toString(), 'ping');
  assert.equal(line?.toString(), 'Sun Nov  1 09:05:03 2026\n');
  assert.match(quote!.toString('latin1'), /^[\x20-\x7e\r\n]{1,511}$/);
  assert.equal(seconds?.readUInt32BE(), Date.UTC(2026, 10, 1, 9, 5, 3) / 1000 + 2_208_988_800);
  assert.ok(characters!.length <= 512);
  assert.match(characters!.toString('latin1'), /^[\x20-\x7e\r\n]*$/, 'printable characters and CRLF only');
});

test('discard never answers, and so spends no budget and drops nothing', async (t) => {
  const { server, port, events } = await startUdp(discard, { budget: { burst: 2, perSecond: 1 } });
  const client = await udpClient();
  t.after(() => Promise.all([server.close(), client.socket.close()]));
  for (let i = 0; i < 9; i++) client.socket.send('into the void', port, '127.0.0.1');
  assert.equal(await client.ask(port, 'anyone?'), undefined);
  assert.deepEqual(server.summary(), { received: 10, answered: 0, dropped: 0 });
  assert.equal(events.of('udp-dropped').length, 0);
});

test('--allow/--deny apply to UDP too', async (t) => {
  const { server, port, events } = await startUdp(echo, { access: new AccessControl([], ['127.0.0.9']) });
  const denied = await udpClient(0, '127.0.0.9');
  const allowed = await udpClient(0, '127.0.0.8');
  t.after(() => Promise.all([server.close(), denied.socket.close(), allowed.socket.close()]));
  assert.equal(await denied.ask(port, 'me?'), undefined);
  assert.equal((await allowed.ask(port, 'me?'))?.toString(), 'me?');
  assert.equal(events.of('udp-dropped')[0]?.reason, 'denied');
});

test('no reply larger than 512 bytes: an oversized echo is dropped, not sent', async (t) => {
  const { server, port, events } = await startUdp(echo);
  const client = await udpClient();
  t.after(() => Promise.all([server.close(), client.socket.close()]));
  assert.equal(await client.ask(port, Buffer.alloc(MAX_REPLY_BYTES + 1)), undefined);
  assert.equal((await client.ask(port, Buffer.alloc(MAX_REPLY_BYTES)))?.length, MAX_REPLY_BYTES);
  assert.equal(events.of('udp-dropped')[0]?.reason, 'oversized-reply');
});

test("a datagram from one of this process's own service ports is not answered (a loop)", async (t) => {
  const sibling = await udpClient(); // stands for another service of this same process
  const { server, port, events } = await startUdp(echo, { ownPorts: new Set([sibling.port]) });
  const stranger = await udpClient();
  t.after(() => Promise.all([server.close(), sibling.socket.close(), stranger.socket.close()]));
  assert.equal(await sibling.ask(port, 'loop?'), undefined);
  assert.equal((await stranger.ask(port, 'hello'))?.toString(), 'hello');
  assert.equal(events.of('udp-dropped')[0]?.reason, 'own-port');
});

const isRoot = process.getuid?.() === 0;

test('a datagram from a port below 1024 (say chargen, 19) is not answered', { skip: !isRoot && 'binding port 19 needs root' }, async (t) => {
  const { server, port, events } = await startUdp(echo);
  const privileged = await udpClient(19);
  t.after(() => Promise.all([server.close(), privileged.socket.close()]));
  assert.equal(await privileged.ask(port, 'storm?'), undefined);
  assert.equal(events.of('udp-dropped')[0]?.reason, 'privileged-source-port');
});

test('each peer gets a small budget, then silence; another peer is unaffected', async (t) => {
  const { server, port } = await startUdp(echo, { budget: { burst: 5, perSecond: 1 } });
  const noisy = await udpClient();
  const other = await udpClient(0, '127.0.0.2');
  t.after(() => Promise.all([server.close(), noisy.socket.close(), other.socket.close()]));
  for (let i = 0; i < 30; i++) noisy.socket.send(`${i}`, port, '127.0.0.1');
  await waitFor('30 datagrams to arrive', () => (server.summary().received >= 30 ? true : undefined));
  const { answered, dropped } = server.summary();
  assert.ok(answered >= 5 && answered <= 7, `answered ${answered}: the burst, and at most a refill or two`);
  assert.equal(dropped, 30 - answered);
  assert.equal((await other.ask(port, 'me?'))?.toString(), 'me?');
});


test('two echo servers and one spoofed datagram between them: the exchange dies out by itself', { skip: (!isRoot || !hasPython3) && 'needs root and python3 for a raw socket' }, async (t) => {
  // Two separate servers, each knowing only its own port, as two processes would.
  const a = await startUdp(echo);
  const b = await startUdp(echo);
  t.after(() => Promise.all([a.server.close(), b.server.close()]));
  // Forge one datagram "from" B's port to A, with a raw socket (IP_HDRINCL), as an attacker would.
  const forge = `
import socket, struct
src, dst = ${b.port}, ${a.port}
payload = b'trigger'
udp = struct.pack('!HHHH', src, dst, 8 + len(payload), 0) + payload
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, socket.IPPROTO_UDP, 0, socket.inet_aton('127.0.0.1'), socket.inet_aton('127.0.0.1'))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(ip + udp, ('127.0.0.1', 0))
`;
  execFileSync('python3', ['-c', forge]);
  // Wait until the ping-pong has stopped: no datagram for a while on either side.
  let last = -1;
  let quiet = 0;
  const total = await waitFor('the exchange to stop', () => {
    const now = a.server.summary().received + b.server.summary().received;
    quiet = now === last ? quiet + 1 : 0;
    last = now;
    return quiet >= 10 && now > 0 ? now : undefined;
  }, 10_000, 30);
  const answered = a.server.summary().answered + b.server.summary().answered;
  assert.ok(total >= 2, `the loop did start (${total} datagrams)`);
  assert.ok(answered <= 2 * 10 + 2, `${answered} replies in all: each side's burst (10), then silence`);
});

/** `count` client sockets, each on an address of its own (127.<block>.x.y: all of 127/8 is loopback). */
async function clientsFromManyAddresses(block: number, count: number) {
  return Promise.all(Array.from({ length: count }, (_, n) => udpClient(0, `127.${block}.${Math.floor(n / 250)}.${(n % 250) + 1}`)));
}

test('many forged sources, one datagram each: the service-wide budget caps the replies and bytes', async (t) => {
  const sources = 300;
  const { server, port, events } = await startUdp(chargen, { serviceBudget: { repliesPerSecond: 20, bytesPerSecond: 4096 } });
  const clients = await clientsFromManyAddresses(41, sources);
  t.after(() => Promise.all([server.close(), ...clients.map((c) => c.socket.close())]));
  let repliedBytes = 0;
  for (const { socket } of clients) socket.on('message', (reply) => (repliedBytes += reply.length));
  // 50 at a time: a few hundred at once would overflow the server's receive buffer, and be lost unseen.
  for (let sent = 0; sent < sources; sent += 50) {
    for (const { socket } of clients.slice(sent, sent + 50)) socket.send('x', port, '127.0.0.1');
    await waitFor(`${sent + 50} datagrams to arrive`, () => (server.summary().received >= sent + 50 ? true : undefined));
  }
  const { answered } = server.summary();
  // A burst of 40 replies and 8 KiB, and what refills while the datagrams arrive.
  assert.ok(answered <= 60, `answered ${answered} of ${sources}: the service's burst and little more`);
  assert.ok(repliedBytes <= 8192 + 4096, `${repliedBytes} bytes sent in all`);
  const reasons = new Set(events.events.flatMap((e) => (e.type === 'udp-dropped' ? [e.reason] : [])));
  assert.deepEqual([...reasons], ['service-over-budget'], 'each drop says why');
});

test('a full peer table: a newly seen peer gets one reply, not a fresh burst', async (t) => {
  const tracked = 20;
  const { server, port } = await startUdp(echo, { budget: { burst: 5, perSecond: 0.01 }, maxTrackedPeers: tracked });
  const clients = await clientsFromManyAddresses(42, 2 * tracked);
  t.after(() => Promise.all([server.close(), ...clients.map((c) => c.socket.close())]));
  /** Three datagrams from each client; resolves with how many were answered. */
  const threeEach = async (group: typeof clients): Promise<number> => {
    const before = server.summary();
    for (const { socket } of group) for (let i = 0; i < 3; i++) socket.send(`${i}`, port, '127.0.0.1');
    await waitFor('the datagrams to arrive', () => (server.summary().received >= before.received + 3 * group.length ? true : undefined));
    return server.summary().answered - before.answered;
  };
  assert.equal(await threeEach(clients.slice(0, tracked)), 3 * tracked, 'while the table has room, each peer has its burst');
  assert.equal(await threeEach(clients.slice(tracked)), tracked, 'once peers are being forgotten, each new one gets one reply');
});
