/**
 * What the primary and its workers say to each other over the IPC channel Node opens with
 * child_process.fork() (a socketpair: messages, and descriptors passed with SCM_RIGHTS).
 *
 *   primary                                   worker
 *      │ ── start { forward } ─────────────────► │  which event types the primary's observers want
 *      │ ◄──────────────────────────── ready ─── │  the worker's services are set up
 *      │ ── connection {…} + the socket ───────► │  one per admitted connection
 *      │ ── read-header {…} + the socket ──────► │  --proxy-protocol: the worker reads the header…
 *      │ ◄──────────────── header { outcome } ── │  …the primary admits the client it names, or not…
 *      │ ── verdict { admitted? } ─────────────► │  …and the worker serves it, or resets it
 *      │ ◄──────────────── events [ … ] ──────── │  what happened, a batch per turn of the loop
 *      │ ── make-room { protocol } ────────────► │  the service is full: evict a stalled connection
 *      │ ── stop { deadlineMs } ───────────────► │  drain, then exit
 *      │ ◄──────────────── stopped { forced } ── │  its connections closed by force, per protocol
 */
import type { EventType, ServerEvent } from '../events.js';
import type { HeaderOutcome } from '../proxy-protocol.js';
import type { AwaitingHeader, AdmittedConnection } from '../server.js';

export type ToWorker =
  | { kind: 'start'; forward: EventType[] }
  | ({ kind: 'connection' } & AdmittedConnection)
  | ({ kind: 'read-header'; ticket: number } & AwaitingHeader)
  | { kind: 'verdict'; ticket: number; admitted?: AdmittedConnection }
  | { kind: 'make-room'; protocol: string }
  | { kind: 'stop'; deadlineMs: number };

export type ToPrimary =
  | { kind: 'ready' }
  | { kind: 'header'; ticket: number; outcome: HeaderOutcome }
  | { kind: 'events'; events: ServerEvent[] }
  | { kind: 'stopped'; forced: Record<string, number> };

/** Set in a worker's environment to its number (1 to N): how the same program knows it is a worker. */
export const WORKER_ENV = 'LAB_SERVER_WORKER';
