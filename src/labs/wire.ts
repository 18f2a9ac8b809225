/**
 * Predictions about what crossed the wire, checked against the lab's captured packets (packets.ts):
 * which end sent FIN and which RST, after the kernel's table has forgotten the connection. They
 * are made only when the lab's packets are captured (`lab-server lab` as root draws the ladder);
 * where the ladder was asked for and no capture could run, they are reported as skipped.
 */
import { TCP_FLAGS } from '../capture/segment.js';
import type { Connection } from '../capture/connection-tracker.js';
import type { End } from '../capture/tcp-machine.js';
import type { ConnectionEnds, LabContext } from './context.js';

/**
 * The captured connection between `ends`, or undefined: when no ladder was asked for (nothing to
 * say), or after reporting `id` skipped when the capture could not run.
 */
export async function capturedConnection(ctx: LabContext, ends: ConnectionEnds, id: string, subject: string): Promise<Connection | undefined> {
  const connection = await ctx.packetsOf(ends);
  const why = ctx.packetsUnavailable;
  if (connection === undefined && why !== undefined) ctx.report(id, subject, `skipped (no capture: ${why})`);
  return connection;
}

/**
 * How `end` closed, as the wire saw it: its FIN and RST segments in order, `FIN then RST` for a
 * side that closed and then reset; `neither` when it sent none.
 */
export function closingSegments(connection: Connection, end: End): string {
  const closing = connection.steps.filter((step) => step.from === end && step.segment.flags & (TCP_FLAGS.FIN | TCP_FLAGS.RST));
  return closing.map((step) => (step.segment.flags & TCP_FLAGS.RST ? 'RST' : 'FIN')).join(' then ') || 'neither';
}
