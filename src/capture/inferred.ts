/**
 * A ladder without a capture: when tcpdump cannot run, a lab still shows the exchange, rebuilt from
 * what the server published (src/framework/events.ts) and labelled as inferred.
 *
 * The events know less than the wire: accept(2) returns after the kernel has finished the handshake,
 * so its three segments are drawn at the moment of `accepted`; the events count bytes, not
 * segments, so each line the client sent is one segment and the rest of the bytes one more; and the
 * ACKs of data are left out. What they do know is enough for the states: who sent the first FIN or
 * the RST (`closed`). The segments are made with sequence numbers counting from 0, and go through
 * the same state machine as captured ones.
 */
import { unmapIPv4, type Endpoint } from '../framework/endpoint.js';
import type { EventOf } from '../framework/events.js';
import type { End } from './tcp-machine.js';
import { TCP_FLAGS, type Segment } from './segment.js';

const { SYN, ACK, PSH, FIN, RST } = TCP_FLAGS;

/** One connection's events, as a server's EventRecorder kept them. */
export interface ConnectionEvents {
  accepted: EventOf<'accepted'>;
  messages: readonly EventOf<'message'>[];
  sent: readonly EventOf<'sent'>[];
  /** Undefined while the connection is open. */
  closed: EventOf<'closed'> | undefined;
}

/** The segments the events imply, in order. */
export function inferSegments({ accepted, messages, sent, closed }: ConnectionEvents): Segment[] {
  const ends: Record<End, Endpoint> = { client: accepted.remote, server: accepted.local };
  const next: Record<End, number> = { client: 0, server: 0 };
  const segments: Segment[] = [];
  const send = (from: End, timeMs: number, flags: number, payloadLength = 0): void => {
    const to: End = from === 'client' ? 'server' : 'client';
    segments.push({
      timeUs: Math.round(timeMs * 1000),
      // A dual-stack listener sees an IPv4 client as ::ffff:a.b.c.d; its packets are IPv4 all the same.
      ipVersion: unmapIPv4(ends.client.address).includes(':') ? 6 : 4,
      source: ends[from],
      destination: ends[to],
      seq: next[from],
      ack: (flags & ACK) !== 0 ? next[to] : 0,
      flags,
      window: 0,
      options: {},
      payloadLength,
      payload: Buffer.alloc(0),
      inferred: true,
    });
    // SYN and FIN each take a sequence number (RFC 9293 §3.4); data takes one per byte.
    next[from] += payloadLength + ((flags & (SYN | FIN)) !== 0 ? 1 : 0);
  };

  send('client', accepted.time, SYN);
  send('server', accepted.time, SYN | ACK);
  send('client', accepted.time, ACK);
  let clientBytes = 0;
  for (const message of messages) {
    const length = message.length + 1; // the line and its newline
    send('client', message.time, PSH | ACK, length);
    clientBytes += length;
  }
  let serverBytes = 0;
  for (const { time, bytes } of sent) {
    send('server', time, PSH | ACK, bytes);
    serverBytes += bytes;
  }
  if (closed === undefined) return segments;
  // Bytes the events did not describe one by one (echo's replies, chargen's stream): one segment each way.
  if (closed.bytesIn > clientBytes) send('client', closed.time, PSH | ACK, closed.bytesIn - clientBytes);
  if (closed.bytesOut > serverBytes) send('server', closed.time, PSH | ACK, closed.bytesOut - serverBytes);
  const first = closed.closedBy;
  const second: End = first === 'client' ? 'server' : 'client';
  if (closed.how === 'rst') {
    send(first, closed.time, RST | ACK);
  } else {
    // The four segments of an orderly close (RFC 9293 §3.6, figure 12).
    send(first, closed.time, FIN | ACK);
    send(second, closed.time, ACK);
    send(second, closed.time, FIN | ACK);
    send(first, closed.time, ACK);
  }
  return segments;
}
