/**
 * Following TCP connections through a capture. Segments come one at a time, in capture order, from
 * both directions of any number of connections. The tracker groups them by socket pair (Stevens,
 * UNP §2.10), tells the client from the server, and for each segment returns a ladder step: who sent
 * it, its sequence numbers relative to each direction's first (as Wireshark shows them), both ends'
 * states after it (the RFC 9293 §3.3.2 machine of tcp-machine.ts; Stevens UNP fig. 2.4 and 2.5) and
 * notes such as "retransmission". When a connection is over it goes to `onFinished`, to be drawn
 * (ladder.ts) and forgotten.
 *
 * One "connection" has a single end: a socket connected to its own address and port (source =
 * destination). It sends every segment and receives every one; see Connection.selfConnected.
 *
 * Sequence numbers are how TCP tells a new segment from an old one (RFC 9293 §3.4), so they are how
 * we tell too: a FIN sent twice is one FIN, and closes nothing twice.
 *
 * Memory stays bounded on a busy port: at most `maxConnections` followed at once, and of each only the
 * first `maxStepsPerConnection` steps, every step that changes a state, and the last few, where the
 * close is; the steps in between are counted, not kept. A step keeps the start of its payload only.
 */
import { formatEndpoint, sameEndpoint, type Endpoint } from '../framework/endpoint.js';
import { TCP_FLAGS, flagNames, hasFlags, type Segment, type TcpFlagName, type TcpOptions } from './segment.js';
import { LINUX_TIME_WAIT_MS, afterReceiving, afterSending, isOver, otherEnd, type End, type LadderState, type SegmentMeaning } from './tcp-machine.js';

/**
 * Connections followed at once. A lab has a handful; `trace` on a busy port may see thousands open
 * at once, and each holds up to a ladder's worth of steps. Beyond this the least recently active
 * one is dropped (and counted).
 */
export const DEFAULT_MAX_CONNECTIONS = 256;
/** Steps kept from a connection's start: twice what a terminal shows at once is more than anyone reads. */
export const DEFAULT_MAX_STEPS_PER_CONNECTION = 50;
/** Past those, the last steps are kept too, for the close: FIN, ACK, FIN, ACK and the data just before. */
const CLOSING_STEPS_KEPT = 8;
/**
 * Payload bytes a step keeps: enough for the widest preview. It copies them, so that it holds neither
 * a 64 kB segment nor, through a slice, the capture buffer the segment was decoded from.
 */
const PAYLOAD_BYTES_KEPT = 96;

/** What a step can say beyond its flags. Wireshark's "expert info" says most of these too. */
export type StepNote =
  // It carries sequence numbers sent before: the sender saw no ACK in time (RFC 9293 §3.8.1).
  | 'retransmission'
  // It starts beyond the sequence numbers seen so far: the capture missed a segment.
  | 'previous segment not captured'
  // An old sequence number and no new data, to make the peer answer: still there? (RFC 9293 §3.8.4)
  | 'keep-alive'
  // The same question to a peer whose window is zero: room now? (RFC 9293 §3.8.6.1)
  | 'zero window probe'
  // The sender's receive buffer is full: the peer must stop sending.
  | 'zero window'
  // Nothing new but the window: the sender's program read, so there is room again.
  | 'window update'
  // Both ends sent a SYN (RFC 9293 §3.5, figure 7).
  | 'simultaneous open'
  // Both ends sent a FIN before either saw the other's (RFC 9293 §3.6, figure 13).
  | 'simultaneous close'
  // The sender has received a FIN and still sends: one direction is closed, the other is not (RFC 9293 §3.6.1).
  | "data after the peer's FIN (half-close)"
  // Nothing listened on the port, so the kernel itself refused the connection (RFC 9293 §3.10.7.1).
  | 'no listener: the kernel answered the SYN with RST';

