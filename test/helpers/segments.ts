/**
 * TCP segments for the state machine and ladder tests, written as the exchange they are:
 * `exchange.client('SYN')`, `exchange.server('SYN,ACK')`. The builder keeps each end's next sequence
 * number, so by default a segment carries the next one and acknowledges everything the other end has
 * sent; a test overrides `seq` or `ack` for a retransmission or a crossing FIN. The values are those
 * of a Linux loopback capture: random-looking initial sequence numbers, an ephemeral client port,
 * MSS 65495 (the 65,535-byte IPv4 packet less 40 bytes of headers), window scale 7.
 */
import type { Endpoint } from '../../src/framework/endpoint.js';
import { TCP_FLAGS, type Segment, type TcpFlagName, type TcpOptions } from '../../src/capture/segment.js';
import type { End } from '../../src/capture/tcp-machine.js';

/** What Linux puts on a SYN over loopback. */
export const SYN_OPTIONS: TcpOptions = { mss: 65495, sackPermitted: true, timestamps: { value: 3_105_291_377, echo: 0 }, windowScale: 7 };

/** 2026-12-01 21:18:06 UTC, in microseconds: the daytime answer's moment. */
export const START_US = 1_796_159_886_000_000;

export const CLIENT: Endpoint = { address: '127.0.0.1', port: 40312 };
export const SERVER: Endpoint = { address: '127.0.0.1', port: 1313 };
export const CLIENT_ISN = 0x48eeee66;
export const SERVER_ISN = 0x9c3b2a11;

export interface SendOptions {
  payload?: string | Buffer;
  /** Absolute sequence number; default: the sender's next. */
  seq?: number;
  /** Absolute acknowledgement; default: the other end's next (everything it has sent). */
  ack?: number;
  window?: number;
  options?: TcpOptions;
  /** Microseconds after the previous segment (default 30). */
  afterUs?: number;
}

export class Exchange {
  readonly segments: Segment[] = [];
  readonly #next: Record<End, number>;
  #timeUs: number;

  constructor(
    readonly ends: Record<End, Endpoint> = { client: CLIENT, server: SERVER },
    isns: Record<End, number> = { client: CLIENT_ISN, server: SERVER_ISN },
    startUs = START_US,
  ) {
    this.#next = { ...isns };
    this.#timeUs = startUs;
  }

  /** The sequence number `end` sends next. */
  next(end: End): number {
    return this.#next[end];
  }

  client(flags: string, options: SendOptions = {}): Segment {
    return this.send('client', flags, options);
  }

  server(flags: string, options: SendOptions = {}): Segment {
    return this.send('server', flags, options);
  }

  send(from: End, flags: string, options: SendOptions = {}): Segment {
    const to: End = from === 'client' ? 'server' : 'client';
    const bits = flags.split(',').reduce((sum, name) => sum | TCP_FLAGS[name as TcpFlagName], 0);
    const payload = typeof options.payload === 'string' ? Buffer.from(options.payload) : (options.payload ?? Buffer.alloc(0));
    const syn = (bits & TCP_FLAGS.SYN) !== 0;
    const seq = options.seq ?? this.#next[from];
    const consumed = payload.length + (syn ? 1 : 0) + ((bits & TCP_FLAGS.FIN) !== 0 ? 1 : 0);
    if (((seq + consumed - this.#next[from]) | 0) > 0) this.#next[from] = (seq + consumed) >>> 0;
    this.#timeUs += options.afterUs ?? 30;
    const segment: Segment = {
      timeUs: this.#timeUs,
      ipVersion: this.ends.client.address.includes(':') ? 6 : 4,
      source: this.ends[from],
      destination: this.ends[to],
      seq,
      ack: (bits & TCP_FLAGS.ACK) !== 0 ? (options.ack ?? this.#next[to]) : 0,
      flags: bits,
      window: options.window ?? (syn ? (from === 'client' ? 65495 : 65483) : 512),
      options: options.options ?? (syn ? SYN_OPTIONS : {}),
      payloadLength: payload.length,
      payload,
    };
    this.segments.push(segment);
    return segment;
  }
}

/** The daytime answer (RFC 867) the server writes before it closes first. */
export const DAYTIME_REPLY = 'Tue Dec  1 21:18:06 2026\n';

/**
 * A daytime connection as Linux runs it over loopback: the handshake, the server writes the time and
 * closes first (the active close), the client acknowledges the data and the FIN, then closes.
 */
export function daytimeExchange(): Exchange {
  const exchange = new Exchange();
  exchange.client('SYN', { afterUs: 0 });
  exchange.server('SYN,ACK', { afterUs: 11 });
  exchange.client('ACK', { afterUs: 9 });
  exchange.server('PSH,ACK', { payload: DAYTIME_REPLY, afterUs: 134 });
  exchange.client('ACK', { afterUs: 8 });
  exchange.server('FIN,ACK', { afterUs: 21 });
  exchange.client('ACK', { afterUs: 40 });
  exchange.client('FIN,ACK', { afterUs: 112 });
  exchange.server('ACK', { afterUs: 10 });
  return exchange;
}

/** A socket bound to 127.0.0.1:42163 that connected to 127.0.0.1:42163: its own peer. */
export const SELF: Endpoint = { address: '127.0.0.1', port: 42163 };

/**
 * A socket connected to itself, as Linux runs it over loopback (the self-connect lab's capture):
 * every segment goes from SELF to SELF. Its SYN comes back to it in SYN_SENT (a simultaneous open),
 * it answers with SYN,ACK on its own initial sequence number, and acknowledges that duplicate SYN;
 * it writes "hello, me\n", reads it and acknowledges it; its FIN comes back to it before its ACK
 * (a simultaneous close), and the ACK of the FIN is the last segment. One socket, one sequence
 * space: the builder's `client` is the socket, and each segment names its numbers.
 */
export function selfConnectExchange(): Exchange {
  const exchange = new Exchange({ client: SELF, server: SELF }, { client: CLIENT_ISN, server: CLIENT_ISN });
  const at = (n: number): number => (CLIENT_ISN + n) >>> 0;
  exchange.client('SYN', { afterUs: 0, window: 65495 });
  exchange.client('SYN,ACK', { seq: at(0), ack: at(1), window: 65495, afterUs: 13 });
  exchange.client('ACK', { seq: at(1), ack: at(1), window: 64, afterUs: 16 }); // a scaled window now: 64 × 2^7
  exchange.client('PSH,ACK', { seq: at(1), ack: at(1), window: 64, payload: 'hello, me\n', afterUs: 53_440 });
  exchange.client('ACK', { seq: at(11), ack: at(11), window: 64, afterUs: 20 });
  exchange.client('FIN,ACK', { seq: at(11), ack: at(11), window: 64, afterUs: 1_871 });
  exchange.client('ACK', { seq: at(12), ack: at(12), window: 64, afterUs: 15 });
  return exchange;
}

/**
 * A client whose first SYN a listener dropped (its accept queue was full: the backlog-full lab): no
 * answer, the same SYN again a second later when the client's retransmission timer fires, and this
 * time the SYN,ACK and the handshake.
 */
export function droppedSynExchange(): Exchange {
  const exchange = new Exchange();
  exchange.client('SYN', { afterUs: 0 });
  exchange.client('SYN', { seq: CLIENT_ISN, afterUs: 1_029_000 });
  exchange.server('SYN,ACK', { afterUs: 12 });
  exchange.client('ACK', { afterUs: 9 });
  return exchange;
}
