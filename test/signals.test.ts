/**
 * End to end: what each signal does to a running server (src/cli/signals.ts), sent for real with
 * kill(2) to the spawned program: SIGUSR1 never opens Node's inspector, SIGUSR2 logs a status line,
 * SIGHUP drains (no config, no log file) or reopens the log file (logrotate), SIGQUIT closes now.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import type { LogLine } from './helpers/capture-log.js';
import { jsonLines, LAB_SERVER, scratchFolder, start, startServerProcess } from './helpers/cli.js';
import { connect, waitFor } from './helpers/servers.js';

/** Where `node --inspect` and SIGUSR1 open Node's inspector. */
const INSPECTOR_PORT = 9229;
const DEADLINE_MS = 15_000;

/** Whether something accepts connections on 127.0.0.1:9229 now. */
async function inspectorListening(): Promise<boolean> {
  const socket = net.connect({ host: '127.0.0.1', port: INSPECTOR_PORT });
  try {
    await once(socket, 'connect', { signal: AbortSignal.timeout(5000) });
    return true;
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

test('SIGUSR1 does not open the inspector; SIGUSR2 logs a status line; SIGHUP without a config or a log file drains and exits 0 with a summary', async (t) => {
  const taken = await inspectorListening();
  const server = await startServerProcess(['echo']);
  const client = await connect(server.port);
  server.child.kill('SIGUSR1');
  await server.event('signal-ignored');
  if (taken) t.diagnostic(`something else listens on 127.0.0.1:${INSPECTOR_PORT}: only the server's stderr is checked`);
  else assert.equal(await inspectorListening(), false, `nothing listens on 127.0.0.1:${INSPECTOR_PORT} after SIGUSR1`);

  server.child.kill('SIGUSR2');
  const status = await server.event('status');
  assert.deepEqual((status.services as LogLine[]).map(({ protocol, transport, open }) => [protocol, transport, open]), [['echo', 'tcp', 1]]);

  client.end();
  const finished = await server.stop('SIGHUP');
  assert.equal(finished.code, 0);
  assert.doesNotMatch(finished.stderr, /Debugger listening/);
  assert.deepEqual(jsonLines(finished.stdout).filter((line) => ['shutdown', 'summary'].includes(String(line.event))).map((line) => [line.event, line.signal ?? line.connections]), [['shutdown', 'SIGHUP'], ['summary', 1]]);
});

test('SIGQUIT: closes open connections at once (no drain), with a summary, exit 0', async () => {
  // A drain would wait the whole minute for the silent client below.
  const server = await startServerProcess(['echo', '--shutdown-timeout', '60']);
  const client = await connect(server.port);
  await server.event('accepted');
  // The server's FIN reaches the client as the end of its stream.
  const closedByServer = once(client, 'end');
  const finished = await server.stop('SIGQUIT');
  await closedByServer;
  client.destroy();
  assert.equal(finished.code, 0);
  const summary = jsonLines(finished.stdout).find((line) => line.event === 'summary');
  assert.equal(summary?.forced, 1);
});

test('--log-file is reopened on SIGHUP: after a rename (logrotate), new lines go to a new file at the path', async (t) => {
  const dir = scratchFolder(t);
  const logFile = join(dir, 'lab.log');
  const rotated = join(dir, 'lab.log.1');
  const server = start(LAB_SERVER, ['echo', '--port', '0', '--log-file', logFile, '--log-format', 'json']);
  // Empty until the file exists: the server creates it, and after the rename creates it again.
  const linesOf = (path: string): LogLine[] => (existsSync(path) ? jsonLines(readFileSync(path, 'utf8')) : []);
  const listening = await waitFor('the listening line in the log file', () => linesOf(logFile).find((line) => line.event === 'listening'), DEADLINE_MS, 50);

  renameSync(logFile, rotated);
  server.child.kill('SIGHUP');
  // The server is still running: SIGHUP with a log file reopens it, and does not stop the server.
  await waitFor('the reopened log file', () => linesOf(logFile).find((line) => line.event === 'log-reopened'), DEADLINE_MS, 50);
  const client = await connect(Number(listening.port));
  client.end();
  await once(client, 'close');
  await waitFor('the new connection in the new file', () => linesOf(logFile).find((line) => line.event === 'accepted'), DEADLINE_MS, 50);
  assert.equal(linesOf(rotated).some((line) => line.event === 'accepted'), false, 'the rotated file has only the lines from before the rename');

  server.child.kill('SIGTERM');
  const { code } = await server.finished;
  assert.equal(code, 0);
  assert.ok(linesOf(logFile).some((line) => line.event === 'summary'), 'the summary is in the new file');
});
