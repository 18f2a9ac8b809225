/** Every benchmark scenario, in the order the runner runs them. Registered by hand: one line each. */
import { daytimeConnectionRate } from './daytime-connections.js';
import { daytimeDashboard, echoPingPong100Dashboard } from './dashboard.js';
import { echoBulk1, echoBulk1Trim, echoBulk50, echoBulk50Trim } from './echo-bulk.js';
import { echoPingPong1, echoPingPong100 } from './echo-ping-pong.js';
import { idleConnections, idleRss } from './idle-memory.js';
import type { Scenario } from './scenario.js';
import { slowReaderScenario } from './slow-reader.js';
import { clientStartup, serverStartup } from './startup.js';
import { daytimeWorkers1, daytimeWorkers2, echoPingPong100Workers1, echoPingPong100Workers2 } from './workers.js';

export const scenarios: readonly Scenario[] = [
  echoBulk1,
  echoBulk50,
  echoBulk1Trim,
  echoBulk50Trim,
  echoPingPong1,
  echoPingPong100,
  daytimeConnectionRate,
  echoPingPong100Dashboard,
  daytimeDashboard,
  daytimeWorkers1,
  daytimeWorkers2,
  echoPingPong100Workers1,
  echoPingPong100Workers2,
  idleConnections,
  slowReaderScenario,
  clientStartup,
  serverStartup,
  idleRss,
];
