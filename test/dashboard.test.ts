/**
 * --dashboard without a browser: the Server-Sent Events framing, a reader that stops reading, the
 * HTTP answers (read-only, CSP, Last-Event-ID), and the real CLI's stream reaching TIME_WAIT.
 * test/dashboard-browser.test.ts drives the page itself in Chromium.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { platform } from 'node:os';
import test from 'node:test';
import { parseDashboardAddress } from '../src/cli/arguments.js';
import { EventStream } from '../src/framework/events.js';
import { Dashboard } from '../src/observers/dashboard/server.js';
import { formatSseMessage, lastEventId, SseClient } from '../src/observers/dashboard/sse.js';
import type { UpdateJson } from '../src/observers/dashboard/state.js';
import { assertOneLineError, LAB_CLIENT, LAB_SERVER, run, start, startServerProcess } from './helpers/cli.js';

const linuxOnly = platform() === 'linux' ? false : 'kernel states need Linux /proc/net/tcp';
const LOOPBACK_ANY_PORT = { address: '127.0.0.1', port: 0 };

test('an SSE message: id, event, one data line per line of data (any line break), and a blank line', () => {
  assert.equal(formatSseMessage({ data: 'hello' }), 'data: hello\n\n');
  assert.equal(formatSseMessage({ id: 7, event: 'update', data: '{"a":1}' }), 'id: 7\nevent: update\ndata: {"a":1}\n\n');
  assert.equal(formatSseMessage({ data: 'one\ntwo\r\nthree\rfour' }), 'data: one\ndata: two\ndata: three\ndata: four\n\n');
  assert.equal(formatSseMessage({ data: '' }), 'data: \n\n');
  assert.throws(() => formatSseMessage({ event: 'up\ndata: injected', data: 'x' }), /one non-empty line/);
});

test('Last-Event-ID: a number we could have sent, or nothing', () => {
  assert.equal(lastEventId('12'), 12);
  assert.equal(lastEventId(['3', '4']), 3);
  assert.equal(lastEventId(undefined), undefined);
  assert.equal(lastEventId('-1'), undefined);
  assert.equal(lastEventId('12abc'), undefined);
});

test('--dashboard values: nothing, ADDRESS:PORT, [IPv6]:PORT or a port; anything else is a usage error', () => {
  assert.deepEqual(parseDashboardAddress(''), { address: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseDashboardAddress('0.0.0.0:8080'), { address: '0.0.0.0', port: 8080 });
  assert.deepEqual(parseDashboardAddress('[::1]:0'), { address: '::1', port: 0 });
  assert.deepEqual(parseDashboardAddress('9000'), { address: '127.0.0.1', port: 9000 });
  for (const bad of ['::1:80', 'localhost:http', 'localhost:8080', '127.0.0.1:70000']) assert.throws(() => parseDashboardAddress(bad), { code: 'ERR_INVALID_ADDRESS' }, bad);
});

test('a browser that stops reading is dropped once its unsent bytes pass the bound; memory stays bounded', async () => {
  const maxBufferedBytes = 256 * 1024;
  let client: SseClient | undefined;
  let dropped = 0;
  const server = http.createServer((_request, response) => {
    client = new SseClient(response, maxBufferedBytes, () => (dropped += 1));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  // A raw socket that sends its request, then never reads: the kernel's buffers fill, then Node's.
  const reader = net.connect({ host: '127.0.0.1', port });
  await once(reader, 'connect');
  reader.write('GET /events HTTP/1.1\r\nHost: test\r\n\r\n');
  reader.pause();
  const deadline = Date.now() + 30_000;
  while (client === undefined && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
  const frame = { event: 'update', data: 'x'.repeat(64 * 1024) };
  let most = 0;
  let sent = 0;
  // Bounded: loopback's socket buffers hold a few MB; 4000 frames are 256 MB.
  for (; sent < 4000 && Date.now() < deadline; sent++) {
    if (!client!.send(frame)) break;
    most = Math.max(most, client!.bufferedBytes);
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.equal(dropped, 1, `dropped after ${sent} frames`);
  assert.ok(client!.closed);
  assert.ok(most <= maxBufferedBytes, `at most ${maxBufferedBytes} bytes waited (most: ${most})`);
  assert.equal(client!.send(frame), false, 'nothing more is written to a dropped client');
  reader.destroy();
  server.close();
});

/** Reads a text/event-stream response into messages: [{ id, event, data }]. */
function readEvents(url: string, headers: Record<string, string> = {}) {
  const messages: { id?: string; event?: string; data: string }[] = [];
  const waiters = new Set<() => void>();
  let buffered = '';
  const request = http.get(url, { headers }, (response) => {
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      buffered += chunk;
      let end;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const fields = block.split('\n').filter((line) => !line.startsWith(':') && !line.startsWith('retry:'));
        if (fields.length === 0) continue;
        const value = (name: string) => fields.filter((l) => l.startsWith(`${name}: `)).map((l) => l.slice(name.length + 2));
        messages.push({ id: value('id')[0], event: value('event')[0], data: value('data').join('\n') });
        for (const waiter of waiters) waiter();
      }
    });
  });
  request.on('error', () => {});
  /** The first update (seen or to come) for which `where` holds. */
  const update = (where: (update: UpdateJson) => boolean, deadlineMs = 20_000): Promise<UpdateJson & { id: string | undefined }> =>
    new Promise((resolve, reject) => {
      const look = (): boolean => {
        for (const message of messages) {
          const parsed = JSON.parse(message.data) as UpdateJson;
          if (where(parsed)) {
            resolve({ ...parsed, id: message.id });
            return true;
          }
        }
        return false;
      };
      if (look()) return;
      const waiter = (): void => void (look() && done());
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no matching update within ${deadlineMs / 1000} s; got ${messages.length}: ${messages.map((m) => m.data).join('\n').slice(-2000)}`));
      }, deadlineMs);
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(waiter);
      };
      waiters.add(waiter);
    });
  return { messages, update, close: () => request.destroy() };
}

async function fetchText(url: string, method = 'GET', headers: http.OutgoingHttpHeaders = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const request = http.request(url, { method, headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

test('the dashboard is read-only, sends a Content-Security-Policy, and replays missed updates after Last-Event-ID', async () => {
  const stream = new EventStream();
  const dashboard = await Dashboard.start({ listen: LOOPBACK_ANY_PORT, updateIntervalMs: 20 });
  dashboard.state.follow(stream);
  try {
    const page = await fetchText(dashboard.url);
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
    assert.match(page.body, /<script src="\/page.js" defer><\/script>/);
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const answer = await fetchText(dashboard.url, method);
      assert.equal(answer.status, 405, method);
      assert.equal(answer.headers.allow, 'GET, HEAD');
    }
    assert.equal((await fetchText(`${dashboard.url}nothing-here`)).status, 404);
    // DNS rebinding: another site's name pointed at 127.0.0.1 is refused; an address or localhost is not.
    const port = new URL(dashboard.url).port;
    assert.equal((await fetchText(dashboard.url, 'GET', { host: `attacker.example:${port}` })).status, 403);
    assert.equal((await fetchText(`${dashboard.url}events`, 'GET', { host: 'attacker.example' })).status, 403);
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) assert.equal((await fetchText(dashboard.url, 'GET', { host })).status, 200, host);

    const first = readEvents(`${dashboard.url}events`);
    const snapshot = await first.update((u) => u.full);
    const source = { protocol: 'echo', transport: 'tcp' as const };
    stream.emit(source, 'listening', { local: { address: '127.0.0.1', port: 7 }, inherited: false, rfc: 862 });
    const later = await first.update((u) => !u.full && u.services.length === 1);
    first.close();
    // Back with the snapshot's id: only what came after it, not everything again.
    const again = readEvents(`${dashboard.url}events`, { 'Last-Event-ID': String(snapshot.id) });
    const replayed = await again.update(() => true);
    assert.equal(replayed.full, false);
    assert.equal(replayed.id, later.id);
    again.close();
    // An id the server no longer has (or never sent): a fresh snapshot.
    const lost = readEvents(`${dashboard.url}events`, { 'Last-Event-ID': '999999' });
    assert.equal((await lost.update(() => true)).full, true);
    lost.close();
  } finally {
    await dashboard.close();
  }
});

test('lab lines reach the page without terminal colours, and with control characters escaped', async () => {
  const dashboard = await Dashboard.start({ listen: LOOPBACK_ANY_PORT, updateIntervalMs: 20 });
  try {
    dashboard.state.addLabLine('  \x1b[32m✓\x1b[0m TIME_WAIT\x07');
    assert.deepEqual(dashboard.state.snapshot().lab, ['  ✓ TIME_WAIT\\x07']);
  } finally {
    await dashboard.close();
  }
});

test('lab-server daytime --dashboard: the event stream shows each connection, then the server side in TIME_WAIT', { skip: linuxOnly }, async () => {
  const server = await startServerProcess(['daytime', '--dashboard', '127.0.0.1:0']);
  try {
    const url = String((await server.event('dashboard')).url);
    const events = readEvents(`${url}events`);
    await events.update((u) => u.full);
    for (let i = 0; i < 2; i++) {
      const client = await run(LAB_CLIENT, ['daytime', '127.0.0.1', String(server.port)]);
      assert.equal(client.code, 0, client.stderr);
    }
    const accepted = server.lines.filter((line) => line.event === 'accepted').map((line) => String(line.remote));
    assert.equal(accepted.length, 2);
    const update = await events.update((u) => u.counts.TIME_WAIT === 2);
    const rows = (await events.update((u) => u.rows.some((r) => r.client === accepted[1] && r.kernel?.state === 'TIME_WAIT'))).rows;
    const row = rows.find((r) => r.client === accepted[1])!;
    assert.equal(row.server, `127.0.0.1:${server.port}`);
    assert.equal(row.closedBy, 'server');
    assert.ok(row.kernel!.remainingMs! > 0 && row.kernel!.remainingMs! <= 60_000);
    assert.equal(update.counts.LISTEN, 2, '127.0.0.1 and ::1');
    events.close();
  } finally {
    await server.stop();
  }
});

test('--dashboard on a port in use: one line, ERR_PORT_IN_USE, before anything is served', async () => {
  const taken = net.createServer();
  taken.listen(0, '127.0.0.1');
  await once(taken, 'listening');
  const { port } = taken.address() as net.AddressInfo;
  try {
    const result = await run(LAB_SERVER, ['echo', '--port', '0', '--dashboard', `127.0.0.1:${port}`]);
    assertOneLineError(result, 69, new RegExp(`--dashboard: cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`));
  } finally {
    taken.close();
  }
});

test('lab time-wait --dashboard: the narration, the verdict and the TIME_WAIT reach the page, which stays up until Ctrl-C', { skip: linuxOnly }, async () => {
  const lab = start(LAB_SERVER, ['lab', 'time-wait', '--no-ladder', '--dashboard', '127.0.0.1:0']);
  const url = /(http:\/\/\S+)/.exec(await lab.stdoutLine(/^dashboard: http:/))![1]!;
  const events = readEvents(`${url}events`);
  // Live, as the lab runs: the verdict arrives in an update (or in the snapshot, on a slow start).
  await events.update((u) => u.lab.some((line) => line.startsWith('passed:')), 60_000);
  await lab.stdoutLine(/^the lab is over; its page stays at http:/);
  // Still serving after the verdict: a fresh page gets the whole lab.
  const later = readEvents(`${url}events`);
  const snapshot = await later.update((u) => u.full);
  assert.ok(snapshot.lab.some((line) => /^1\. /.test(line)), 'the numbered steps');
  assert.ok(snapshot.lab.some((line) => /✓ server .*TIME_WAIT/.test(line)), 'the kernel reading');
  assert.ok(snapshot.rows.some((row) => row.protocol === 'daytime' && row.closedBy === 'server' && row.kernel?.state === 'TIME_WAIT'), JSON.stringify(snapshot.rows));
  events.close();
  later.close();
  lab.child.kill('SIGINT');
  const finished = await lab.finished;
  assert.equal(finished.code, 0, finished.stderr);
});