export interface LadderStep {
  /** The connection's number, as the tracker counts them from 1. */
  connectionId: number;
  /** The segment's place in its connection, from 1, counting the steps not kept too. */
  index: number;
  /** The segment, keeping at most PAYLOAD_BYTES_KEPT bytes of its payload. */
  segment: Segment;
  from: End;
  /** Its sequence number relative to the sender's initial one: the SYN is 0, the first data byte 1. */
  relativeSeq: number;
  /** Its acknowledgement relative to the receiver's initial sequence number; undefined without the ACK flag. */
  relativeAck: number | undefined;
  payloadLength: number;
  /** Milliseconds since the connection's first segment. */
  offsetMs: number;
  /**
   * Both ends' states after this segment. A later segment may correct them, when it shows that it
   * was sent before this one arrived (the two crossed, as in a simultaneous close), or that no
   * listener took the SYN. The ladder is drawn after; a stream such as `trace --json` has printed
   * the first view.
   */
  states: Record<End, LadderState>;
  /** Which ends this segment moved to a new state. */
  changed: Record<End, boolean>;
  /** A state an end passed through within this step, before the one in `states`: FIN_WAIT1, for an end whose FIN crossed the peer's. */
  via?: Partial<Record<End, LadderState>>;
  /** The window in bytes, with the sender's window scale (RFC 7323) applied; undefined when the SYNs were not seen, so the scale is unknown. */
  scaledWindow: number | undefined;
  notes: StepNote[];
}

/** Steps counted but not kept: `segments` consecutive steps from `firstIndex`, carrying `bytes` of payload. */
export interface OmittedSteps {
  firstIndex: number;
  segments: number;
  bytes: number;
}

export interface Connection {
  readonly id: number;
  readonly client: Endpoint;
  readonly server: Endpoint;
  readonly ipVersion: 4 | 6;
  readonly firstTimeUs: number;
  readonly lastTimeUs: number;
  /** The capture began after the handshake: the states before it are assumed ESTABLISHED, the sequence numbers count from the first seen. */
  readonly joinedLate: boolean;
  /**
   * One socket connected to itself (its SYN came back to it: a simultaneous open with itself, RFC
   * 9293 §3.5): `client` and `server` are the same endpoint, and every segment is sent by it and
   * received by it. A step's `from` is then always 'client', and its `states` are that one socket's
   * state as the segment left it (`client`) and as it came back (`server`); the connection's
   * `states` and `initialStates` are the socket's, the same for both.
   */
  readonly selfConnected: boolean;
  /** The states before the first segment: CLOSED and LISTEN (CLOSED for a socket connected to itself), or ESTABLISHED for a connection joined late. */
  readonly initialStates: Readonly<Record<End, LadderState>>;
  /** The states after the last segment. */
  readonly states: Readonly<Record<End, LadderState>>;
  /** The steps kept, in order; `omitted` counts the others. */
  readonly steps: readonly LadderStep[];
  readonly omitted: readonly OmittedSteps[];
  /** Segments seen, kept or not. */
  readonly segments: number;
  /** Payload bytes each end sent. */
  readonly bytes: Readonly<Record<End, number>>;
  /** The tracker is done with it: both ends are CLOSED or in TIME_WAIT, or a new connection reused its ports. */
  readonly finished: boolean;
}

export interface TrackerOptions {
  /** Ports that servers listen on: they tell the server when the capture missed the SYN. Otherwise the lower port is taken for the server's. */
  serverPorts?: Iterable<number>;
  maxConnections?: number;
  maxStepsPerConnection?: number;
  /** Called once for each connection the tracker is done with (see Connection.finished), which it then forgets. */
  onFinished?: (connection: Connection) => void;
}

/** a − b in sequence space: the numbers are 32 bits and wrap, so compare by the signed difference (RFC 9293 §3.4). */
const seqDiff = (a: number, b: number): number => (a - b) | 0;
const seqAdd = (a: number, n: number): number => (a + n) >>> 0;

const { SYN, FIN, RST, ACK } = TCP_FLAGS;
const isBareSyn = (segment: Segment): boolean => (segment.flags & (SYN | ACK | RST)) === SYN;
/** A FIN on its own, for the one that crossed ours and arrives late. */
const A_FIN: SegmentMeaning = { syn: false, ack: false, fin: true, rst: false, acksSyn: false, acksFin: false };

