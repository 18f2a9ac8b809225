/**
 * A lab's packets. Every lab runs on loopback, so tcpdump on `lo` sees its whole exchange: the
 * runner starts a capture before the first step, the lab's context names the ports that are the
 * lab's (each server it starts), so that other programs' loopback traffic is left out, and at the
 * end each of the lab's connections is drawn as a ladder (src/capture/ladder.ts), with the kernel
 * readings the lab took checked against the ladder's states.
 *
 * A capture needs tcpdump and the right to capture (CAP_NET_RAW). Without them the lab runs all the
 * same, and the ladder is inferred from its servers' events (src/capture/inferred.ts), labelled as
 * such: capture never breaks a lab.
 */
import { EventEmitter, once } from 'node:events';
import { formatEndpoint, sameEndpoint, type Endpoint } from '../framework/endpoint.js';
import type { EventRecorder } from '../framework/event-recorder.js';
import { ConnectionTracker, stepToJson, type Connection } from '../capture/connection-tracker.js';
import { decodeSegment } from '../capture/decode.js';
import { inferSegments } from '../capture/inferred.js';
import type { KernelReading } from '../capture/cross-check.js';
import { renderLadder, summarizeConnection } from '../capture/ladder.js';
import type { PcapRecord } from '../capture/pcap.js';
import { PcapFileWriter } from '../capture/pcap-file.js';
import { LOOPBACK_INTERFACE, startCapture, type PacketCapture } from '../capture/tcpdump.js';
import type { Segment } from '../capture/segment.js';
import type { End } from '../capture/tcp-machine.js';
import type { ConnectionJson, PacketsRecord } from './records.js';

/** How long the last packets may take to reach us through tcpdump once the lab is done. */
const SETTLE_MS = 1000;
/** A lab with more connections than this shows one line for each, and the first one's ladder. */
const LADDERS_DRAWN = 3;
/**
 * Packets on ports not (yet) the lab's, kept in case a port turns out to be: a python3 helper that
 * listens and connects in one script says its port only when it is done. Older ones go first.
 */
const UNCLAIMED_BYTES_KEPT = 4 * 1024 * 1024;

interface CapturedPacket {
  record: PcapRecord;
  linkType: number;
  segment: Segment;
}

export interface PacketOptions {
  /** Draw the ladders (false: only save the pcap file). */
  draw?: boolean;
  /** Terminal width for the ladders. */
  width?: number;
  colour?: boolean;
}

/** A kernel reading the lab took (LabContext.expectState), with the socket pair it was about. */
export interface PairReading extends KernelReading {
  local: Endpoint;
  remote: Endpoint;
}

export class LabPackets {
  private readonly ports = new Set<number>();
  private readonly recorders: EventRecorder[] = [];
  private readonly readings: PairReading[] = [];
  private readonly finished: Connection[] = [];
  /** The lab's packets, for --pcap. */
  private readonly own: CapturedPacket[] = [];
  private unclaimed: CapturedPacket[] = [];
  private unclaimedBytes = 0;
  private readonly finishedConnections = new EventEmitter();
  private readonly tracker = new ConnectionTracker({
    maxConnections: 1000,
    onFinished: (connection) => {
      this.finished.push(connection);
      this.finishedConnections.emit('finished', connection);
    },
  });

  private constructor(
    private readonly capture: PacketCapture | undefined,
    /** Why there is no capture, when there is none. */
    readonly unavailable: string | undefined,
    /** --pcap: the lab's own packets are written here when it ends. */
    private readonly pcap: PcapFileWriter | undefined,
  ) {}

  /**
   * Starts capturing the loopback interface; resolves without a capture (and says why) when it
   * cannot. A pcap file is created first: a path that cannot be written fails before the lab runs.
   */
  static async start(pcapPath?: string): Promise<LabPackets> {
    const pcap = pcapPath === undefined ? undefined : new PcapFileWriter(pcapPath);
    let packets: LabPackets | undefined;
    const started = await startCapture({ filter: 'tcp', onPacket: (record, linkType) => packets?.onPacket(record, linkType) });
    packets = new LabPackets(started.capture, started.unavailable, pcap);
    return packets;
  }

