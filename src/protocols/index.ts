/**
 * The protocol registry. Adding a protocol is one file in this folder and one line here.
 * An explicit list, not a directory scan: a reader sees every protocol in one place.
 */
import type { Protocol } from '../framework/protocol.js';
import { chargen } from './chargen.js';
import { daytime } from './daytime.js';
import { discard } from './discard.js';
import { echo } from './echo.js';
import { qotd } from './qotd.js';
import { time } from './time.js';

export const protocols: readonly Protocol[] = [echo, discard, daytime, qotd, chargen, time];

export function findProtocol(name: string): Protocol | undefined {
  return protocols.find((protocol) => protocol.name === name);
}