/** What one end has sent, as the wire shows it: the sending half of its TCB (RFC 9293 §3.3.1), seen from outside. */
interface Sender {
  /** Sequence numbers are shown relative to this: its SYN's, or one before the first seen when the capture missed the SYN. */
  isn: number | undefined;
  /** The sequence number after the last one sent: SND.NXT. */
  next: number | undefined;
  /** Its SYN's SYN and ACK flags, once sent: SYN alone for a connect(), SYN,ACK for an answer. */
  synFlags: number | undefined;
  /** Its SYN's window scale shift (RFC 7323), if it offered one. */
  windowScale: number | undefined;
  /** The sequence number its FIN took, once sent. */
  finSeq: number | undefined;
  lastAck: number | undefined;
  /** The window field of its last segment other than a SYN. */
  lastWindow: number | undefined;
}

const newSender = (): Sender => ({
  isn: undefined,
  next: undefined,
  synFlags: undefined,
  windowScale: undefined,
  finSeq: undefined,
  lastAck: undefined,
  lastWindow: undefined,
});

/** One connection being followed: the Connection the tracker hands out, and the bookkeeping behind it. */
class TrackedConnection implements Connection {
  readonly initialStates: Record<End, LadderState>;
  readonly states: Record<End, LadderState>;
  readonly omitted: OmittedSteps[] = [];
  readonly bytes: Record<End, number> = { client: 0, server: 0 };
  readonly selfConnected: boolean;
  lastTimeUs: number;
  segments = 0;
  finished = false;
  /** A socket connected to itself has one sending half, the same one it receives from. */
  readonly #sent: Record<End, Sender>;
  /** The first maxSteps steps, then those that change a state. */
  readonly #kept: LadderStep[] = [];
  /** The last CLOSING_STEPS_KEPT steps past those. */
  readonly #recent: LadderStep[] = [];
  /**
   * Until the server sends, we assume it listens, as it nearly always does; it stays LISTEN until
   * its SYN,ACK is seen (a listener with a full accept queue drops SYNs unanswered: tcp-machine.ts).
   * Its first segment tells: a reset means nothing listened (the kernel refuses a SYN to a port
   * without a listener, RFC 9293 §3.10.7.1), a SYN of its own means it was opening too (a
   * simultaneous open, the SYNs crossing). Either way it was never LISTEN, and its column is
   * corrected to CLOSED (#takeBack).
   */
  #listenerAssumed: boolean;
  readonly #maxSteps: number;

  constructor(
    readonly id: number,
    readonly client: Endpoint,
    readonly server: Endpoint,
    readonly ipVersion: 4 | 6,
    readonly firstTimeUs: number,
    readonly joinedLate: boolean,
    maxSteps: number,
  ) {
    this.#maxSteps = maxSteps;
    this.selfConnected = sameEndpoint(client, server);
    const itself = newSender();
    this.#sent = this.selfConnected ? { client: itself, server: itself } : { client: newSender(), server: newSender() };
    if (joinedLate) this.initialStates = { client: 'ESTABLISHED', server: 'ESTABLISHED' };
    else this.initialStates = this.selfConnected ? { client: 'CLOSED', server: 'CLOSED' } : { client: 'CLOSED', server: 'LISTEN' };
    this.states = { ...this.initialStates };
    this.#listenerAssumed = !joinedLate && !this.selfConnected;
    this.lastTimeUs = firstTimeUs;
  }

