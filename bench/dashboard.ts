/**
 * What --dashboard costs the server: a scenario run by lab-server with --dashboard and a page
 * reading its event stream (/events) all along, against lab-server without --dashboard (rather
 * than the bare baseline). Echo ping-pong on 100 connections is the case: every line is a
 * `message` event the page's state keeps; daytime adds a connection's whole life per operation
 * (accept, close, a kernel-state report), the most events per unit of work.
 */
import { get } from 'node:http';
import { readFileSync } from 'node:fs';
import { daytimeConnectionRate } from './daytime-connections.js';
import { echoPingPong100 } from './echo-ping-pong.js';
import type { Scenario } from './scenario.js';
import { sleep } from './stats.js';

const DASHBOARD_FLAGS = ['--dashboard', '127.0.0.1:0'];
const URL_TIMEOUT_MS = 10_000;

function withDashboard(scenario: Scenario): Scenario {
  const flags = scenario.labServerFlags ?? [];
  return {
    ...scenario,
    name: `dashboard-${scenario.name}`,
    summary: `${scenario.summary}; lab-server with --dashboard and a page reading it, against lab-server without`,
    labServerFlags: [...flags, ...DASHBOARD_FLAGS],
    baseline: { labServerFlags: flags },
    watchDashboard: true,
    target: { kind: 'min-ratio', value: 0.9 },
  };
}

export const echoPingPong100Dashboard = withDashboard(echoPingPong100);
export const daytimeDashboard = withDashboard(daytimeConnectionRate);

/**
 * Opens the page's event stream, from the URL lab-server logged, and reads it to the end; `stop()`
 * closes it and says how many bytes came.
 */
export async function readDashboard(logFile: string): Promise<{ stop: () => number }> {
  const deadline = performance.now() + URL_TIMEOUT_MS;
  let url: string | undefined;
  while (url === undefined) {
    url = /"event":"dashboard","url":"([^"]+)"/.exec(readFileSync(logFile, 'utf8'))?.[1];
    if (url !== undefined) break;
    if (performance.now() > deadline) throw new Error(`lab-server logged no dashboard URL within ${URL_TIMEOUT_MS} ms`);
    await sleep(20);
  }
  let bytes = 0;
  const request = get(`${url}events`, (response) => response.on('data', (chunk: Buffer) => (bytes += chunk.length)));
  request.on('error', () => {}); // the server stops first at the end of a run
  return {
    stop: () => {
      request.destroy();
      return bytes;
    },
  };
}
