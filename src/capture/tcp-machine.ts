/**
 * The TCP state machine (RFC 9293 §3.3.2, figure 5; RFC 793 §3.2, figure 6), run from the outside:
 * after a captured segment, which state is each end of the connection in? It is the diagram of
 * Stevens, UNP fig. 2.4, walked along the packet exchange of UNP fig. 2.5 and TCP/IP Illustrated
 * vol. 1 ch. 13, but read from real packets instead of drawn from the book.
 *
 * A segment moves two ends: the sender's state changes when it sends (its program called connect()
 * or close(), or its kernel answered), the receiver's when the segment arrives. On loopback both
 * happen in the same instant, so one row of the ladder shows both.
 *
 * The names are the kernel's (/proc/net/tcp, netstat: FIN_WAIT1, SYN_RECV) rather than the RFC's
 * (FIN-WAIT-1, SYN-RECEIVED), so that a ladder and a kernel reading compare directly.
 *
 * Pure: what a segment means (SegmentMeaning) in, a state out. connection-tracker.ts works the
 * meaning out from the flags and the sequence numbers.
 */

export type LadderState =
  | 'LISTEN'
  | 'SYN_SENT'
  | 'SYN_RECV'
  | 'ESTABLISHED'
  | 'FIN_WAIT1'
  | 'FIN_WAIT2'
  | 'CLOSE_WAIT'
  | 'CLOSING'
  | 'LAST_ACK'
  | 'TIME_WAIT'
  | 'CLOSED';

/** The two ends of a connection: the client sent the first SYN, the server answered it. */
export type End = 'client' | 'server';

export const otherEnd = (end: End): End => (end === 'client' ? 'server' : 'client');

/**
 * How long Linux keeps a pair in TIME_WAIT: TCP_TIMEWAIT_LEN in include/net/tcp.h, a fixed 60 s
 * where RFC 9293 §3.6 asks for 2×MSL.
 */
export const LINUX_TIME_WAIT_MS = 60_000;

/** The connection is over for this end: nothing is left but, in TIME_WAIT, to wait. */
export const isOver = (state: LadderState): boolean => state === 'CLOSED' || state === 'TIME_WAIT';

/** What one segment says, as far as the state machine cares. */
export interface SegmentMeaning {
  syn: boolean;
  /** The ACK flag is set. */
  ack: boolean;
  fin: boolean;
  rst: boolean;
  /** It acknowledges the receiver's SYN: its ack is the receiver's initial sequence number + 1. */
  acksSyn: boolean;
  /** It acknowledges the receiver's FIN: its ack is the FIN's sequence number + 1 (a FIN takes one, RFC 9293 §3.4). */
  acksFin: boolean;
}

/** The sender's state once it has sent the segment. */
export function afterSending(state: LadderState, segment: SegmentMeaning): LadderState {
  // An abort (SO_LINGER with a zero timeout), or a kernel refusing a segment: RFC 9293 §3.10.5, §3.5.2.
  if (segment.rst) return 'CLOSED';
  if (segment.syn && !segment.ack) {
    // connect(): the active open, RFC 9293 §3.10.1. A repeated SYN changes nothing.
    return state === 'CLOSED' ? 'SYN_SENT' : state;
  }
  if (segment.syn) {
    // SYN,ACK: the answer to a SYN, the moment a listener takes it (see afterReceiving, LISTEN). An end
    // that had sent its own SYN (a simultaneous open, RFC 9293 §3.5 figure 7) gets here now.
    return state === 'LISTEN' || state === 'SYN_SENT' ? 'SYN_RECV' : state;
  }
  if (segment.fin) {
    // close() or shutdown(SHUT_WR), RFC 9293 §3.10.4. First to close: the active close, towards
    // TIME_WAIT. Second (the peer's FIN came first): the passive close, waiting for the last ACK.
    if (state === 'ESTABLISHED' || state === 'SYN_RECV') return 'FIN_WAIT1';
    if (state === 'CLOSE_WAIT') return 'LAST_ACK';
  }
  return state;
}

/**
 * The receiver's state once the segment has arrived: RFC 9293 §3.10.7 "SEGMENT ARRIVES", which
 * looks at RST, then SYN, then the acknowledgement, then FIN, in that order, as we do.
 */
export function afterReceiving(state: LadderState, segment: SegmentMeaning): LadderState {
  if (segment.rst) {
    // §3.10.7.2: a listener ignores a reset. Anywhere else the connection is gone (a SYN_RECV
    // connection's listener lives on, but as another socket). Linux lets a reset end TIME_WAIT
    // too (net.ipv4.tcp_rfc1337 = 0, its default).
    return state === 'LISTEN' ? state : 'CLOSED';
  }
  switch (state) {
    case 'LISTEN':
      // §3.10.7.2 has a SYN move a listener to SYN_RECV and answer with SYN,ACK. From outside we see
      // the answer, not the decision: a listener whose accept queue is full drops the SYN with no
      // trace (Linux's tcp_conn_request), and has no socket for it, not even a request socket. So
      // the listener enters SYN_RECV when its SYN,ACK is seen going out (afterSending), not here.
      return state;
    case 'SYN_SENT': // §3.10.7.3
      if (segment.syn && segment.acksSyn) return 'ESTABLISHED'; // the usual SYN,ACK
      if (segment.syn && !segment.ack) return 'SYN_RECV'; // both sent SYN: a simultaneous open
      return state;
    case 'SYN_RECV': // §3.10.7.4, the ACK field: the ACK of our SYN completes the three-way handshake.
      if (!segment.acksSyn) return state;
      return segment.fin ? 'CLOSE_WAIT' : 'ESTABLISHED';
    case 'ESTABLISHED': // The peer closed first: we wait for our own program to close.
      return segment.fin ? 'CLOSE_WAIT' : state;
    case 'FIN_WAIT1':
      // Our FIN acknowledged, and the peer's FIN in the same segment or not; or the peer's FIN
      // crossing ours (a simultaneous close, RFC 9293 §3.6 figure 13).
      if (segment.acksFin) return segment.fin ? 'TIME_WAIT' : 'FIN_WAIT2';
      return segment.fin ? 'CLOSING' : state;
    case 'FIN_WAIT2': // Half-closed: data may still arrive here until the peer's FIN.
      return segment.fin ? 'TIME_WAIT' : state;
    case 'CLOSING':
      return segment.acksFin ? 'TIME_WAIT' : state;
    case 'LAST_ACK': // The ACK of our FIN was all we waited for.
      return segment.acksFin ? 'CLOSED' : state;
    case 'CLOSE_WAIT':
    case 'TIME_WAIT': // A repeated FIN is acknowledged again (and Linux restarts the timer): no new state.
    case 'CLOSED':
      return state;
  }
}
