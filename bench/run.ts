/**
 * The benchmark runner: `npm run bench [-- options] [scenario ...]`.
 *
 * For each scenario it starts a fresh server, runs the load once, stops the server, and does
 * that alternately for lab-server (the real CLI, default flags, JSON log to a file) and for the
 * minimal baseline (bench/baseline-servers.ts): A B A B ... Alternating spreads any drift of the
 * machine (other work, heat, TIME_WAIT build-up) over both. It reports the medians and the ratio
 * lab-server / baseline, prints a table, and writes docs/benchmarks.md.
 *
 * Options:
 *   --list            list the scenarios and exit
 *   --quick           one run per server and shorter windows (about a minute in all)
 *   --runs N          runs per server and scenario (default 7; memory scenarios 2)
 *   --duration S      measuring window in seconds (default 2; --quick 1.5)
 *   --write PATH      where to write the Markdown report (default: docs/benchmarks.md, and the
 *                     summary in README.md, only after a run of every scenario)
 *   --no-write        do not write the report
 *   --keep-logs       keep lab-server's log files (their directory is printed)
 *   --lab-server-flags "FLAGS"
 *                     extra lab-server flags, to see what a feature costs:
 *                     --lab-server-flags=--no-kernel-states, --lab-server-flags="--log-level warn"
 *   --cpu-prof DIR    profile lab-server (node --cpu-prof) and write its .cpuprofile files to DIR;
 *                     open them in Chrome DevTools (Performance tab) or VS Code
 *   scenario ...      run only these; a name selects every scenario that starts with it
 *                     (`echo-bulk` runs echo-bulk-1 and echo-bulk-50)
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { scenarios } from './index.js';
import { BULK_WARMUP_MS } from './echo-bulk.js';
import { readDashboard } from './dashboard.js';
import { buildLoadGenerator } from './native-load.js';
import { canPin, LOAD_CPU, runLoad, SERVER_CPU, startServer } from './processes.js';
import { markdownTable, summarise, SUMMARY_COLUMNS, textTable, type ScenarioResult, type SummaryRow } from './report.js';
import type { LoadContext, Measurement, Scenario, ServerKind } from './scenario.js';
import { sleep } from './stats.js';

// Seven short runs rather than three long ones: on a virtual machine a run sometimes lands in a
// slower state for its whole life (20% and more), and the median of seven shrugs off three of them.
const DEFAULTS = { full: { runs: 7, warmupMs: 1000, durationMs: 2000 }, quick: { runs: 1, warmupMs: 500, durationMs: 1500 } };
const ORDER: readonly ServerKind[] = ['lab-server', 'baseline'];
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEFAULT_REPORT = join(REPO_ROOT, 'docs', 'benchmarks.md');
const README = join(REPO_ROOT, 'README.md');
/** What costs what, and what changes measured: written by hand below a marker, kept when the report is rewritten. */
const NOTES_MARKER = '<!-- notes: written by hand, kept by bench/run.ts -->';

const USAGE = 'usage: npm run bench -- [--list] [--quick] [--runs N] [--duration S] [--write PATH | --no-write] [--keep-logs] [--lab-server-flags=FLAGS] [--cpu-prof DIR] [scenario ...]';

const OPTIONS = {
  list: { type: 'boolean', default: false },
  quick: { type: 'boolean', default: false },
  runs: { type: 'string' },
  duration: { type: 'string' },
  write: { type: 'string' },
  'no-write': { type: 'boolean', default: false },
  'keep-logs': { type: 'boolean', default: false },
  'cpu-prof': { type: 'string' },
  'lab-server-flags': { type: 'string', default: '' },
  help: { type: 'boolean', default: false },
} as const;

/** The command line, or a one-line usage error (exit 64) instead of a stack trace. */
function parseCommandLine() {
  try {
    return parseArgs({ allowPositionals: true, options: OPTIONS });
  } catch (error) {
    console.error(`bench: ${(error as Error).message.split('.')[0]}\n${USAGE}`);
    process.exit(64);
  }
}


const { values: flags, positionals: names } = parseCommandLine();

if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}