  get steps(): LadderStep[] {
    return [...this.#kept, ...this.#recent];
  }

  isOver(): boolean {
    return isOver(this.states.client) && isOver(this.states.server);
  }

  /**
   * A SYN that starts a new connection on these same ports: after a connection joined late (we
   * never saw its end), or with an initial sequence number other than the one its sender used here.
   */
  isReusedBy(syn: Segment): boolean {
    const sender = this.#sent[this.endOf(syn)];
    return this.joinedLate || (sender.synFlags !== undefined && syn.seq !== sender.isn);
  }

  endOf(segment: Segment): End {
    return sameEndpoint(segment.source, this.client) ? 'client' : 'server';
  }

  add(segment: Segment): LadderStep {
    const from = this.endOf(segment);
    const to = otherEnd(from);
    const [sender, receiver] = [this.#sent[from], this.#sent[to]];
    this.#learnInitialSequenceNumbers(segment, sender, receiver);
    const meaning = meaningOf(segment, receiver);
    const refused = from === 'server' && this.#listenerAssumed && meaning.rst;
    if (from === 'server') this.#learnWhetherServerListened(segment);
    // A FIN that does not acknowledge the peer's FIN was sent before that FIN arrived: the two
    // crossed (a simultaneous close), and the peer's FIN arrives only now.
    const crossedFin = meaning.fin && this.states[from] === 'CLOSE_WAIT' && !meaning.acksFin;
    if (crossedFin) this.#takeBack(from, this.#stepThatMoved(from, 'CLOSE_WAIT'), 'ESTABLISHED');
    const notes = notesOn(segment, sender, receiver, this.states[from]);
    if (refused) notes.push('no listener: the kernel answered the SYN with RST');

    const before = { ...this.states };
    this.states[from] = afterSending(before[from], meaning);
    const via = crossedFin ? { [from]: this.states[from] } : undefined;
    if (crossedFin) this.states[from] = afterReceiving(this.states[from], A_FIN);
    // Connected to itself, the socket receives the segment in the state sending it left it in.
    const receiverBefore = this.selfConnected ? this.states[from] : before[to];
    this.states[to] = afterReceiving(receiverBefore, meaning);
    if (receiverBefore === 'SYN_SENT' && this.states[to] === 'SYN_RECV') notes.push('simultaneous open');
    if (receiverBefore === 'FIN_WAIT1' && this.states[to] === 'CLOSING') notes.push('simultaneous close');

    this.segments += 1;
    const step: LadderStep = {
      connectionId: this.id,
      index: this.segments,
      segment: { ...segment, payload: Buffer.from(segment.payload.subarray(0, PAYLOAD_BYTES_KEPT)) },
      from,
      relativeSeq: (segment.seq - sender.isn!) >>> 0,
      relativeAck: meaning.ack ? (segment.ack - receiver.isn!) >>> 0 : undefined,
      payloadLength: segment.payloadLength,
      offsetMs: (segment.timeUs - this.firstTimeUs) / 1000,
      states: { ...this.states },
      changed: { [from]: this.states[from] !== before[from], [to]: this.states[to] !== receiverBefore } as Record<End, boolean>,
      ...(via === undefined ? {} : { via }),
      scaledWindow: scaledWindow(segment, sender, receiver),
      notes,
    };
    // The socket connected to itself is now as the segment's arrival left it, whichever column asks.
    if (this.selfConnected) this.states[from] = this.states[to];
    remember(segment, sender);
    this.bytes[from] += segment.payloadLength;
    this.lastTimeUs = segment.timeUs;
    this.#keep(step);
    return step;
  }

  /**
   * The sequence numbers count from each end's SYN. When the capture missed it, they count from
   * just before the first one seen (so the first byte seen is 1), and an acknowledgement tells where
   * the other end's count stands before that end has sent anything.
   */
  #learnInitialSequenceNumbers(segment: Segment, sender: Sender, receiver: Sender): void {
    if (sender.isn === undefined) {
      sender.isn = hasFlags(segment, SYN) ? segment.seq : seqAdd(segment.seq, -1);
      sender.next = segment.seq;
    }
    if (receiver.isn === undefined && hasFlags(segment, ACK)) {
      receiver.isn = seqAdd(segment.ack, -1);
      receiver.next = segment.ack;
    }
  }

  /** See #listenerAssumed: the server's first segment tells. */
  #learnWhetherServerListened(segment: Segment): void {
    if (!this.#listenerAssumed) return;
    this.#listenerAssumed = false;
    if (hasFlags(segment, RST) || isBareSyn(segment)) {
      this.initialStates.server = 'CLOSED';
      this.#takeBack('server', 1, 'CLOSED');
    }
  }

  /**
   * Takes back a segment's arrival that the capture's order suggested and the end's own next segment
   * denies: from step `fromIndex` on, `end` is shown in `state`, the state it had before. The capture
   * sees a segment when it leaves; the other end may send before it has arrived.
   */
  #takeBack(end: End, fromIndex: number, state: LadderState): void {
    for (const step of this.steps) {
      if (step.index < fromIndex) continue;
      step.states[end] = state;
      step.changed[end] = false;
    }
    this.states[end] = state;
  }

