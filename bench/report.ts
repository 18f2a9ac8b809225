/** Turning runs into a summary row, a terminal table, and docs/benchmarks.md. */
import type { Measurement, Scenario } from './scenario.js';
import { median } from './stats.js';

export interface ScenarioResult {
  scenario: Scenario;
  lab: Measurement[];
  baseline: Measurement[];
  /** Set when a run failed; the scenario then has no figures. */
  error?: string;
}

export interface SummaryRow {
  name: string;
  unit: string;
  lab: number;
  baseline: number;
  ratio: number;
  /** Baseline's server CPU per operation over lab-server's: 1 means each operation costs the same. */
  cpuRatio: number;
  target: string;
  pass: boolean | undefined;
  details: string;
}

const medianOf = (runs: readonly Measurement[], pick: (m: Measurement) => number | undefined): number =>
  median(runs.map(pick).filter((v): v is number => v !== undefined && Number.isFinite(v)));

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return '–';
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** Server CPU time per operation: how much work each byte or round trip costs, whoever is the bottleneck. */
const cpuPerOperationOf = (m: Measurement): number | undefined =>
  m.serverCpuMs === undefined || !m.operations ? undefined : (m.serverCpuMs * 1000) / m.operations;

function cpuPerOperation(runs: readonly Measurement[]): number {
  return medianOf(runs, cpuPerOperationOf);
}

/**
 * The median, over runs, of lab-server's figure divided by the baseline's in the run beside it.
 * A virtual machine drifts between faster and slower states that last minutes (daytime rates of
 * 21k and 31k connections/s for the same server); the two runs of a pair, seconds apart, share
 * the state, so their ratio cancels it where a ratio of the two medians would not.
 */
function pairedRatio(lab: readonly Measurement[], baseline: readonly Measurement[], pick: (m: Measurement) => number | undefined): number {
  const ratios = lab.map((m, i) => {
    const [a, b] = [pick(m), baseline[i] && pick(baseline[i])];
    return a === undefined || b === undefined || b === 0 ? undefined : a / b;
  });
  return median(ratios.filter((r): r is number => r !== undefined && Number.isFinite(r)));
}

export function summarise({ scenario, lab, baseline, error }: ScenarioResult): SummaryRow {
  const labValue = medianOf(lab, (m) => m.value);
  const baselineValue = medianOf(baseline, (m) => m.value);
  const ratio = pairedRatio(lab, baseline, (m) => m.value);
  // Operations per unit of CPU, so that above 1 means lab-server is the cheaper, as for the rate.
  const operationsPerCpu = (m: Measurement): number | undefined => {
    const cost = cpuPerOperationOf(m);
    return cost === undefined ? undefined : 1 / cost;
  };
  const cpuRatio = pairedRatio(lab, baseline, operationsPerCpu);
  const { target } = scenario;
  // A rate must meet its target twice: as measured, and in server CPU per operation. The second
  // catches a cost the first hides when the load generator, not the server, sets the pace.
  const [targetText, pass] =
    target === undefined
      ? ['none (reference)', undefined]
      : target.kind === 'min-ratio'
        ? [`ratio ≥ ${target.value}`, ratio >= target.value && !(cpuRatio < target.value)]
        : target.kind === 'max-ratio'
          ? [`ratio ≤ ${target.value}`, ratio <= target.value]
          : [`< ${target.value} ${scenario.metric.unit}`, labValue < target.value];
  const details: string[] = [];
  if (scenario.operation !== undefined) {
    details.push(`server CPU ${formatNumber(cpuPerOperation(lab))} vs ${formatNumber(cpuPerOperation(baseline))} µs/${scenario.operation.name}`);
    const busy = (m: Measurement): number | undefined => (m.serverCpuMs === undefined || !m.windowMs ? undefined : (100 * m.serverCpuMs) / m.windowMs);
    details.push(`server busy ${formatNumber(medianOf(lab, busy))}% vs ${formatNumber(medianOf(baseline, busy))}%`);
  }
  const detailKeys = new Set([...lab, ...baseline].flatMap((m) => Object.keys(m.details ?? {})));
  for (const key of detailKeys) {
    const pick = (m: Measurement): number | undefined => m.details?.[key];
    details.push(`${key} ${formatNumber(medianOf(lab, pick))} vs ${formatNumber(medianOf(baseline, pick))}`);
  }
  if (error !== undefined) details.unshift(`FAILED: ${error}`);
  return {
    name: scenario.name,
    unit: scenario.metric.unit,
    lab: labValue,
    baseline: baselineValue,
    ratio,
    cpuRatio,
    target: targetText,
    pass: error === undefined && Number.isFinite(labValue) ? pass : undefined,
    details: details.join('; '),
  };
}

const HEADERS = ['scenario', 'unit', 'lab-server', 'baseline', 'ratio', 'CPU ratio', 'target', 'pass', 'details (lab-server vs baseline)'];

function cells(row: SummaryRow): string[] {
  const verdict = row.pass === undefined ? 'n/a' : row.pass ? 'pass' : 'FAIL';
  const twoPlaces = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : '–');
  return [row.name, row.unit, formatNumber(row.lab), formatNumber(row.baseline), twoPlaces(row.ratio), twoPlaces(row.cpuRatio), row.target, verdict, row.details];
}

/** A plain-text table for the terminal, columns padded to fit. */
export function textTable(rows: readonly SummaryRow[]): string {
  const table = [HEADERS, ...rows.map(cells)];
  const widths = HEADERS.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i >= 2 && i <= 5 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(table[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...table.slice(1).map(line)].join('\n');
}

/** The same table in Markdown; `columns` picks some (the README shows the first five and the verdict). */
export function markdownTable(rows: readonly SummaryRow[], columns: readonly number[] = HEADERS.map((_, i) => i)): string {
  const line = (r: string[]): string => `| ${columns.map((i) => r[i]!.replaceAll('|', '\\|')).join(' | ')} |`;
  const align = HEADERS.map((_, i) => (i >= 2 && i <= 5 ? '---:' : '---'));
  return [line(HEADERS), line(align), ...rows.map((r) => line(cells(r)))].join('\n');
}

/** The columns the README's summary shows: scenario, unit, both figures, ratio, target, verdict. */
export const SUMMARY_COLUMNS = [0, 1, 2, 3, 4, 6, 7];
