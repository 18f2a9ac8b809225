/**
 * The protocol registry. Adding a protocol is one file in this folder and one line here.
 * An explicit list, not a directory scan: a reader sees every protocol in one place.
 */
import type { Protocol } from '../protocol.js';
import { daytime } from './daytime.js';
import { echo } from './echo.js';

export const protocols: readonly Protocol[] = [echo, daytime];

export function findProtocol(name: string): Protocol | undefined {
  return protocols.find((protocol) => protocol.name === name);
}
