/**
 * The C load generator (bench/load-generator.c): compiling it, and running it for a scenario.
 *
 * It prints "begin" when its warm-up is over and "end OPERATIONS WINDOW_US [NAME=VALUE ...]"
 * when its measuring window closes. We read the server's CPU time at those two moments, so CPU
 * per operation covers the same window as the rate.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CpuWindow } from './proc-stats.js';
import type { LoadContext, Measurement } from './scenario.js';

const SOURCE = fileURLToPath(new URL('../../bench/load-generator.c', import.meta.url));
/** Next to the compiled benchmarks, in dist/bench/. */
const BINARY = fileURLToPath(new URL('./load-generator', import.meta.url));
const COMPILER = process.env.CC ?? 'cc';

/**
 * Compiles the load generator; returns an error message (what to install) instead of throwing.
 * Quick enough (about 0.2 s) to do on every run, so the binary always matches the source.
 */
export function buildLoadGenerator(): string | undefined {
  const result = spawnSync(COMPILER, ['-O2', '-Wall', '-o', BINARY, SOURCE], { encoding: 'utf8' });
  if (result.error !== undefined) {
    return `the load generator is C and needs a compiler, but ${COMPILER} was not found (${result.error.message}): install one (apt-get install gcc) or name it in CC`;
  }
  if (result.status !== 0) return `${COMPILER} could not compile ${SOURCE}:\n${result.stderr.trim()}`;
  return undefined;
}

/**
 * Runs one load: `args` are the mode and its counts (`['bulk', 50, 262144]`); the port and the
 * times come from `ctx`. Operations are divided by `perUnit` for the rate (1e6 turns bytes into MB).
 */
export async function runNativeLoad(ctx: LoadContext, [mode, count, ...rest]: readonly (string | number)[], perUnit = 1): Promise<Measurement> {
  const argv = [mode, ctx.port, count, ctx.warmupMs, ctx.durationMs, ...rest].map(String);
  const child = spawn(BINARY, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<number | null>((resolve, reject) => child.once('error', reject).once('exit', resolve));

  const cpu = new CpuWindow(ctx.serverPid);
  let measurement: Measurement | undefined;
  for await (const line of createInterface({ input: child.stdout })) {
    if (line === 'begin') {
      cpu.begin();
    } else if (line.startsWith('end ')) {
      const { serverCpuMs } = cpu.end();
      const [operations, windowUs, ...pairs] = line.slice('end '.length).split(' ');
      const windowMs = Number(windowUs) / 1000;
      const details = Object.fromEntries(pairs.map((pair) => pair.split('=')).map(([name, value]) => [name!, Number(value)]));
      const units = Number(operations) / perUnit;
      measurement = { value: units / (windowMs / 1000), operations: units, serverCpuMs, windowMs, ...(pairs.length > 0 && { details }) };
    }
  }
  const status = await exited;
  if (status !== 0 || measurement === undefined) throw new Error(stderr.trim() || `load generator exited with status ${status}`);
  return measurement;
}
