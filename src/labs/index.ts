/**
 * The lab registry. Adding a lab is one file in this folder and one line here.
 * An explicit list, not a directory scan: `lab-server lab --list` shows them in this order,
 * the order a student might take them in.
 */
import { backlogFull } from './backlog-full.js';
import { clientNeverCloses } from './client-never-closes.js';
import { clientWaits } from './client-waits.js';
import { closedPort } from './closed-port.js';
import { duplicateBind } from './duplicate-bind.js';
import { flowControl } from './flow-control.js';
import { halfClose } from './half-close.js';
import { idleTimeout } from './idle-timeout.js';
import { iterativeVsConcurrent } from './iterative-vs-concurrent.js';
import type { Lab } from './lab.js';
import { nagle } from './nagle.js';
import { restart } from './restart.js';
import { rst } from './rst.js';
import { selfConnect } from './self-connect.js';
import { serverKilled } from './server-killed.js';
import { serverNeverCloses } from './server-never-closes.js';
import { serverWaits } from './server-waits.js';
import { socketPair } from './socket-pair.js';
import { timeWait } from './time-wait.js';
import { unreadDataRst } from './unread-data-rst.js';

export const labs: readonly Lab[] = [
  timeWait,
  clientNeverCloses,
  serverNeverCloses,
  clientWaits,
  serverWaits,
  halfClose,
  rst,
  unreadDataRst,
  serverKilled,
  closedPort,
  restart,
  duplicateBind,
  socketPair,
  iterativeVsConcurrent,
  idleTimeout,
  backlogFull,
  flowControl,
  nagle,
  selfConnect,
];

export function findLab(name: string): Lab | undefined {
  return labs.find((lab) => lab.name === name);
}