if (flags.list) {
  for (const s of scenarios) console.log(`${s.name.padEnd(18)} ${s.summary}`);
  process.exit(0);
}

const selected = names.length === 0 ? scenarios : scenarios.filter((s) => names.some((n) => s.name.startsWith(n)));
if (selected.length === 0) {
  console.error(`no scenario matches ${names.join(', ')}; try --list`);
  process.exit(64);
}
const buildError = buildLoadGenerator();
if (buildError !== undefined) {
  console.error(`bench: ${buildError}`);
  process.exit(69);
}
const mode = flags.quick ? DEFAULTS.quick : DEFAULTS.full;
const durationMs = flags.duration === undefined ? mode.durationMs : Number(flags.duration) * 1000;
const runsOf = (s: Scenario): number => (flags.runs !== undefined ? Number(flags.runs) : flags.quick ? (s.runs?.quick ?? 1) : (s.runs?.full ?? mode.runs));
const logDir = mkdtempSync(join(tmpdir(), 'lab-server-bench-'));

const progress = (text: string): boolean => process.stderr.write(`${text}\n`);
progress(
  `lab-server benchmarks: ${selected.length} scenario(s), ${flags.quick ? 'quick' : 'full'} mode, ` +
    (canPin() ? `server on CPU ${SERVER_CPU}, load on CPU ${LOAD_CPU}` : 'taskset not found: processes are not pinned'),
);

/** One run: a fresh server, one load, the server stopped again. */
async function runOnce(scenario: Scenario, kind: ServerKind, run: number): Promise<Measurement> {
  const logFile = join(logDir, `${scenario.name}-${kind}-${run}.log`);
  const labServerFlags = [...(scenario.labServerFlags ?? []), ...flags['lab-server-flags'].split(' ').filter((f) => f !== '')];
  const profile = flags['cpu-prof'];
  const nodeFlags = profile !== undefined && kind === 'lab-server' ? ['--cpu-prof', '--cpu-prof-dir', profile, '--cpu-prof-name', `${scenario.name}-${run}.cpuprofile`] : [];
  // A scenario that measures a feature compares lab-server with lab-server without it.
  const [started, flagsOfRun] = kind === 'baseline' && scenario.baseline !== undefined ? (['lab-server', scenario.baseline.labServerFlags] as const) : [kind, labServerFlags];
  const server = await startServer({ kind: started, protocol: scenario.protocol, labServerFlags: flagsOfRun, logFile, nodeFlags, ...(scenario.serverEnv && { env: scenario.serverEnv }) });
  const page = scenario.watchDashboard && kind === 'lab-server' ? await readDashboard(logFile) : undefined;
  try {
    const warmupMs = flags.quick ? mode.warmupMs : Math.max(mode.warmupMs, scenario.warmupMs ?? 0);
    const ctx: LoadContext = { kind, port: server.port, serverPid: server.pid, warmupMs, durationMs };
    const limit = scenario.timed ? warmupMs + durationMs + 30_000 : 120_000;
    return await runLoad(scenario.name, ctx, limit);
  } finally {
    if (page !== undefined) progress(`    (the page read ${(page.stop() / 1e3).toFixed(0)} kB of updates)`);
    await server.stop();
    if (!flags['keep-logs'] && kind === 'lab-server') {
      progress(`    (lab-server wrote ${(statSync(logFile).size / 1e6).toFixed(1)} MB of log)`);
    }
    if (!flags['keep-logs']) rmSync(logFile, { force: true });
  }
}

/** Share of all CPUs' time spent on anything but idling over `ms`, while this process only waits. */
async function otherWorkPercent(ms: number): Promise<number> {
  const idleAndTotal = (): [number, number] =>
    cpus().reduce<[number, number]>(([idle, total], { times }) => [idle + times.idle, total + times.user + times.nice + times.sys + times.idle + times.irq], [0, 0]);
  const [idleBefore, totalBefore] = idleAndTotal();
  await sleep(ms);
  const [idleAfter, totalAfter] = idleAndTotal();
  return 100 * (1 - (idleAfter - idleBefore) / (totalAfter - totalBefore));
}

