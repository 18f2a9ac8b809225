/**
 * `lab-server trace`: ladder diagrams of real TCP connections.
 *
 *   lab-server trace --port 1313          live, from tcpdump: a ladder for each connection as it ends
 *   lab-server trace --read tw.pcap       from a saved capture (no privileges needed)
 *   ... --json                            one JSON object per segment, with both ends' states
 *   ... --pcap out.pcap                   also save what was captured
 *
 * The pieces live in src/capture/: tcpdump.ts runs the capture, pcap.ts and decode.ts read it,
 * connection-tracker.ts follows each connection through the state machine, ladder.ts draws it.
 * This file wires them to the terminal and to Ctrl-C.
 */
import { once } from 'node:events';
import type { Argv, ArgumentsCamelCase, CommandModule } from 'yargs';
import { ConnectionTracker, stepToJson, type Connection } from '../capture/connection-tracker.js';
import { checkLinkType, decodeSegment } from '../capture/decode.js';
import { renderLadder } from '../capture/ladder.js';
import { readPcapFile, type PcapRecord } from '../capture/pcap.js';
import { PcapFileWriter } from '../capture/pcap-file.js';
import { LOOPBACK_INTERFACE, startCapture } from '../capture/tcpdump.js';
import { LabError, usageError } from '../errors.js';
import { NUMBER_VALUE, parsePort, positiveIntegerOption } from './arguments.js';
import { wantsColour } from './terminal.js';

/** Segments of one connection written as JSON; past them, a line counts the ones left out. */
const JSON_STEPS_PER_CONNECTION = 10_000;

function builder(y: Argv) {
  return y
    .options({
      port: { ...NUMBER_VALUE, alias: 'p', coerce: parsePort, describe: 'Trace connections to or from this port, live (needs root or a tcpdump with CAP_NET_RAW)' },
      read: { type: 'string', normalize: true, describe: 'Draw the TCP connections of a saved pcap file instead (tcpdump -w, Wireshark "pcap" format)' },
      count: { ...NUMBER_VALUE, alias: 'c', coerce: positiveIntegerOption('count'), describe: 'Stop after drawing this many connections [default: until Ctrl-C]' },
      json: { type: 'boolean', default: false, describe: 'Print one JSON object per segment, with both ends\' states, instead of ladders' },
      pcap: { type: 'string', normalize: true, describe: 'Also save the captured packets to this pcap file (with --port)' },
      interface: { alias: 'i', type: 'string', default: LOOPBACK_INTERFACE, describe: 'The interface to capture on (with --port)' },
    })
    .conflicts('read', ['port', 'pcap'])
    .check(({ port, read }) => {
      if (port === undefined && read === undefined) throw usageError('ERR_USAGE', 'trace needs --port P (live) or --read FILE (a saved capture)');
      return true;
    })
    .example('sudo $0 trace --port 1313', 'a ladder for each connection to a server on port 1313, until Ctrl-C')
    .example('$0 trace --read tw.pcap', 'the ladders of a saved capture')
    .example('$0 trace --read tw.pcap --json | jq .flags', 'each segment as JSON')
    .strict();
}

type TraceArguments = Awaited<ReturnType<typeof builder>['argv']>;

const print = (line: string): void => void process.stdout.write(`${line}\n`);

/** Draws each connection as it ends (as a ladder, or its segments as JSON lines), up to --count. */
class TraceOutput {
  private readonly tracker: ConnectionTracker;
  drawn = 0;
  /** Resolves when --count connections have been drawn. */
  readonly enough: Promise<void>;
  private reachedCount!: () => void;

  constructor(private readonly args: TraceArguments) {
    this.enough = new Promise((resolve) => (this.reachedCount = resolve));
    this.tracker = new ConnectionTracker({
      serverPorts: args.port === undefined ? [] : [args.port],
      // A later segment can correct an earlier state (an RST answering a SYN: nobody listened), so
      // JSON is written when the connection ends too; it keeps more steps than a ladder draws.
      ...(args.json ? { maxStepsPerConnection: JSON_STEPS_PER_CONNECTION } : {}),
      onFinished: (connection) => this.draw(connection),
    });
  }

  add(record: PcapRecord, linkType: number): void {
    if (this.args.count !== undefined && this.drawn >= this.args.count) return;
    const segment = decodeSegment(linkType, record);
    if (segment === undefined) return;
    this.tracker.add(segment);
  }

  /** The connections still open: drawn as far as they got. */
  finish(): void {
    for (const connection of this.tracker.flush()) this.draw(connection);
    if (this.tracker.dropped > 0) print(`(${this.tracker.dropped} connections were not drawn: more were open at once than a trace follows)`);
  }

  private draw(connection: Connection): void {
    if (this.args.count !== undefined && this.drawn >= this.args.count) return;
    this.drawn += 1;
    if (this.args.json) {
      const kept = connection.steps.map((step) => ({ index: step.index, json: stepToJson(step) }));
      const left = connection.omitted.map((run) => ({ index: run.firstIndex, json: { connection: connection.id, omittedSegments: run.segments, omittedBytes: run.bytes } }));
      for (const { json } of [...kept, ...left].sort((a, b) => a.index - b.index)) print(JSON.stringify(json));
    } else {
      const width = process.stdout.isTTY ? process.stdout.columns : undefined;
      const source = this.args.read === undefined ? `captured by tcpdump on ${this.args.interface}` : `read from ${this.args.read}`;
      print('');
      for (const line of renderLadder(connection, { width, colour: wantsColour(process.stdout), source, readings: [] })) print(line);
    }
    if (this.drawn === this.args.count) this.reachedCount();
  }
}

async function trace(args: ArgumentsCamelCase<TraceArguments>): Promise<void> {
  const output = new TraceOutput(args);
  if (args.read !== undefined) {
    const { header, records } = readPcapFile(args.read);
    checkLinkType(header.linkType, args.read);
    for (const record of records) output.add(record, header.linkType);
    output.finish();
    if (output.drawn === 0) print(`${args.read}: no TCP connection in it`);
    return;
  }
  const pcap = args.pcap === undefined ? undefined : new PcapFileWriter(args.pcap);
  const started = await startCapture({
    filter: `tcp port ${args.port}`,
    interfaceName: args.interface,
    onPacket: (record, linkType) => {
      pcap?.write(record, linkType);
      output.add(record, linkType);
    },
  });
  if (started.capture === undefined) {
    pcap?.close();
    throw new LabError(started.problem === 'no-permission' ? 'ERR_CAPTURE_PERMISSION' : 'ERR_NO_CAPTURE', `cannot trace: ${started.unavailable}`);
  }
  process.stderr.write(`tracing tcp port ${args.port} on ${args.interface}${args.count === undefined ? ' until Ctrl-C' : `, ${args.count} connection${args.count === 1 ? '' : 's'}`}; each ladder is drawn when its connection ends\n`);
  const signalled = Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
  await Promise.race([output.enough, signalled, started.capture.exited]);
  await started.capture.stop();
  output.finish();
  pcap?.close();
  if (pcap !== undefined) process.stderr.write(`saved ${pcap.packets} packets to ${pcap.path}\n`);
  if (started.capture.failure !== undefined) throw new LabError('ERR_NO_CAPTURE', `the capture stopped: ${started.capture.failure}`);
}

export const traceCommand: CommandModule<object, TraceArguments> = {
  command: 'trace',
  describe: 'Draw ladder diagrams of real TCP connections: live with tcpdump (--port), or from a pcap file (--read)',
  builder,
  handler: trace,
};
