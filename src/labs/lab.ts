/**
 * A lab: one classic experiment from the textbooks (see docs/background.md), run for real on
 * loopback. It narrates each step, states what the textbook predicts, and checks the
 * prediction against what the kernel actually did. Like a protocol, a lab is a plain object;
 * index.ts lists them all.
 */
import type { LabContext } from './context.js';

export interface Lab {
  /** The command name: `lab-server lab <name>`. */
  readonly name: string;
  /** One line for `lab-server lab --list`. */
  readonly summary: string;
  /** The textbook idea it shows, printed before the first step. */
  readonly concept: string;
  /**
   * What the lab needs that a user may lack, checked before its first step: undefined when it can
   * run here, else what is missing and what to do, to follow "lab NAME needs " (namespaces.ts's
   * `namespacesUnavailable`). A lab that cannot run is skipped, never passed.
   */
  readonly needs?: () => Promise<string | undefined>;
  /**
   * Why the lab draws no packet ladder, for a lab whose packets never cross loopback (they cross a
   * veth pair between its own network namespaces, where the capture on lo cannot see them).
   */
  readonly noLadder?: string;
  /** Runs the experiment. Servers, clients and processes it starts are cleaned up by the runner. */
  run(ctx: LabContext): Promise<void>;
}

/**
 * One prediction checked against the kernel (or the socket API), or, for `report`, something
 * this kernel does that the textbooks leave open.
 */
export interface Observation {
  /** Stable within a lab, for tests and scripts: `server-after-hold`. */
  id: string;
  /** The step it belongs to, counting from 1. */
  step: number;
  /** What was looked at, for a person: `server {127.0.0.1:5000, 127.0.0.1:40000}`. */
  subject: string;
  /** `tcp-state`: a kernel TCP state, or 'none' when the kernel holds no socket for the pair. */
  kind: 'tcp-state' | 'fact' | 'report';
  /** What the textbook says; undefined for a report. */
  predicted?: string;
  observed: string;
  agreed: boolean;
  /** For TIME_WAIT (and orphaned FIN_WAIT2): the time left on the kernel's timer. */
  remainingMs?: number;
}

export interface LabResult {
  name: string;
  /** True when every prediction agreed with what the kernel did; false when the lab was skipped. */
  passed: boolean;
  /** Set when the lab could not run here (Lab.needs): what it needs. It ran no step. */
  skipped?: string;
  observations: Observation[];
}