  /** True when tcpdump is capturing the lab's packets. */
  get captured(): boolean {
    return this.capture !== undefined;
  }

  /**
   * A port of the lab's: its packets are the lab's, those seen already too. `events`, a server's,
   * for the inferred ladder.
   */
  watch(port: number, events?: EventRecorder): void {
    this.ports.add(port);
    if (events !== undefined) this.recorders.push(events);
    for (const packet of this.unclaimed.filter((p) => this.isLabs(p.segment))) this.claim(packet);
    this.unclaimed = this.unclaimed.filter((p) => !this.isLabs(p.segment));
    this.unclaimedBytes = this.unclaimed.reduce((bytes, packet) => bytes + packet.record.data.length, 0);
  }

  /** Calls `listener` with each of the lab's connections the capture sees end. */
  onFinished(listener: (connection: Connection) => void): void {
    this.finishedConnections.on('finished', listener);
  }

  /** A kernel reading of one end, to check against the ladder. */
  recordReading(reading: PairReading): void {
    this.readings.push(reading);
  }

  /**
   * The captured connection between `client` and `server`, once the capture has seen it end (or
   * SETTLE_MS later, as far as it got); undefined without a capture.
   */
  async connection(client: Endpoint, server: Endpoint): Promise<Connection | undefined> {
    if (this.capture === undefined) return undefined;
    const matches = (c: Connection): boolean => sameEndpoint(c.client, client) && sameEndpoint(c.server, server);
    const done = this.finished.find(matches);
    if (done !== undefined) return done;
    const signal = AbortSignal.timeout(SETTLE_MS);
    try {
      for (;;) {
        const [connection] = (await once(this.finishedConnections, 'finished', { signal })) as [Connection];
        if (matches(connection)) return connection;
      }
    } catch {
      return this.tracker.open().find(matches);
    }
  }

  /**
   * Stops the capture and draws the lab's connections: the ladder of each (or of the first, and a
   * line for each, when there are many), with the kernel readings checked against them; and
   * every connection as data, for --json.
   */
  async finish(options: PacketOptions): Promise<Omit<PacketsRecord, 'type'>> {
    const { lines, connections } = await this.draw(options);
    return { source: this.capture === undefined ? 'inferred' : 'captured', lines, connections: connections.map(connectionJson) };
  }

  private async draw({ draw = true, width, colour }: PacketOptions): Promise<{ lines: string[]; connections: Connection[] }> {
    const lines: string[] = [];
    let connections: Connection[];
    /** How the packets were seen: for the line above the ladders, and for each ladder's title. */
    let seen: string;
    let source: string;
    if (this.capture !== undefined) {
      await this.settle();
      await this.capture.stop();
      connections = [...this.finished, ...this.tracker.flush()].sort((a, b) => a.firstTimeUs - b.firstTimeUs);
      source = 'captured by tcpdump';
      seen = `captured by tcpdump on ${LOOPBACK_INTERFACE}${this.capture.failure === undefined ? '' : ` (the capture broke off: ${this.capture.failure})`}`;
      if (this.pcap !== undefined) {
        // In capture order: a port claimed late brings its earlier packets.
        for (const { record, linkType } of this.own.sort((a, b) => a.record.timeUs - b.record.timeUs)) this.pcap.write(record, linkType);
        this.pcap.close();
        lines.push(`saved the lab's ${this.pcap.packets} packets to ${this.pcap.path} (read it with tcpdump -nn -r ${this.pcap.path}, or open it in Wireshark)`);
      }
    } else {
      connections = this.inferredConnections();
      source = `inferred from the ${this.recorders.length > 1 ? "servers'" : "server's"} events`;
      seen = `${source} (none were captured)`;
      lines.push(`no packet capture: ${this.unavailable}. The ladder below is inferred, not seen.`);
      if (this.pcap !== undefined) {
        this.pcap.close();
        lines.push(`${this.pcap.path} holds no packets: nothing was captured`);
      }
    }
    if (!draw) return { lines, connections };
    if (connections.length === 0) return { lines: [...lines, `The packets, ${seen}: no TCP connection on the lab's ports.`], connections };
    lines.push(`The packets, ${seen}: ${connections.length === 1 ? 'one connection' : `${connections.length} connections`}.`);
    if (connections.length > LADDERS_DRAWN) for (const connection of connections) lines.push(`   ${summarizeConnection(connection)}`);
    for (const connection of connections.slice(0, connections.length > LADDERS_DRAWN ? 1 : LADDERS_DRAWN)) {
      lines.push('');
      lines.push(...renderLadder(connection, { width, colour, source, readings: this.readingsOf(connection) }));
    }
    return { lines, connections };
  }

