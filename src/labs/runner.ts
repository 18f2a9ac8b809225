/**
 * Runs one lab: prints what it is about, runs its steps, stops everything it started, and
 * sums up whether the kernel agreed with the textbook.
 */
import type { Connection } from '../capture/connection-tracker.js';
import { LabError } from '../errors.js';
import type { EventStream } from '../framework/events.js';
import { readTcpSockets } from '../tcp-states/read.js';
import { LabContext } from './context.js';
import type { Lab, LabResult } from './lab.js';
import { LabPackets, type PacketOptions } from './packets.js';

export interface RunLabOptions {
  /** Where the narration goes, one line per call. */
  write: (line: string) => void;
  /** Capture the lab's packets and draw its ladders (captured, or inferred where no capture can run). */
  ladder?: PacketOptions & { pcapPath?: string };
  /** Told of each server's event stream as the lab starts it (for --dashboard). */
  onServer?: (events: EventStream) => void;
  /** Told of each of the lab's connections the capture saw end (for --dashboard's ladders). */
  onCaptured?: (connection: Connection) => void;
}

export async function runLab(lab: Lab, { write, ladder, onServer, onCaptured }: RunLabOptions): Promise<LabResult> {
  // Every lab compares with the kernel's table: fail now, with one clear line, where there is none.
  await readTcpSockets();
  const packets = ladder === undefined ? undefined : await LabPackets.start(ladder.pcapPath);
  write(`lab ${lab.name}: ${lab.summary}`);
  write(lab.concept);
  if (onCaptured !== undefined) packets?.onFinished(onCaptured);
  const ctx = new LabContext(write, packets, onServer);
  try {
    await lab.run(ctx);
  } finally {
    try {
      await ctx.cleanup();
    } finally {
      // Stopped and drawn even when the lab failed: the packets may show why.
      if (packets !== undefined) await drawPackets(packets, ladder!, write);
    }
  }
  const checked = ctx.observations.filter((o) => o.kind !== 'report');
  const disagreed = checked.filter((o) => !o.agreed);
  // A step that could not run (python3 missing) checked nothing: say so next to the verdict.
  const skipped = ctx.observations.filter((o) => o.kind === 'report' && o.observed.startsWith('skipped'));
  const skippedNote = skipped.length === 0 ? '' : `; ${skipped.length} skipped, not checked: ${skipped.map((o) => o.id).join(', ')}`;
  write('');
  write(
    disagreed.length === 0
      ? `passed: the kernel did what the textbook predicts (${checked.length} of ${checked.length} predictions${skippedNote}).`
      : `FAILED: ${disagreed.length} of ${checked.length} predictions disagreed with the kernel: ${disagreed.map((o) => o.id).join(', ')}${skippedNote}.`,
  );
  return { name: lab.name, passed: disagreed.length === 0, observations: ctx.observations };
}

/** The ladders, below the lab. Capture never breaks a lab: a bug in drawing is reported, not thrown. */
async function drawPackets(packets: LabPackets, options: PacketOptions, write: (line: string) => void): Promise<void> {
  write('');
  try {
    for (const line of await packets.finish(options)) write(line);
  } catch (error) {
    if (error instanceof LabError) throw error; // --pcap could not be written: the user asked for that file
    write(`the ladder could not be drawn (a bug in lab-server, please report it): ${(error as Error).message}`);
  }
}
