/**
 * One TCP segment as it crossed the wire, decoded from a captured packet: the plain data that
 * the state machine (tcp-machine.ts) and the ladder (ladder.ts) work from. Nothing here is
 * simulated: every field was read from the packet's IP and TCP headers (RFC 791, RFC 8200,
 * RFC 9293 §3.1).
 */
import type { Endpoint } from '../framework/endpoint.js';

/** The TCP header's flag bits, as RFC 9293 §3.1 (and RFC 3168 for ECE and CWR) number them. */
export const TCP_FLAGS = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;
export type TcpFlagName = keyof typeof TCP_FLAGS;

/** The options a SYN negotiates (RFC 9293 §3.2, RFC 7323, RFC 2018), and the timestamps every segment may carry. */
export interface TcpOptions {
  /** Maximum segment size this end can receive; only on SYNs. */
  mss?: number;
  /** Window scale shift count (RFC 7323): this end's window field is multiplied by 2^windowScale; only on SYNs. */
  windowScale?: number;
  /** SACK permitted (RFC 2018); only on SYNs. */
  sackPermitted?: boolean;
  /** Selective acknowledgement blocks, as absolute sequence numbers [left, right). */
  sack?: Array<[number, number]>;
  /** TSval and TSecr (RFC 7323). */
  timestamps?: { value: number; echo: number };
}

export interface Segment {
  /** When it was captured: microseconds since the Unix epoch (pcap's clock; nanosecond files are rounded). */
  timeUs: number;
  /** 4 or 6: the IP version it was carried in. */
  ipVersion: 4 | 6;
  /** The sender's address and port. */
  source: Endpoint;
  /** The receiver's address and port. */
  destination: Endpoint;
  /** Absolute sequence number (32 bits, unsigned). */
  seq: number;
  /** Absolute acknowledgement number; meaningful only when flags include ACK. */
  ack: number;
  /** The flag bits (TCP_FLAGS), e.g. TCP_FLAGS.SYN | TCP_FLAGS.ACK. */
  flags: number;
  /** The window field as sent, not yet scaled. */
  window: number;
  options: TcpOptions;
  /** Payload length from the IP header: the bytes the segment carried, even if the capture kept fewer. */
  payloadLength: number;
  /** The payload bytes the capture kept (at most payloadLength; fewer when the snapshot length cut them). */
  payload: Buffer;
  /**
   * Not captured but rebuilt from a server's events (inferred.ts): only its flags, sequence numbers
   * and length mean anything; it has no window, options or payload to show.
   */
  inferred?: boolean;
}

/** True when `segment` has every flag in `flags`. */
export const hasFlags = (segment: Pick<Segment, 'flags'>, flags: number): boolean => (segment.flags & flags) === flags;

/** The flags as the ladder and tcpdump's users read them: `SYN,ACK`, `PSH,ACK`, `FIN,ACK`, `RST`. */
export function flagNames(flags: number): string {
  const order: TcpFlagName[] = ['SYN', 'FIN', 'RST', 'PSH', 'URG', 'ECE', 'CWR', 'ACK'];
  return order.filter((name) => (flags & TCP_FLAGS[name]) !== 0).join(',') || 'none';
}