  private onPacket(record: PcapRecord, linkType: number): void {
    const segment = decodeSegment(linkType, record);
    if (segment === undefined) return;
    const packet = { record, linkType, segment };
    if (this.isLabs(segment)) return this.claim(packet);
    // The capture sees all of loopback: other programs' packets are kept a while, then dropped.
    this.unclaimed.push(packet);
    this.unclaimedBytes += record.data.length;
    while (this.unclaimedBytes > UNCLAIMED_BYTES_KEPT) this.unclaimedBytes -= this.unclaimed.shift()!.record.data.length;
  }

  private isLabs(segment: Segment): boolean {
    return this.ports.has(segment.source.port) || this.ports.has(segment.destination.port);
  }

  private claim(packet: CapturedPacket): void {
    if (this.pcap !== undefined) this.own.push(packet);
    this.tracker.add(packet.segment);
  }

  /** Waits until every connection seen has ended, or SETTLE_MS: the last ACK may still be on its way. */
  private async settle(): Promise<void> {
    const deadline = Date.now() + SETTLE_MS;
    while (this.tracker.tracking > 0 && Date.now() < deadline) {
      await once(this.finishedConnections, 'finished', { signal: AbortSignal.timeout(deadline - Date.now()) }).catch(() => undefined);
    }
  }

  private inferredConnections(): Connection[] {
    const found: Connection[] = [];
    const tracker = new ConnectionTracker({ maxConnections: 1000, onFinished: (connection) => found.push(connection) });
    for (const events of this.recorders) {
      for (const accepted of events.of('accepted')) {
        const mine = (e: { conn: number }): boolean => e.conn === accepted.conn;
        const segments = inferSegments({
          accepted,
          messages: events.of('message', mine),
          sent: events.of('sent', mine),
          closed: events.of('closed', mine)[0],
        });
        for (const segment of segments) tracker.add(segment);
      }
    }
    return found.concat(tracker.flush()).sort((a, b) => a.firstTimeUs - b.firstTimeUs);
  }

  private readingsOf(connection: Connection): KernelReading[] {
    const endOf = (r: PairReading): End | undefined => {
      // A socket connected to itself is both ends: a reading of it is a reading of either.
      if (connection.selfConnected && sameEndpoint(r.local, connection.client) && sameEndpoint(r.remote, connection.client)) return r.end;
      if (sameEndpoint(r.local, connection.server) && sameEndpoint(r.remote, connection.client)) return 'server';
      if (sameEndpoint(r.local, connection.client) && sameEndpoint(r.remote, connection.server)) return 'client';
      return undefined;
    };
    return this.readings.filter((r) => endOf(r) === r.end);
  }
}

/** A connection's segments as `trace --json` writes them (the steps the tracker kept). */
function connectionJson(connection: Connection): ConnectionJson {
  return { client: formatEndpoint(connection.client), server: formatEndpoint(connection.server), segments: connection.segments, steps: connection.steps.map(stepToJson) };
}
