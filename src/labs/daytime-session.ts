/**
 * One daytime exchange for the close-state labs: a server on loopback and the project's own
 * daytime client (src/clients/daytime.ts), with the socket pair known to both ends.
 */
import { fetchDaytime, type DaytimeResult } from '../clients/daytime.js';
import type { ClosePolicy } from '../framework/connection.js';
import { formatSocketPair } from '../framework/endpoint.js';
import { daytime } from '../protocols/daytime.js';
import { bothEnds, EVENT_DEADLINE_MS, LAB_HOST, type ConnectionEnds, type LabContext, type StartedServer } from './context.js';

/** How long the "waits before closing" labs wait: long enough to look, short enough to keep a lab quick. */
export const HOLD_MS = 1500;

export interface DaytimeSession {
  ends: ConnectionEnds;
  /** The line the server sent. */
  line: string;
  /** Resolves once the client is done: after its hold, and after its close unless told not to. */
  finished: Promise<DaytimeResult>;
}

/** Starts a daytime server that closes the way `closePolicy` says (orderly and at once by default). */
export async function startDaytimeServer(ctx: LabContext, options: { closePolicy?: ClosePolicy } = {}): Promise<StartedServer> {
  const started = await ctx.startServer({ protocol: daytime, ...options });
  ctx.say(`daytime server listening on ${LAB_HOST}:${started.port}`);
  return started;
}

/**
 * Connects the daytime client and resolves once it has read the server's line. The client
 * goes on by itself (holding, closing) and `finished` tells when it is done.
 */
export async function openDaytimeSession(ctx: LabContext, port: number, { holdMs = 0, close = true } = {}): Promise<DaytimeSession> {
  let onConnected!: (ends: ConnectionEnds) => void;
  let onLine!: (line: string) => void;
  const connected = new Promise<ConnectionEnds>((resolve) => (onConnected = resolve));
  const lineRead = new Promise<string>((resolve) => (onLine = resolve));
  const finished = fetchDaytime({
    host: LAB_HOST,
    port,
    timeoutMs: EVENT_DEADLINE_MS,
    holdMs,
    close,
    onConnected: (local, remote) => onConnected(bothEnds(local, remote)),
    onLine,
  });
  // A socket the client leaves open must not outlive the lab.
  ctx.defer(async () => (await finished.catch(() => undefined))?.socket.destroy());
  // If the client fails first, its error ends the wait.
  const failed = finished.then(() => new Promise<never>(() => {}));
  const ends = await ctx.within(Promise.race([connected, failed]), 'the client to connect');
  const line = await ctx.within(Promise.race([lineRead, failed]), "the server's line");
  ctx.say(`socket pair: client ${formatSocketPair(ends.client.local, ends.client.remote)}, server ${formatSocketPair(ends.server.local, ends.server.remote)}`);
  ctx.say(`the client read: ${line.trimEnd()}`);
  return { ends, line, finished };
}
