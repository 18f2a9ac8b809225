/** The daytime protocol over real loopback sockets: the exact line, and the server closing first. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { daytime } from '../src/protocols/daytime.js';
import { readTcpSockets, findConnection } from '../src/tcp-states/read.js';
import { connect, readAll, startServer, waitFor } from './helpers/servers.js';

const ASCTIME_LINE = /^(Sun|Mon|Tue|Wed|Thu|Fri|Sat) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123]\d [0-2]\d:[0-5]\d:[0-6]\d \d{4}\n$/;
const fixedClock = (iso: string) => () => new Date(iso);

async function fetchLine(port: number): Promise<string> {
  return (await readAll(await connect(port))).toString('latin1');
}

test('sends the time as one asctime line, with the real clock', async (t) => {
  const { server, port } = await startServer(daytime);
  t.after(() => server.close(0));
  assert.match(await fetchLine(port), ASCTIME_LINE);
});

test('--utc and --crlf, with an injected clock', async (t) => {
  const now = fixedClock('2026-11-01T09:05:03Z');
  const lf = await startServer(daytime, { now, settings: { utc: true, crlf: false } });
  const crlf = await startServer(daytime, { now, settings: { utc: true, crlf: true } });
  t.after(() => Promise.all([lf.server.close(0), crlf.server.close(0)]));
  assert.equal(await fetchLine(lf.port), 'Sun Nov  1 09:05:03 2026\n');
  assert.equal(await fetchLine(crlf.port), 'Sun Nov  1 09:05:03 2026\r\n');
});

test('local time follows TZ', async (t) => {
  const saved = process.env.TZ;
  process.env.TZ = 'Asia/Tokyo';
  const { server, port } = await startServer(daytime, { now: fixedClock('2026-11-01T09:05:03Z'), settings: { utc: false } });
  t.after(() => {
    // Assigning undefined would store the string "undefined" (deprecated, DEP0104): delete instead.
    if (saved === undefined) delete process.env.TZ;
    else process.env.TZ = saved;
    return server.close(0);
  });
  assert.equal(await fetchLine(port), 'Sun Nov  1 18:05:03 2026\n');
});

test('the server closes first: accepted → active → closing → closed', async (t) => {
  const { server, port, states, closed } = await startServer(daytime);
  t.after(() => server.close(0));
  const client = await connect(port);
  await readAll(client); // resolves on the server's FIN
  assert.equal(client.writableEnded, false, "the server's FIN came before the client closed anything");
  client.end();
  const { closedBy, how } = await closed(1);
  assert.deepEqual(states(1), ['accepted', 'active', 'closing', 'closed']);
  assert.deepEqual({ closedBy, how }, { closedBy: 'server', how: 'fin' });
});

test('input is read and thrown away, so the close is still a FIN, not a RST', async (t) => {
  const { server, port, closed } = await startServer(daytime);
  t.after(() => server.close(0));
  const client = await connect(port);
  client.write('some input the server ignores\n');
  const reply = await readAll(client);
  assert.match(reply.toString(), ASCTIME_LINE);
  client.end();
  assert.equal((await closed(1)).how, 'fin');
});

test('on Linux, the server\'s end of that exact socket pair is left in TIME_WAIT', { skip: process.platform !== 'linux' && 'reads /proc/net/tcp' }, async (t) => {
  const { server, port } = await startServer(daytime);
  t.after(() => server.close(0));
  const client = await connect(port);
  const serverEnd = { address: '127.0.0.1', port };
  const clientEnd = { address: client.localAddress!, port: client.localPort! };
  await readAll(client);
  client.end();
  await once(client, 'close');
  const entry = await waitFor('TIME_WAIT on the server end', async () => {
    const found = findConnection(await readTcpSockets(), serverEnd, clientEnd);
    return found?.state === 'TIME_WAIT' ? found : undefined;
  });
  assert.equal(entry.state, 'TIME_WAIT');
  assert.ok(entry.timer.remainingMs > 0 && entry.timer.remainingMs <= 60_000, `TIME_WAIT timer: ${entry.timer.remainingMs} ms`);
  // The client end, which closed second, passes LAST_ACK and is gone once the server ACKs its FIN.
  await waitFor('the client end to disappear', async () => (findConnection(await readTcpSockets(), clientEnd, serverEnd) === undefined ? true : undefined));
});
