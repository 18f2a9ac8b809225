/**
 * Predictions about what crossed the wire, checked against the lab's captured packets (packets.ts):
 * which end sent FIN and which RST, after the kernel's table has forgotten the connection. They
 * are made only when the lab's packets are captured (`lab-server lab` as root draws the ladder),
 * and only from a capture that saw the whole connection: tcpdump drops packets when its buffer
 * overflows (a busy loopback), and a missing FIN is not a FIN that was never sent. Otherwise they
 * are reported as skipped, with the reason.
 */
import { TCP_FLAGS } from '../capture/segment.js';
import type { Connection } from '../capture/connection-tracker.js';
import type { End } from '../capture/tcp-machine.js';
import type { ConnectionEnds, LabContext } from './context.js';

/**
 * Why the capture of `connection` may lack a segment, or undefined when it saw it all: it began
 * late, did not see the end (unless `ended` is false: a connection still open, looked at so far),
 * saw a gap in an end's sequence numbers, or saw an end acknowledge sequence numbers it never saw
 * sent (Wireshark's "ACKed segment that wasn't captured").
 */
export function incompleteCapture(connection: Connection, { ended = true } = {}): string | undefined {
  if (connection.joinedLate) return 'the capture began after its handshake';
  if (ended && !connection.finished) return 'the capture did not see it end';
  const missed = 'the capture missed some of its segments';
  // How far each end's sequence numbers reach, in the capture (the SYN and the FIN take one each).
  let sentUpTo: Partial<Record<End, number>> = {};
  let previousIndex = 0;
  for (const step of connection.steps) {
    // Steps the tracker did not keep (a long connection) leave nothing to compare with.
    if (step.index !== previousIndex + 1) sentUpTo = {};
    previousIndex = step.index;
    if (step.notes.includes('previous segment not captured')) return missed;
    const acked = sentUpTo[step.from === 'client' ? 'server' : 'client'];
    if (step.relativeAck !== undefined && acked !== undefined && step.relativeAck > acked) return missed;
    const { flags } = step.segment;
    const reach = step.relativeSeq + step.payloadLength + (flags & TCP_FLAGS.SYN ? 1 : 0) + (flags & TCP_FLAGS.FIN ? 1 : 0);
    sentUpTo[step.from] = Math.max(sentUpTo[step.from] ?? 0, reach);
  }
  return undefined;
}

/**
 * The captured connection between `ends`, whole, or undefined: when no ladder was asked for
 * (nothing to say), or after reporting `id` skipped when the capture could not run or missed some
 * of the connection. With `ended: false`, a connection still open, as far as the capture has seen
 * it: asked for, it is handed over after ctx.packetsOf's settling time (a second) has passed.
 */
export async function capturedConnection(ctx: LabContext, ends: ConnectionEnds, id: string, subject: string, { ended = true } = {}): Promise<Connection | undefined> {
  const connection = await ctx.packetsOf(ends);
  let why: string | undefined;
  if (connection !== undefined) why = incompleteCapture(connection, { ended });
  else if (ctx.capturing) why = 'the capture saw none of its segments';
  else if (ctx.packetsUnavailable !== undefined) why = `no capture: ${ctx.packetsUnavailable}`;
  if (why !== undefined) ctx.report(id, subject, `skipped (${why})`);
  return why === undefined ? connection : undefined;
}

/**
 * How `end` closed, as the wire saw it: its FIN and RST segments in order, `FIN then RST` for a
 * side that closed and then reset; `neither` when it sent none.
 */
export function closingSegments(connection: Connection, end: End): string {
  const closing = connection.steps.filter((step) => step.from === end && step.segment.flags & (TCP_FLAGS.FIN | TCP_FLAGS.RST));
  return closing.map((step) => (step.segment.flags & TCP_FLAGS.RST ? 'RST' : 'FIN')).join(' then ') || 'neither';
}
