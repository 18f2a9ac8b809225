/**
 * A busy host: 25,000 other TCP sockets are open on the machine (a class server, a proxy, a
 * database) while a student runs a lab and a daytime server. The kernel's table is then too big
 * to print after every close, and reading all of it takes a tenth of a second; the lab must still
 * see its own connections, and the server must still report the kernel state of its own.
 *
 * The other sockets are 12,500 loopback connections (both ends count) held by two child
 * processes of our own, each under its descriptor limit, and killed by their PID at the end.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { LAB_SERVER, run, startServerProcess } from '../helpers/cli.js';
import { ms, report } from './helpers/figures.js';

const OTHER_SOCKETS = 25_000;
const CONNECTIONS = OTHER_SOCKETS / 2;
/** How long the holders may take to open their connections. */
const SETUP_DEADLINE_MS = 120_000;

/** On SIGTERM, a holder resets its connections (SO_LINGER 0): no TIME_WAIT is left behind for later tests. */
const RESET_ON_SIGTERM = `process.on('SIGTERM', () => { for (const socket of held) socket.resetAndDestroy(); setImmediate(() => process.exit(0)); });`;

/** A process that accepts `CONNECTIONS` connections on loopback and holds them; prints its port. */
const HOLD_SERVER = `
const net = require('net');
const held = [];
${RESET_ON_SIGTERM}
const server = net.createServer((socket) => held.push(socket.on('error', () => {})));
server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => console.log(server.address().port));`;

/** A process that opens `CONNECTIONS` connections to the port in argv, a few hundred at a time. */
const HOLD_CLIENTS = `
const net = require('net');
const port = Number(process.argv[1]);
const held = [];
${RESET_ON_SIGTERM}
(async () => {
  for (let done = 0; done < ${CONNECTIONS}; done += 500) {
    await Promise.all(Array.from({ length: Math.min(500, ${CONNECTIONS} - done) }, () => new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(held.push(socket)));
      socket.on('error', reject);
    })));
  }
  console.log('connected');
})();`;

/** A daytime client like daytime.c: read until the server's FIN, then close. */
async function readUntilServerCloses(port: number): Promise<void> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.resume();
  await once(socket, 'end', { signal: AbortSignal.timeout(10_000) });
  socket.end();
}

function holder(script: string, args: string[] = []): ChildProcess {
  return spawn(process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
}

/** The first line the child prints, within the setup deadline. */
async function firstLine(child: ChildProcess, what: string): Promise<string> {
  const [chunk] = (await once(child.stdout!, 'data', { signal: AbortSignal.timeout(SETUP_DEADLINE_MS) }).catch(() => {
    throw new Error(`${what} did not report within ${SETUP_DEADLINE_MS / 1000} s`);
  })) as [Buffer];
  return chunk.toString().trim();
}

/** TCP sockets in the kernel's table, as /proc/net/sockstat counts them (IPv4 in use + TIME_WAIT). */
function tableSize(): number {
  const v4 = /^TCP: inuse (\d+) orphan \d+ tw (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'));
  const v6 = /^TCP6: inuse (\d+)/m.exec(readFileSync('/proc/net/sockstat6', 'utf8'));
  return Number(v4?.[1] ?? 0) + Number(v4?.[2] ?? 0) + Number(v6?.[1] ?? 0);
}

test(`${OTHER_SOCKETS} other TCP sockets on the host: lab time-wait still agrees with the kernel, and the server still reports`, { skip: process.platform !== 'linux' && 'reads /proc', timeout: 300_000 }, async (t) => {
  const holdServer = holder(HOLD_SERVER);
  let holdClients: ChildProcess | undefined;
  t.after(async () => {
    for (const child of [holdClients, holdServer]) {
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) continue;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
  });
  const port = await firstLine(holdServer, 'the holding server');
  const setupStarted = performance.now();
  holdClients = holder(HOLD_CLIENTS, [port]);
  assert.equal(await firstLine(holdClients, 'the holding clients'), 'connected');
  const setupMs = performance.now() - setupStarted;
  const sockets = tableSize();
  assert.ok(sockets >= OTHER_SOCKETS, `${sockets} TCP sockets in the kernel's table`);

  const procStarted = performance.now();
  readFileSync('/proc/net/tcp', 'utf8');
  const procReadMs = performance.now() - procStarted;

  const labStarted = performance.now();
  const lab = await run(LAB_SERVER, ['lab', 'time-wait']);
  const labMs = performance.now() - labStarted;
  assert.equal(lab.code, 0, lab.stdout + lab.stderr);
  assert.match(lab.stdout, /✓ state in the server log +textbook: TIME_WAIT +observed: TIME_WAIT/);

  const daytime = await startServerProcess(['daytime', '--host', '127.0.0.1']);
  let reported: string;
  try {
    await readUntilServerCloses(daytime.port);
    const line = await daytime.event('kernel-state');
    reported = String(line.state);
    assert.equal(line.state, 'TIME_WAIT', "the server's report, read through ss while the table is this big");
  } finally {
    assert.equal((await daytime.stop()).code, 0);
  }

  report(t, 'busy-host', [
    ['other TCP sockets in the table', sockets],
    ['time to open them', ms(setupMs)],
    ['one read of /proc/net/tcp', ms(procReadMs)],
    ['lab time-wait: exit status / time', `${lab.code} / ${ms(labMs)}`],
    ["lab-server daytime's kernel-state report", reported],
  ]);
});