// Benchmarks need a quiet machine: another busy process on either core skews every figure. The
// load average would also count the tsc that `npm run bench` ran a moment ago, so look at the CPUs now.
const QUIET_SAMPLE_MS = 2000;
const BUSY_PERCENT_LIMIT = 10;
const busyBefore = await otherWorkPercent(QUIET_SAMPLE_MS);
const machineWasBusy = busyBefore > BUSY_PERCENT_LIMIT;
if (machineWasBusy) progress(`warning: the CPUs were ${busyBefore.toFixed(0)}% busy before starting: other processes are at work, figures will be noisy`);
const started = performance.now();
const results: ScenarioResult[] = [];
for (const scenario of selected) {
  const result: ScenarioResult = { scenario, lab: [], baseline: [] };
  results.push(result);
  progress(`${scenario.name}: ${scenario.summary}`);
  try {
    for (let run = 1; run <= runsOf(scenario); run++) {
      for (const kind of ORDER) {
        const m = await runOnce(scenario, kind, run);
        (kind === 'lab-server' ? result.lab : result.baseline).push(m);
        progress(`  run ${run} ${kind.padEnd(10)} ${m.value.toFixed(2)} ${scenario.metric.unit}${m.details ? ` ${JSON.stringify(m.details)}` : ''}`);
      }
    }
  } catch (error) {
    result.error = (error as Error).message.split('\n')[0];
    progress(`  failed: ${result.error}`);
  }
}
const elapsedS = (performance.now() - started) / 1000;
const rows: SummaryRow[] = results.map(summarise);
console.log(`\n${textTable(rows)}\n\n(medians; ratio = median over runs of lab-server / the baseline beside it; ${elapsedS.toFixed(0)} s)`);

if (!flags['keep-logs']) rmSync(logDir, { recursive: true, force: true });
else progress(`lab-server logs kept in ${logDir}`);

const everyScenario = selected.length === scenarios.length;
const reportPath = flags['no-write'] ? undefined : (flags.write ?? (everyScenario ? DEFAULT_REPORT : undefined));
if (reportPath !== undefined) {
  writeFileSync(reportPath, markdownReport(rows, elapsedS));
  progress(`wrote ${reportPath}`);
  if (reportPath === DEFAULT_REPORT) updateReadmeSummary(rows);
} else if (!flags['no-write']) {
  progress(`not all scenarios ran, so ${DEFAULT_REPORT} was left as it is (--write PATH writes anyway)`);
}

/** Replaces the table between the README's bench-summary markers, so its figures are the latest. */
function updateReadmeSummary(rows: readonly SummaryRow[]): void {
  const readme = readFileSync(README, 'utf8');
  const [begin, end] = ['<!-- bench-summary -->', '<!-- /bench-summary -->'];
  const from = readme.indexOf(begin);
  const to = readme.indexOf(end);
  if (from === -1 || to < from) {
    progress(`README.md has no ${begin} block: its summary was not updated`);
    return;
  }
  writeFileSync(README, `${readme.slice(0, from + begin.length)}\n${markdownTable(rows, SUMMARY_COLUMNS)}\n${readme.slice(to)}`);
  progress(`updated the summary in ${README}`);
}

