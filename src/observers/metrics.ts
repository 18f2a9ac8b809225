/**
 * Metrics for Prometheus: an observer that counts the server's events and, when scraped, writes
 * them in the Prometheus text exposition format (version 0.0.4: `# HELP`, `# TYPE`, then one
 * `name{labels} value` line a series). The format is small enough to write by hand; a client
 * library would be the largest dependency here.
 *
 * Labels are the service (`protocol`, `transport`) and small fixed sets (a refusal's reason, who
 * closed first): never a client's address or port, which would make a series per client and
 * grow without bound (Prometheus' own advice on label cardinality).
 *
 * Bytes of a TCP connection are counted when it closes (its `closed` event has the totals), so a
 * long chargen connection shows up at its end. The kernel's sockets of each service's port are
 * read at scrape time, at most once a second however often scrapes come (see kernel-states.ts for
 * why reading /proc/net/tcp is not free), and through ss(8) when the table is huge.
 */
import type { EventOf, EventStream, Transport } from '../framework/events.js';
import type { TcpSocketEntry } from '../tcp-states/parse.js';
import { isTcpStateReadingSupported, readTcpSockets, readTcpTableSize } from '../tcp-states/read.js';
import { readPortWithSs } from '../tcp-states/ss.js';
import { MAX_TABLE_ROWS } from './kernel-states.js';

/** Upper bounds of the connection-duration buckets, in seconds: from a daytime exchange to a long echo session. */
export const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600] as const;
/** Reuse one reading of the kernel's table for scrapes closer together than this. */
const KERNEL_READ_INTERVAL_MS = 1000;

/** Reads the kernel's TCP sockets whose local port is `port`; undefined when it cannot. Injected by tests. */
export type PortReader = (port: number) => Promise<TcpSocketEntry[] | undefined>;

type Labels = Record<string, string>;

/** One metric family: a counter or gauge with labelled values. */
class Family {
  private readonly values = new Map<string, { labels: Labels; value: number }>();

  constructor(
    readonly name: string,
    readonly type: 'counter' | 'gauge',
    readonly help: string,
  ) {}

  add(labels: Labels, amount = 1): void {
    const key = JSON.stringify(labels);
    const entry = this.values.get(key);
    if (entry === undefined) this.values.set(key, { labels, value: amount });
    else entry.value += amount;
  }

  render(): string[] {
    return [...this.values.values()].map(({ labels, value }) => `${this.name}${formatLabels(labels)} ${value}`);
  }
}

/** A histogram of connection durations, one per service. */
class DurationHistogram {
  private readonly series = new Map<string, { labels: Labels; buckets: number[]; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  observe(labels: Labels, seconds: number): void {
    const key = JSON.stringify(labels);
    let entry = this.series.get(key);
    if (entry === undefined) this.series.set(key, (entry = { labels, buckets: DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 }));
    // Prometheus buckets are cumulative: an observation counts in every bucket whose bound it is under.
    DURATION_BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) entry.buckets[i]! += 1;
    });
    entry.sum += seconds;
    entry.count += 1;
  }

  render(): string[] {
    return [...this.series.values()].flatMap(({ labels, buckets, sum, count }) => [
      ...DURATION_BUCKETS.map((bound, i) => `${this.name}_bucket${formatLabels({ ...labels, le: String(bound) })} ${buckets[i]}`),
      `${this.name}_bucket${formatLabels({ ...labels, le: '+Inf' })} ${count}`,
      `${this.name}_sum${formatLabels(labels)} ${sum}`,
      `${this.name}_count${formatLabels(labels)} ${count}`,
    ]);
  }
}