  /** The index of the step that moved `end` into `state` (such steps are always kept). */
  #stepThatMoved(end: End, state: LadderState): number {
    return this.steps.find((step) => step.changed[end] && step.states[end] === state)?.index ?? 1;
  }

  #keep(step: LadderStep): void {
    if (step.index <= this.#maxSteps) {
      this.#kept.push(step);
      return;
    }
    this.#recent.push(step);
    if (this.#recent.length <= CLOSING_STEPS_KEPT) return;
    const oldest = this.#recent.shift()!;
    if (oldest.changed.client || oldest.changed.server) {
      this.#kept.push(oldest); // a change of state is always drawn
      return;
    }
    const run = this.omitted.at(-1);
    if (run !== undefined && run.firstIndex + run.segments === oldest.index) {
      run.segments += 1;
      run.bytes += oldest.payloadLength;
    } else {
      this.omitted.push({ firstIndex: oldest.index, segments: 1, bytes: oldest.payloadLength });
    }
  }
}

function meaningOf(segment: Segment, receiver: Sender): SegmentMeaning {
  const ack = hasFlags(segment, ACK);
  // The SYN and the FIN each take one sequence number, so an ACK covers them with that number + 1.
  const covers = (seq: number | undefined): boolean => ack && seq !== undefined && seqDiff(segment.ack, seqAdd(seq, 1)) >= 0;
  return {
    syn: hasFlags(segment, SYN),
    ack,
    fin: hasFlags(segment, FIN),
    rst: hasFlags(segment, RST),
    acksSyn: receiver.synFlags !== undefined && covers(receiver.isn),
    acksFin: covers(receiver.finSeq),
  };
}

/** The notes that the sequence numbers and the window tell, before the segment changes any state. */
function notesOn(segment: Segment, sender: Sender, receiver: Sender, senderState: LadderState): StepNote[] {
  const notes: StepNote[] = [];
  const { seq, payloadLength, window } = segment;
  const next = sender.next!;
  const [syn, fin, rst] = [hasFlags(segment, SYN), hasFlags(segment, FIN), hasFlags(segment, RST)];
  const control = syn || fin || rst;
  const keepAliveShaped = !control && payloadLength <= 1 && seq === seqAdd(next, -1);
  const usesSequenceSpace = payloadLength > 0 || syn || fin;
  // A simultaneous open answers with its own SYN again, now with an ACK: not a retransmission.
  const answersWithOwnSyn = syn && sender.synFlags !== undefined && sender.synFlags !== (segment.flags & (SYN | ACK));

  if (receiver.lastWindow === 0 && (keepAliveShaped || (payloadLength === 1 && seq === next && !control))) {
    notes.push('zero window probe');
  } else if (keepAliveShaped) {
    notes.push('keep-alive');
  } else if (usesSequenceSpace && seqDiff(seq, next) < 0 && !answersWithOwnSyn) {
    notes.push('retransmission');
  } else if (!syn && !rst && seqDiff(seq, next) > 0) {
    notes.push('previous segment not captured');
  }

  if (segment.inferred === true) {
    // No window was seen: nothing to say about it.
  } else if (window === 0 && !rst) {
    notes.push('zero window');
  } else if (!control && payloadLength === 0 && seq === next && segment.ack === sender.lastAck && sender.lastWindow !== undefined && window !== sender.lastWindow) {
    notes.push('window update');
  }
  if (payloadLength > 0 && senderState === 'CLOSE_WAIT') notes.push("data after the peer's FIN (half-close)");
  return notes;
}

/** Updates what the sender has sent, once the segment's notes and states are worked out. */
function remember(segment: Segment, sender: Sender): void {
  const syn = hasFlags(segment, SYN);
  if (syn && sender.synFlags === undefined) {
    sender.synFlags = segment.flags & (SYN | ACK);
    sender.windowScale = segment.options.windowScale;
  }
  if (hasFlags(segment, FIN) && sender.finSeq === undefined) {
    sender.finSeq = seqAdd(segment.seq, segment.payloadLength + (syn ? 1 : 0));
  }
  const consumed = segment.payloadLength + (syn ? 1 : 0) + (hasFlags(segment, FIN) ? 1 : 0);
  const end = seqAdd(segment.seq, consumed);
  if (seqDiff(end, sender.next!) > 0) sender.next = end;
  if (hasFlags(segment, ACK)) sender.lastAck = segment.ack;
  // A SYN's window is never scaled, the next segment's is (RFC 7323 §2.2): the two do not compare,
  // and a change between them is no window update.
  sender.lastWindow = syn ? undefined : segment.window;
}

