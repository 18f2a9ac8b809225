/** Connection limits and access control: the offender is refused, everyone else is served. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { AccessControl, parseCidr } from '../src/framework/access-control.js';
import { echo } from '../src/protocols/echo.js';
import { startServer, waitFor } from './helpers/servers.js';

/**
 * Connects from a given local address (all of 127.0.0.0/8 is loopback on Linux), sends a
 * line and waits: 'served' when the echo comes back, 'refused' when the server resets the
 * connection (possibly before connect() even reports success: the RST is that quick).
 */
async function attempt(localAddress: string, port: number): Promise<{ socket: net.Socket; outcome: 'refused' | 'served' }> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  socket.write('ping\n');
  const outcome = await new Promise<'refused' | 'served'>((resolve, reject) => {
    socket.once('data', () => resolve('served'));
    socket.once('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? resolve('refused') : reject(error)));
  });
  return { socket, outcome };
}

const outcomeOf = async (localAddress: string, port: number): Promise<string> => {
  const { socket, outcome } = await attempt(localAddress, port);
  socket.destroy();
  return outcome;
};

test('subnets: IPv4, IPv6, single addresses; bad ones are usage errors', () => {
  assert.deepEqual(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
  assert.deepEqual(parseCidr('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
  for (const bad of ['10.0.0.0/33', 'foo', '1.2.3.4/8/9', '::1/129', '10.0.0.0/', '1.2.3.4/x']) assert.throws(() => parseCidr(bad), /invalid address or subnet/);
});

test('access rules: deny wins; allow rules, when present, admit only their subnets', () => {
  const rules = new AccessControl(['127.0.0.0/8', 'fd00::/8'], ['127.0.0.9']);
  assert.equal(rules.permits('127.0.0.1'), true);
  assert.equal(rules.permits('::ffff:127.0.0.1'), true, 'IPv4-mapped is matched as IPv4');
  assert.equal(rules.permits('127.0.0.9'), false);
  assert.equal(rules.permits('fd00::5'), true);
  assert.equal(rules.permits('192.0.2.1'), false);
  assert.equal(new AccessControl([], ['::1']).permits('192.0.2.1'), true, 'no allow rules: all but the denied');
});

test('--max-per-source: the third connection from one address is reset; another address is served', async (t) => {
  const { server, port, log } = await startServer(echo, { limits: { maxPerSource: 2 } });
  t.after(() => server.close(0));
  const first = await attempt('127.0.0.1', port);
  const second = await attempt('127.0.0.1', port);
  assert.deepEqual([first.outcome, second.outcome], ['served', 'served']);
  assert.equal(await outcomeOf('127.0.0.1', port), 'refused');
  assert.equal(await outcomeOf('127.0.0.2', port), 'served', 'another address is unaffected');
  assert.equal(log.events('refused')[0]?.reason, 'max-per-source');
  first.socket.destroy();
  while (server.connections.size > 1) await once(server, 'connection-state');
  assert.equal(await outcomeOf('127.0.0.1', port), 'served', 'a freed slot is usable again');
  second.socket.destroy();
});

test('--max-per-source counts sources that were connected before counting started, and again after an idle spell', async (t) => {
  // The server asks who each client is only once as many connections are open as the limit.
  const { server, port } = await startServer(echo, { limits: { maxPerSource: 3 } });
  t.after(() => server.close(0));
  for (let round = 1; round <= 2; round++) {
    const held = [await attempt('127.0.0.1', port), await attempt('127.0.0.1', port), await attempt('127.0.0.2', port)];
    assert.deepEqual(held.map((h) => h.outcome), ['served', 'served', 'served'], `round ${round}`);
    const third = await attempt('127.0.0.1', port); // 127.0.0.1 had 2 of its 3
    assert.equal(third.outcome, 'served', `round ${round}: below the limit for this address`);
    assert.equal(await outcomeOf('127.0.0.1', port), 'refused', `round ${round}: a fourth from 127.0.0.1`);
    assert.equal(await outcomeOf('127.0.0.2', port), 'served', `round ${round}: 127.0.0.2 had only one`);
    for (const { socket } of [...held, third]) socket.destroy();
    while (server.connections.size > 0) await once(server, 'connection-state');
  }
});

test('--max-connections: refused beyond the limit, from any address', async (t) => {
  const { server, port, log } = await startServer(echo, { limits: { maxConnections: 2 } });
  t.after(() => server.close(0));
  const open = [await attempt('127.0.0.1', port), await attempt('127.0.0.2', port)];
  assert.deepEqual(open.map((o) => o.outcome), ['served', 'served']);
  assert.equal(await outcomeOf('127.0.0.3', port), 'refused');
  assert.equal(log.events('refused')[0]?.reason, 'max-connections');
  for (const { socket } of open) socket.destroy();
});

test('--allow/--deny: refused addresses get RST, allowed ones are served', async (t) => {
  const { server, port, log } = await startServer(echo, { access: new AccessControl(['127.0.0.0/8'], ['127.0.0.5']) });
  t.after(() => server.close(0));
  assert.equal(await outcomeOf('127.0.0.5', port), 'refused');
  assert.equal(await outcomeOf('127.0.0.6', port), 'served');
  assert.equal(log.events('refused')[0]?.reason, 'denied');
});

test('refusals are logged at a limited rate, with a count of those not logged', async (t) => {
  const { server, port, log } = await startServer(echo, { access: new AccessControl([], ['127.0.0.7']) });
  t.after(() => server.close(0));
  for (let i = 0; i < 40; i++) assert.equal(await outcomeOf('127.0.0.7', port), 'refused');
  const logged = log.events('refused').length;
  assert.ok(logged >= 20 && logged < 40, `${logged} of 40 refusals logged`);
});

test('under a burst of connections, logging is sampled and the next logged line counts the rest', async (t) => {
  const { server, port, log } = await startServer(echo, { connectionLogsPerSecond: 5 });
  t.after(() => server.close(0));
  for (let i = 0; i < 30; i++) assert.equal(await outcomeOf('127.0.0.1', port), 'served', 'every connection is served');
  await waitFor('the server to close all 30', () => (server.connections.size === 0 ? true : undefined));
  const accepted = log.events('accepted');
  assert.ok(accepted.length >= 10 && accepted.length < 30, `${accepted.length} of 30 connections logged (a burst of 10, then 5 a second)`);
  assert.equal(log.events('closed').length, accepted.length, 'a connection is logged whole or not at all');
  // Let time refill the budget (no event announces that), then one more: its line says how many went unlogged.
  await new Promise((resolve) => setTimeout(resolve, 250));
  await outcomeOf('127.0.0.1', port);
  const last = log.events('accepted').at(-1)!;
  assert.equal(last.unlogged, 30 - accepted.length);
});