/** `{protocol="echo",reason="rate"}`, with the format's three escapes (backslash, quote, newline). */
function formatLabels(labels: Labels): string {
  const pairs = Object.entries(labels).map(([name, value]) => `${name}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

const COUNTED = ['listening', 'accepted', 'refused', 'closed', 'datagram', 'udp-dropped'] as const;
type CountedEvent = EventOf<(typeof COUNTED)[number]>;

const service = (event: { protocol: string; transport: Transport }): Labels => ({ protocol: event.protocol, transport: event.transport });

export class MetricsObserver {
  private readonly accepted = new Family('lab_server_connections_accepted_total', 'counter', 'TCP connections accepted and admitted by every limit.');
  private readonly open = new Family('lab_server_connections_open', 'gauge', 'TCP connections whose descriptor is open now.');
  private readonly refused = new Family('lab_server_connections_refused_total', 'counter', 'TCP connections reset as soon as they were accepted, by reason.');
  private readonly closed = new Family('lab_server_connections_closed_total', 'counter', 'TCP connections closed, by which end closed first and how (fin or rst).');
  private readonly bytesIn = new Family('lab_server_received_bytes_total', 'counter', 'Bytes received from clients (TCP: counted when the connection closes).');
  private readonly bytesOut = new Family('lab_server_sent_bytes_total', 'counter', 'Bytes sent to clients (TCP: counted when the connection closes).');
  private readonly durations = new DurationHistogram('lab_server_connection_duration_seconds', 'How long TCP connections lasted, from accept to close.');
  private readonly datagrams = new Family('lab_server_datagrams_received_total', 'counter', 'UDP datagrams received.');
  private readonly replies = new Family('lab_server_datagram_replies_total', 'counter', 'UDP datagrams answered.');
  private readonly dropped = new Family('lab_server_datagrams_dropped_total', 'counter', 'UDP datagrams not answered, by reason.');
  /** The TCP ports of the services, for the kernel's table: port → protocol. */
  private readonly ports = new Map<number, string>();
  private readonly unsubscribe: () => void;
  private kernelReading?: { at: number; text: Promise<string[]> };

  constructor(
    stream: EventStream,
    private readonly readPort: PortReader = readServicePort,
  ) {
    this.unsubscribe = stream.subscribe((event) => this.count(event as CountedEvent), COUNTED);
  }

  stop(): void {
    this.unsubscribe();
  }

  /** The whole exposition, as a scrape gets it. */
  async render(): Promise<string> {
    const families = [this.accepted, this.open, this.refused, this.closed, this.bytesIn, this.bytesOut];
    const lines = families.flatMap((family) => [`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`, ...family.render()]);
    lines.push(`# HELP ${this.durations.name} ${this.durations.help}`, `# TYPE ${this.durations.name} histogram`, ...this.durations.render());
    for (const family of [this.datagrams, this.replies, this.dropped]) lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`, ...family.render());
    lines.push(...(await this.kernelSockets()));
    return `${lines.join('\n')}\n`;
  }

  private count(event: CountedEvent): void {
    switch (event.type) {
      case 'listening':
        if (event.transport === 'tcp') this.ports.set(event.local.port, event.protocol);
        return;
      case 'accepted':
        this.accepted.add(service(event));
        this.open.add(service(event), +1);
        return;
      case 'refused':
        this.refused.add({ ...service(event), reason: event.reason });
        return;
      case 'closed':
        this.open.add(service(event), -1);
        this.closed.add({ ...service(event), closed_by: event.closedBy, how: event.how });
        this.bytesIn.add(service(event), event.bytesIn);
        this.bytesOut.add(service(event), event.bytesOut);
        this.durations.observe(service(event), event.durationMs / 1000);
        return;
      case 'datagram':
        this.datagrams.add(service(event));
        this.bytesIn.add(service(event), event.bytesIn);
        if (event.bytesOut > 0) {
          this.replies.add(service(event));
          this.bytesOut.add(service(event), event.bytesOut);
        }
        return;
      case 'udp-dropped':
        this.datagrams.add(service(event));
        this.bytesIn.add(service(event), event.bytesIn);
        this.dropped.add({ ...service(event), reason: event.reason });
        return;
    }
  }

  /** `lab_server_kernel_tcp_sockets{protocol,port,state}`, read at most once a second. */
  private kernelSockets(): Promise<string[]> {
    const now = performance.now();
    if (this.kernelReading === undefined || now - this.kernelReading.at >= KERNEL_READ_INTERVAL_MS) {
      this.kernelReading = { at: now, text: this.readKernelSockets() };
    }
    return this.kernelReading.text;
  }

  private async readKernelSockets(): Promise<string[]> {
    const name = 'lab_server_kernel_tcp_sockets';
    const lines = [`# HELP ${name} The kernel's TCP sockets on each service's port (its own end), by state, at the last scrape (read at most once a second).`, `# TYPE ${name} gauge`];
    for (const [port, protocol] of this.ports) {
      const entries = await this.readPort(port).catch(() => undefined);
      if (entries === undefined) continue;
      const byState = new Map<string, number>();
      for (const entry of entries) if (entry.local.port === port) byState.set(entry.state, (byState.get(entry.state) ?? 0) + 1);
      for (const [state, count] of byState) lines.push(`${name}${formatLabels({ protocol, port: String(port), state })} ${count}`);
    }
    return lines;
  }
}

/** The rows of one port, from /proc/net/tcp, or from ss(8) when the table is too big to print (as kernel-states.ts does). */
async function readServicePort(port: number): Promise<TcpSocketEntry[] | undefined> {
  if (!isTcpStateReadingSupported()) return undefined;
  const size = await readTcpTableSize();
  if (size !== undefined && size.sockets > MAX_TABLE_ROWS) return readPortWithSs(port);
  return readTcpSockets({ port });
}