/**
 * The window in bytes. Window scaling (RFC 7323 §2.2) is on only when both SYNs offered it, and a
 * SYN's own window is never scaled; without both SYNs we cannot know the shift.
 */
function scaledWindow(segment: Segment, sender: Sender, receiver: Sender): number | undefined {
  if (hasFlags(segment, SYN)) return segment.window;
  if (sender.synFlags === undefined || receiver.synFlags === undefined) return undefined;
  const shift = sender.windowScale !== undefined && receiver.windowScale !== undefined ? sender.windowScale : 0;
  return segment.window * 2 ** shift;
}

/**
 * Which end of a connection first seen with this segment is the server. A SYN's sender is the
 * client; an answer to a SYN comes from the server. Past the handshake, `serverPorts` tells, or
 * else the lower port: servers listen on well-known ports, clients get high ephemeral ones (UNP §2.9).
 */
function sourceIsServer(first: Segment, serverPorts: ReadonlySet<number>): boolean {
  if (isBareSyn(first)) return false;
  if (hasFlags(first, SYN | ACK)) return true;
  if (serverPorts.has(first.destination.port)) return false;
  if (serverPorts.has(first.source.port)) return true;
  return first.source.port < first.destination.port;
}

/** A socket pair's key, the same in both directions. */
function pairKey(a: Endpoint, b: Endpoint): string {
  const [first, second] = [formatEndpoint(a), formatEndpoint(b)].sort();
  return `${first} ${second}`;
}

export class ConnectionTracker {
  readonly #serverPorts: ReadonlySet<number>;
  readonly #maxConnections: number;
  readonly #maxSteps: number;
  readonly #onFinished: ((connection: Connection) => void) | undefined;
  /** Connections followed now, least recently active first (a Map keeps insertion order). */
  readonly #tracked = new Map<string, TrackedConnection>();
  /** Socket pairs lately finished or dropped, oldest first: their stray late segments are not a new connection. */
  readonly #done = new Set<string>();
  #lastId = 0;
  #dropped = 0;
  #ignored = 0;

  constructor(options: TrackerOptions = {}) {
    this.#serverPorts = new Set(options.serverPorts ?? []);
    this.#maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.#maxSteps = options.maxStepsPerConnection ?? DEFAULT_MAX_STEPS_PER_CONNECTION;
    this.#onFinished = options.onFinished;
  }

  /** Connections dropped unfinished to stay within maxConnections. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Segments ignored: late strays of a connection already finished or dropped. */
  get ignored(): number {
    return this.#ignored;
  }

  /** Connections followed now. */
  get tracking(): number {
    return this.#tracked.size;
  }

  /**
   * Follows one segment: its step, or undefined for a stray after its connection was finished or
   * dropped (say, a retransmission that crossed the last ACK), as there is nothing left to add it to.
   */
  add(segment: Segment): LadderStep | undefined {
    const key = pairKey(segment.source, segment.destination);
    let connection = this.#tracked.get(key);
    if (connection !== undefined && isBareSyn(segment) && connection.isReusedBy(segment)) {
      this.#finish(key, connection);
      connection = undefined;
    }
    if (connection === undefined) {
      if (this.#done.has(key) && !isBareSyn(segment)) {
        this.#ignored += 1;
        return undefined;
      }
      connection = this.#open(key, segment);
    } else {
      this.#tracked.delete(key); // and set again below: now the most recently active
    }
    this.#tracked.set(key, connection);
    const step = connection.add(segment);
    if (connection.isOver()) this.#finish(key, connection);
    return step;
  }

