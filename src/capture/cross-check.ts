/**
 * The ladder against the kernel. The ladder's states are worked out from the packets by the RFC 9293
 * §3.3.2 machine (tcp-machine.ts; Stevens UNP fig. 2.4); the kernel's are what it really holds, read from /proc/net/tcp (or
 * ss) while the lab ran. They should agree. Where they do not (the capture missed a segment, or the
 * kernel does something the textbook diagram leaves out), the kernel wins, and the ladder says so.
 */
import { stateAt, type Connection } from './connection-tracker.js';
import type { End, LadderState } from './tcp-machine.js';

/** One end's state as the kernel reported it at a moment. */
export interface KernelReading {
  /** When it was read: microseconds since the Unix epoch, the capture's clock. */
  timeUs: number;
  end: End;
  /** The kernel's name for the state (tcp-states/parse.ts), or 'none' when the kernel had no socket for this end of the pair. */
  state: string;
  /** Where it was read, for the ladder to say: '/proc/net/tcp', 'ss'. */
  source?: string;
}

export interface CrossCheck {
  reading: KernelReading;
  /** Milliseconds since the connection's first segment (negative: before it). */
  offsetMs: number;
  /** The ladder's state for the same end at the same moment. */
  ladderState: LadderState;
  agrees: boolean;
}

/**
 * The kernel's name for a state, as the ladder names it. The kernel calls a closed socket CLOSE, and
 * a connection waiting for the handshake's last ACK NEW_SYN_RECV (printed as SYN_RECV).
 */
const KERNEL_NAMES: Record<string, LadderState> = { CLOSE: 'CLOSED', NEW_SYN_RECV: 'SYN_RECV' };

function agrees(kernelState: string, ladderState: LadderState): boolean {
  if (kernelState === 'none') {
    // No socket for this pair: right for a closed end (or one whose TIME_WAIT is over), and for a
    // listener too, whose socket is another one, with no peer (`{*:port, *:*}`).
    return ladderState === 'CLOSED' || ladderState === 'LISTEN';
  }
  return (KERNEL_NAMES[kernelState] ?? kernelState) === ladderState;
}

/** Each reading (in time order) beside the ladder's state for the same end at the same moment. */
export function crossCheck(connection: Connection, readings: readonly KernelReading[]): CrossCheck[] {
  return [...readings]
    .sort((a, b) => a.timeUs - b.timeUs)
    .map((reading) => {
      const ladderState = stateAt(connection, reading.end, reading.timeUs);
      return { reading, offsetMs: (reading.timeUs - connection.firstTimeUs) / 1000, ladderState, agrees: agrees(reading.state, ladderState) };
    });
}
