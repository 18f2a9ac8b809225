/**
 * The send budget (src/framework/send-queue.ts): chargen stops writing to a client that does not
 * read once --max-send-queue bytes are unacknowledged, which the kernel's Send-Q shows (a client
 * that reads earns more, up to its share of SHARED_CAPS caps); a client
 * that reads gets the whole stream, in order; and where the kernel's table cannot be read, the
 * service says so once and streams as before.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type net from 'node:net';
import { sameEndpoint } from '../src/framework/endpoint.js';
import { ExitCode } from '../src/errors.js';
import { DEFAULT_MAX_SEND_QUEUE_BYTES, SHARED_CAPS } from '../src/framework/send-queue.js';
import { defineProtocol } from '../src/framework/protocol.js';
import { chargen, chargenLine } from '../src/protocols/chargen.js';
import { readTcpSockets } from '../src/tcp-states/read.js';
import { assertOneLineError, LAB_SERVER, run } from './helpers/cli.js';
import { connect, startServer, waitFor, type TestServer } from './helpers/servers.js';

const CAP = DEFAULT_MAX_SEND_QUEUE_BYTES;
/** The pattern's cycle of 95 lines: byte i of the stream is CYCLE[i mod its length]. */
const CYCLE = Buffer.from(Array.from({ length: 95 }, (_, n) => chargenLine(n)).join(''), 'latin1');

/** The server's end of its only connection, once accepted. */
async function servedSocket({ server }: TestServer): Promise<net.Socket> {
  return waitFor('the server to accept the client', () => [...server.connections][0]?.socket);
}

/** Waits until the server has written nothing more for a while: the stream has stalled. */
async function stalled(served: net.Socket): Promise<number> {
  let last = -1;
  let sameFor = 0;
  // bytesWritten unchanged over 5 looks 200 ms apart: a second without a byte taken.
  return waitFor('the stream to stall', () => {
    sameFor = served.bytesWritten === last ? sameFor + 1 : 0;
    last = served.bytesWritten;
    return sameFor >= 5 ? last : undefined;
  }, 20_000, 200);
}

/** The kernel's Send-Q of the server's socket for this client (/proc/net/tcp, what `ss -tn` shows). */
async function serverSendQueue(port: number, client: net.Socket): Promise<number> {
  const rows = await readTcpSockets({ port, peerPorts: [client.localPort!] });
  const row = rows.find((entry) => entry.local.port === port && sameEndpoint(entry.remote, { address: client.localAddress!, port: client.localPort! }));
  assert.ok(row !== undefined, "the server's socket is in /proc/net/tcp");
  return row.txQueue;
}

test(`chargen to a client that never reads: the server stops writing with its Send-Q near --max-send-queue (${CAP / 1024} KiB), not at tcp_wmem's maximum`, async (t) => {
  const share = CAP; // a client that reads nothing never earns more than one cap
  const running = await startServer(chargen);
  t.after(() => running.server.close(0));
  const client = await connect(running.port);
  client.pause(); // never reads
  const served = await servedSocket(running);
  const written = await stalled(served);
  const sendQueue = await serverSendQueue(running.port, client);
  // At most the share plus the write that crossed it (Node's buffer is empty: the kernel took it all).
  assert.ok(sendQueue <= share + CYCLE.length, `Send-Q ${sendQueue}, over the share of ${share} + one write of ${CYCLE.length}`);
  // It stops at the share, not earlier: resumed at half of it, it writes until the share again.
  assert.ok(sendQueue >= share / 2, `Send-Q ${sendQueue}: the stream stopped before half the share`);
  assert.ok(written < 4 * share, `${written} bytes written to a client that read none`);
  client.destroy();
});