  /** The connections still open, as far as they got, without forgetting them. */
  open(): Connection[] {
    return [...this.#tracked.values()];
  }

  /** Hands over the connections still open (at the end of a file, or on Ctrl-C) and forgets them. */
  flush(): Connection[] {
    const open = [...this.#tracked.values()];
    this.#tracked.clear();
    return open;
  }

  #open(key: string, first: Segment): TrackedConnection {
    if (this.#tracked.size >= this.#maxConnections) {
      const leastRecent = this.#tracked.keys().next().value!;
      this.#tracked.delete(leastRecent);
      this.#markDone(leastRecent);
      this.#dropped += 1;
    }
    this.#done.delete(key);
    const joinedLate = !isBareSyn(first);
    const [server, client] = sourceIsServer(first, this.#serverPorts) ? [first.source, first.destination] : [first.destination, first.source];
    return new TrackedConnection(++this.#lastId, client, server, first.ipVersion, first.timeUs, joinedLate, this.#maxSteps);
  }

  #finish(key: string, connection: TrackedConnection): void {
    connection.finished = true;
    this.#tracked.delete(key);
    this.#markDone(key);
    this.#onFinished?.(connection);
  }

  #markDone(key: string): void {
    this.#done.add(key);
    if (this.#done.size > this.#maxConnections) this.#done.delete(this.#done.values().next().value!);
  }
}

/**
 * One end's state at a moment, as the ladder has it: to compare with a kernel reading taken then.
 * The steps not kept changed no state, so the kept ones are enough. Linux ends TIME_WAIT after
 * LINUX_TIME_WAIT_MS; the ladder says CLOSED from then on.
 */
export function stateAt(connection: Connection, end: End, timeUs: number): LadderState {
  // A socket connected to itself, once a segment is past, is as its arrival (the `server` column) left it.
  const column: End = connection.selfConnected ? 'server' : end;
  let state = connection.initialStates[end];
  let sinceUs = connection.firstTimeUs;
  for (const step of connection.steps) {
    if (step.segment.timeUs > timeUs) break;
    if (step.states[column] !== state) [state, sinceUs] = [step.states[column], step.segment.timeUs];
  }
  return state === 'TIME_WAIT' && timeUs - sinceUs >= LINUX_TIME_WAIT_MS * 1000 ? 'CLOSED' : state;
}

/**
 * The states one end went through, in order, from before the first segment to after the last. A
 * socket connected to itself is both ends: its path takes each row's two columns, sending first.
 */
export function statePath(connection: Connection, end: End): LadderState[] {
  const path = [connection.initialStates[end]];
  const columns: End[] = connection.selfConnected ? ['client', 'server'] : [end];
  for (const step of connection.steps) {
    for (const column of columns) {
      // A row where an end passed two states at once (a simultaneous close: FIN_WAIT1 → CLOSING).
      const via = step.via?.[column];
      if (via !== undefined) path.push(via);
      if (step.changed[column]) path.push(step.states[column]);
    }
  }
  return path;
}

/** One segment with its states, as `trace --json` writes it: one object per line, for other programs. */
export interface StepJson {
  /** When it was captured: microseconds since the Unix epoch. */
  timeUs: number;
  /** Milliseconds since the connection's first segment. */
  offsetMs: number;
  connection: number;
  from: string;
  to: string;
  sender: End;
  flags: TcpFlagName[];
  /** Relative sequence and acknowledgement numbers (ack only with the ACK flag). */
  seq: number;
  ack?: number;
  len: number;
  /** The window field as sent, and scaled when the scale is known. */
  window: number;
  scaledWindow?: number;
  options: TcpOptions;
  /** Each end's state after the segment; for a socket connected to itself, its state as the segment left it and as it came back. */
  clientState: LadderState;
  serverState: LadderState;
  notes: StepNote[];
}

export function stepToJson(step: LadderStep): StepJson {
  const { segment } = step;
  return {
    timeUs: segment.timeUs,
    offsetMs: step.offsetMs,
    connection: step.connectionId,
    from: formatEndpoint(segment.source),
    to: formatEndpoint(segment.destination),
    sender: step.from,
    flags: segment.flags === 0 ? [] : (flagNames(segment.flags).split(',') as TcpFlagName[]),
    seq: step.relativeSeq,
    ...(step.relativeAck === undefined ? {} : { ack: step.relativeAck }),
    len: step.payloadLength,
    window: segment.window,
    ...(step.scaledWindow === undefined ? {} : { scaledWindow: step.scaledWindow }),
    options: segment.options,
    clientState: step.states.client,
    serverState: step.states.server,
    notes: step.notes,
  };
}
