/**
 * What --workers does to throughput: daytime connections a second and echo ping-pong on 100
 * connections, with 1 and with 2 worker processes, against lab-server serving in one process.
 *
 * The runner pins the server to one CPU (taskset) and the load generator to the other, and worker
 * processes inherit the pinning: on this 2-core machine the primary and its workers share one core.
 * So these rows measure what handing connections over costs (an accept, a descriptor passed over a
 * Unix socket, and the events coming back), not what several cores gain; that needs a machine
 * with cores to spare besides the load's (docs/guides/scaling.md).
 */
import { daytimeConnectionRate } from './daytime-connections.js';
import { echoPingPong100 } from './echo-ping-pong.js';
import type { Scenario } from './scenario.js';

function withWorkers(scenario: Scenario, workers: number): Scenario {
  const flags = scenario.labServerFlags ?? [];
  return {
    ...scenario,
    name: `workers-${workers}-${scenario.name}`,
    summary: `${scenario.summary}; lab-server --workers ${workers} (sharing the server's one pinned core), against lab-server serving in one process`,
    labServerFlags: [...flags, '--workers', String(workers)],
    baseline: { labServerFlags: flags },
    target: undefined,
  };
}

export const daytimeWorkers1 = withWorkers(daytimeConnectionRate, 1);
export const daytimeWorkers2 = withWorkers(daytimeConnectionRate, 2);
export const echoPingPong100Workers1 = withWorkers(echoPingPong100, 1);
export const echoPingPong100Workers2 = withWorkers(echoPingPong100, 2);
