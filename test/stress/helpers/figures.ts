/**
 * Each scenario reports its figures as test diagnostics (printed by every reporter) and, when
 * STRESS_FIGURES names a file, as JSON lines there, from which docs/reliability.md is written.
 */
import { appendFileSync } from 'node:fs';
import type { TestContext } from 'node:test';

export type Figure = [name: string, value: string | number | boolean];

export function report(t: TestContext, scenario: string, figures: Figure[]): void {
  for (const [name, value] of figures) t.diagnostic(`${scenario} | ${name} | ${value}`);
  const file = process.env.STRESS_FIGURES;
  if (file !== undefined && file !== '') appendFileSync(file, `${JSON.stringify({ scenario, figures: Object.fromEntries(figures) })}\n`);
}

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;
export const ms = (milliseconds: number): string => `${milliseconds.toFixed(1)} ms`;

/** The value below which `fraction` of the values fall (nearest rank). */
export function percentile(values: readonly number[], fraction: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))]!;
}
