/**
 * The benchmarks' C load generator (bench/load-generator.c): it must count only replies it has
 * checked, so a server that corrupts a byte or sends a wrong line makes it fail, not score.
 * Skipped where there is no C compiler (the benchmarks then say what to install).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { buildLoadGenerator, runNativeLoad } from '../bench/native-load.js';
import { daytime } from '../src/protocols/daytime.js';
import { startServer } from './helpers/servers.js';

const buildError = buildLoadGenerator();
const needsCompiler = buildError === undefined ? false : buildError;

/** A short load against `port`; the server runs in this process, so its CPU time is ours. */
const load = (port: number, args: (string | number)[], perUnit?: number) =>
  runNativeLoad({ kind: 'lab-server', port, serverPid: process.pid, warmupMs: 100, durationMs: 300 }, args, perUnit);

/** An echo server that passes `transform` over every chunk before sending it back. */
async function echoServer(transform: (chunk: Buffer, offset: number) => Buffer = (chunk) => chunk) {
  let offset = 0;
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      socket.write(transform(chunk, offset));
      offset += chunk.length;
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port };
}

test('bulk and ping-pong against a correct echo: every byte checked, counted in the window', { skip: needsCompiler }, async (t) => {
  const { server, port } = await echoServer();
  t.after(() => server.close());
  const bulk = await load(port, ['bulk', 2, 256 * 1024], 1e6);
  assert.ok(bulk.value > 1, `${bulk.value} MB/s`);
  assert.ok(bulk.windowMs! >= 300 && bulk.windowMs! < 1000, `a 300 ms window, measured ${bulk.windowMs} ms`);
  const pingPong = await load(port, ['pingpong', 3]);
  assert.ok(pingPong.operations! > 10, `${pingPong.operations} round trips`);
  assert.ok(pingPong.details!.p50us! > 0 && pingPong.details!.p99us! >= pingPong.details!.p50us!);
});

test('bulk: one corrupted byte ends the run with an error', { skip: needsCompiler }, async (t) => {
  const corruptAt = 300_000;
  const { server, port } = await echoServer((chunk, offset) => {
    if (offset > corruptAt || offset + chunk.length <= corruptAt) return chunk;
    const copy = Buffer.from(chunk);
    copy[corruptAt - offset]! ^= 0x20;
    return copy;
  });
  t.after(() => server.close());
  await assert.rejects(load(port, ['bulk', 1, 256 * 1024]), /echoed bytes differ from those sent, near stream offset/);
});

test('daytime: real lab-server connections are counted; a wrong line is an error', { skip: needsCompiler }, async (t) => {
  const { server, port } = await startServer(daytime);
  t.after(() => server.close(0));
  const result = await load(port, ['daytime', 2]);
  assert.ok(result.operations! > 10, `${result.operations} connections`);
  assert.equal(result.details!.errors, 0);

  const liar = net.createServer((socket) => socket.on('error', () => {}).end('not the time\n'));
  liar.listen(0, '127.0.0.1');
  await once(liar, 'listening');
  t.after(() => liar.close());
  await assert.rejects(load((liar.address() as net.AddressInfo).port, ['daytime', 1]), /not a daytime line: "not the time/);
});