function markdownReport(rows: readonly SummaryRow[], seconds: number): string {
  const args = process.argv.slice(2);
  const command = `npm run bench${args.length > 0 ? ` -- ${args.join(' ')}` : ''}`;
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const failed = rows.filter((r) => r.pass === false).map((r) => r.name);
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  return `# Benchmarks

Generated by \`${command}\` (bench/run.ts) on ${new Date().toISOString().slice(0, 10)}, lab-server ${pkg.version}.
Run it yourself with \`npm run bench\` (about 9 minutes), \`npm run bench -- --quick\` (about 1 minute),
or name scenarios: \`npm run bench -- echo-ping-pong daytime\`. \`npm run bench -- --list\` lists them.

## How it measures

- **Servers.** lab-server is the real CLI, \`node dist/src/cli/lab-server.js <protocol> --host 127.0.0.1 --port 0\`:
  default flags (info logging as JSON, kernel-state reports on) except loopback and a kernel-chosen port;
  its log goes to a file. The baseline is \`bench/baseline-servers.ts\`: \`net.createServer(s => s.pipe(s))\`
  for echo and \`s.end(line)\` for daytime, nothing else.
- **Same run, alternating.** Each scenario runs lab-server, then the baseline, then lab-server again
  (A B A B, ${DEFAULTS.full.runs} runs each by default, 2 for the memory scenarios), a fresh server process each time.
  Figures are medians. The ratio is the median of the per-run ratios: lab-server's figure over the
  baseline's in the run beside it. A VM drifts between faster and slower states lasting minutes, and
  the two runs of a pair, seconds apart, share the state; a ratio of the two medians would not cancel it.
- **Separate cores.** ${canPin() ? `Each server is pinned to CPU ${SERVER_CPU} and the load generator to CPU ${LOAD_CPU}, with taskset.` : 'taskset was not found: processes were not pinned.'}
  Rates are measured for ${durationMs / 1000} s after ${mode.warmupMs / 1000} s of warm-up (echo bulk: ${BULK_WARMUP_MS / 1000} s, as its
  throughput climbs for a few seconds while the kernel grows the socket buffers and the heap settles).
- **The load generator** is \`bench/load-generator.c\`, one epoll loop in C that checks every reply,
  compiled by the runner. It costs a fraction of what serving costs, so the servers run at 100% and
  set the pace. It busy-polls: on a virtual machine, waking a sleeping client costs the *server*
  an inter-processor interrupt per reply (a third of a daytime server's time), more for whichever
  server is slower. With it, the baselines come close to the figures quoted in issue 6.
- **Server CPU per operation** (details column) is the server's user + system time from /proc/<pid>/stat
  divided by the work done, over the same window.
- **\`-trim\` rows** run both servers with \`GLIBC_TUNABLES=glibc.malloc.trim_threshold=134217728\`.
  Node reads each chunk into a fresh 64 KiB malloc block, and the garbage collector frees them in
  batches. By default glibc may return those pages to the kernel after each batch and fault them
  back in, 4 KiB at a time, for the next one: a quarter of a bulk server's time. lab-server raises
  the threshold itself at startup (\`src/cli/malloc-thresholds.ts\`); the bare baseline does not, and
  whether it pays depends on where live blocks happen to sit in its heap. The -trim rows hold
  trimming off for both from the environment, so they compare the code alone: a reference, with no
  target of its own.
- **Startup rows** (\`bench/startup.ts\`, \`idle-rss\` in \`bench/idle-memory.ts\`) compare with the least
  Node costs: \`lab-client daytime\` to a running lab-server against \`node -e 0\`; a fresh server's
  time to its \`listening\` line against the bare baseline's; an idle server's RSS against the bare
  one's. The load process starts each program 15 times, one at a time, and takes the median; the
  details add each start's CPU time (user + system, from the children's times in /proc/self/stat),
  which a busy machine disturbs less than the wall clock. References, with no target.

## Machine

- CPU: ${cpu}, ${cpus().length} cores; memory ${(totalmem() / 2 ** 30).toFixed(0)} GiB
- Linux ${release()}, Node ${process.version}
- Total time: ${seconds.toFixed(0)} s; other work kept the CPUs ${busyBefore.toFixed(0)}% busy in the ${QUIET_SAMPLE_MS / 1000} s before the run${
    // Only the figure before says anything about other processes: the run itself keeps both cores busy.
    machineWasBusy ? ' (**other processes were busy: these figures are noisy; run again on a quiet machine**)' : ''
  }

## Results

${markdownTable(rows)}

Targets (issue 6): echo bulk ratio ≥ 0.95, echo ping-pong ratio ≥ 0.90, daytime connections/s ratio ≥ 0.90,
memory per idle connection ratio ≤ 1.5, slow-reader RSS growth < 16 MB.
${failed.length === 0 ? 'All targets met in this run.' : `Not met in this run: ${failed.join(', ')}.`}
${keptNotes()}`;
}


function keptNotes(): string {
  const previous = readFileSync(DEFAULT_REPORT, 'utf8');
  const at = previous.indexOf(NOTES_MARKER);
  return at === -1 ? '' : `\n${previous.slice(at)}`;
}
