/**
 * A micro-benchmark of escapeForLog, which every logged echo message goes through: nanoseconds of CPU
 * per call for the lines a client sends (plain ASCII, UTF-8 text, a terminal escape, malformed bytes).
 * Not a scenario of `npm run bench`. Run it alone, and give another build's escape.js to compare:
 *
 *     node dist/bench/escape.js [--module PATH/dist/src/framework/escape.js]
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

const { values: options } = parseArgs({ options: { module: { type: 'string' } } });
const modulePath = options.module === undefined ? new URL('../src/framework/escape.js', import.meta.url).href : pathToFileURL(options.module).href;
const { escapeForLog } = (await import(modulePath)) as { escapeForLog: (bytes: Uint8Array) => string };

/** 64-byte lines, like the ping-pong benchmark's. */
const INPUTS: Record<string, Buffer> = {
  'ASCII line': Buffer.from('line 1 abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU'),
  'UTF-8 text': Buffer.from('こんにちは、世界。 Grüße aus Köln, ça va? שלום עולם 1234567'),
  'terminal escape': Buffer.from('\x1b]0;pwned\x07\x1b[2J hello \u202e olleh \u200b\u2066 end of the line'),
  'malformed bytes': Buffer.concat([Buffer.from('abc'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('defghijklmnopqrstuvwxyz 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXY')]),
};
const CALLS = 200_000;
const ROUNDS = 5;

for (const [name, bytes] of Object.entries(INPUTS)) {
  const perCall: number[] = [];
  let sink = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // CPU time rather than wall time: on a shared machine, time spent waiting for a CPU is not ours.
    const start = process.cpuUsage();
    for (let i = 0; i < CALLS; i++) sink += escapeForLog(bytes).length;
    const { user, system } = process.cpuUsage(start);
    perCall.push(((user + system) * 1000) / CALLS);
  }
  perCall.sort((a, b) => a - b);
  console.log(`${name.padEnd(16)} ${perCall[Math.floor(ROUNDS / 2)]!.toFixed(0).padStart(6)} ns/call (median of ${ROUNDS} rounds of ${CALLS}; ${sink > 0 ? 'ok' : ''})`);
}