test(`${SHARED_CAPS + 1} clients that never read, connecting one after another: each stays at one cap`, { timeout: 60_000 }, async (t) => {
  const running = await startServer(chargen, { limits: { maxPerSource: 1000 } });
  t.after(() => running.server.close(0));
  const clients = await Promise.all(Array.from({ length: SHARED_CAPS + 1 }, () => connect(running.port)));
  for (const client of clients) client.pause();
  await waitFor('every client accepted', () => (running.server.connections.size === clients.length ? true : undefined));
  const served = [...running.server.connections].map((conn) => conn.socket);
  await Promise.all(served.map((socket) => stalled(socket)));
  const queues = await Promise.all(clients.map((client) => serverSendQueue(running.port, client)));
  const largest = Math.max(...queues);
  assert.ok(largest <= CAP + CYCLE.length, `a Send-Q of ${largest}, over one cap (${CAP}) + one write`);
  for (const client of clients) client.destroy();
});

test('chargen to a client that reads: the whole stream arrives, in order, far past the cap', { timeout: 30_000 }, async (t) => {
  const running = await startServer(chargen);
  t.after(() => running.server.close(0));
  const client = await connect(running.port);
  const wanted = 16 * CAP;
  let received = 0;
  let mismatch: number | undefined;
  await new Promise<void>((resolve) => {
    client.on('data', (chunk: Buffer) => {
      for (let i = 0; i < chunk.length && mismatch === undefined; i++) {
        if (chunk[i] !== CYCLE[(received + i) % CYCLE.length]) mismatch = received + i;
      }
      received += chunk.length;
      if (received >= wanted || mismatch !== undefined) resolve();
    });
  });
  client.destroy();
  assert.equal(mismatch, undefined, `byte ${mismatch} is not the pattern's`);
  assert.ok(received >= wanted);
});

test('where /proc/net/tcp cannot be read: send-queue-unavailable, once, and the stream goes on as before', { timeout: 30_000 }, async (t) => {
  const running = await startServer(chargen, { procRoot: mkdtempSync(join(tmpdir(), 'no-proc-')) });
  t.after(() => running.server.close(0));
  for (let n = 0; n < 2; n++) {
    const client = await connect(running.port);
    let received = 0;
    await new Promise<void>((resolve) => {
      client.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= 4 * CAP) resolve();
      });
    });
    client.destroy();
  }
  const unavailable = running.events.of('send-queue-unavailable');
  assert.equal(unavailable.length, 1);
  assert.equal(unavailable[0]!.maxSendQueue, CAP);
  assert.match(unavailable[0]!.message, /\/proc\/net\/tcp/);
});

test('--max-send-queue takes a whole number of bytes, 0 for no cap; anything else is a usage error', async () => {
  for (const value of ['1k', '-1', '2.5']) {
    assertOneLineError(await run(LAB_SERVER, ['chargen', '--port', '0', '--max-send-queue', value]), ExitCode.usage, new RegExp(`^lab-server: invalid --max-send-queue "${value}": give a whole number, 0 or more$`));
  }
});

test('a protocol whose onWritable listener throws when the budget lets it go on loses that connection only', { timeout: 30_000 }, async (t) => {
  let clientReads = false;
  let connections = 0;
  const throwsOnResume = defineProtocol({
    ...chargen, name: 'throws-on-resume',
    createHandlers: () => ({
      tcp: (conn) => {
        const first = ++connections === 1;
        const send = (): void => {
          if (first && clientReads) throw new Error('resumed');
          while (conn.write(CYCLE));
        };
        conn.onWritable(send);
        send();
      },
    }),
  });
  const running = await startServer(throwsOnResume);
  t.after(() => running.server.close(0));
  const client = await connect(running.port);
  client.pause();
  const served = await servedSocket(running);
  await stalled(served);
  // Stalled with Node's buffer empty: what it waits for is the budget, not 'drain'.
  assert.equal(served.writableLength, 0);
  client.on('error', () => {});
  clientReads = true;
  client.resume(); // the Send-Q drains; a read of the table lets the protocol go on, and it throws
  const failed = await running.events.waitFor('protocol-error');
  assert.equal(failed.message, 'resumed');
  assert.equal((await running.events.waitFor('closed')).reason, 'protocol-error');
  // The server goes on: a second connection is served.
  const second = await connect(running.port);
  await once(second, 'data');
  second.destroy();
});
