/** Running a lab in a test and checking it against the textbook's predictions (labs.test.ts, labs-netns.test.ts). */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { Lab, LabResult, Observation } from '../../src/labs/lab.js';
import { runLab } from '../../src/labs/runner.js';

/** CI runs as root: there a lab that needs root must run, never skip. */
export const isRoot = process.getuid?.() === 0;

/** A step that needs python3 reports itself skipped when there is none, and checks nothing after. */
export const skippedSteps = (result: LabResult): Observation[] =>
  result.observations.filter((o) => o.kind === 'report' && o.observed.startsWith('skipped'));

export function observation(result: LabResult, id: string): Observation {
  const found = result.observations.find((o) => o.id === id);
  assert.ok(found, `${result.name}: no observation ${id}`);
  return found;
}

/**
 * Runs `lab` and checks that every prediction agreed and that each observation in `expected` (by
 * id) is what the textbook says. A lab that cannot run here (it needs root) is a skipped test,
 * never a passed one, and only where the test does not run as root.
 */
export async function expectLabAgrees(t: TestContext, lab: Lab, expected: Record<string, string>): Promise<void> {
  const narration: string[] = [];
  const result = await runLab(lab, { write: (line) => narration.push(line) });
  if (result.skipped !== undefined) {
    assert.equal(isRoot, false, `as root, lab ${lab.name} must run, but it needs ${result.skipped}`);
    assert.deepEqual([result.passed, result.observations], [false, []]);
    return t.skip(`lab ${lab.name} needs ${result.skipped}`);
  }
  const disagreed = result.observations.filter((o) => !o.agreed);
  assert.deepEqual(disagreed, [], narration.join('\n'));
  assert.equal(result.passed, true);
  const skipped = skippedSteps(result);
  for (const [id, value] of Object.entries(expected)) {
    // Without python3 the steps that need it are skipped, and say so; everything else still runs.
    if (skipped.length > 0 && !result.observations.some((o) => o.id === id)) continue;
    assert.equal(observation(result, id).observed, value, `${lab.name}: ${id}`);
  }
}
