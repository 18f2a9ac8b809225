/**
 * The load generator's process: `node dist/bench/load-process.js <scenario> '<LoadContext JSON>'`.
 * The runner starts one per run, pinned to its own CPU, so generating load never competes with
 * the server it measures. It prints the Measurement as one JSON line and exits.
 */
import { scenarios } from './index.js';
import type { LoadContext } from './scenario.js';

const [name, json] = process.argv.slice(2);
const scenario = scenarios.find((s) => s.name === name);
if (scenario === undefined || json === undefined) {
  process.stderr.write(`usage: load-process.js <${scenarios.map((s) => s.name).join('|')}> '<context json>'\n`);
  process.exit(64);
}
const measurement = await scenario.load(JSON.parse(json) as LoadContext);
process.stdout.write(`${JSON.stringify(measurement)}\n`);
// Sockets being torn down must not keep us here: the measurement is out.
process.exit(0);
