/**
 * Runs one lab: prints what it is about, runs its steps, stops everything it started, and
 * sums up whether the kernel agreed with the textbook.
 */
import { LabError } from '../errors.js';
import { readTcpSockets } from '../tcp-states/read.js';
import { LabContext } from './context.js';
import type { Lab, LabResult } from './lab.js';
import { LabPackets, type PacketOptions } from './packets.js';

export interface RunLabOptions {
  /** Where the narration goes, one line per call. */
  write: (line: string) => void;
  /** Capture the lab's packets and draw its ladders (captured, or inferred where no capture can run). */
  ladder?: PacketOptions & { pcapPath?: string };
  /** Aborted on Ctrl-C: the lab stops at once, and everything it started is stopped (its namespaces deleted) first. */
  interrupted?: AbortSignal;
}

export async function runLab(lab: Lab, { write, ladder, interrupted }: RunLabOptions): Promise<LabResult> {
  // Every lab compares with the kernel's table: fail now, with one clear line, where there is none.
  await readTcpSockets();
  // A lab that cannot run here (no root for its namespaces) runs no step: skipped, not passed.
  const missing = await lab.needs?.();
  if (missing !== undefined) return { name: lab.name, passed: false, skipped: missing, observations: [] };
  const packets = ladder === undefined || lab.noLadder !== undefined ? undefined : await LabPackets.start(ladder.pcapPath);
  write(`lab ${lab.name}: ${lab.summary}`);
  write(lab.concept);
  const ctx = new LabContext(write, packets);
  try {
    await untilInterrupted(lab.run(ctx), interrupted);
  } finally {
    try {
      await ctx.cleanup();
    } finally {
      // Stopped and drawn even when the lab failed: the packets may show why.
      if (packets !== undefined) await drawPackets(packets, ladder!, write);
      else if (ladder !== undefined && lab.noLadder !== undefined) noLadder(lab.noLadder, ladder, write);
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

/** Resolves with `run`, or rejects at once when `interrupted` is aborted (Ctrl-C), so that the cleanups run now. */
function untilInterrupted(run: Promise<void>, interrupted: AbortSignal | undefined): Promise<void> {
  if (interrupted === undefined) return run;
  return new Promise((resolve, reject) => {
    const stop = (): void => reject(new LabError('ERR_LAB_INTERRUPTED', 'interrupted (Ctrl-C): the lab stopped what it had started'));
    if (interrupted.aborted) return stop();
    interrupted.addEventListener('abort', stop, { once: true });
    run.then(resolve, reject).finally(() => interrupted.removeEventListener('abort', stop));
  });
}

/** Where a ladder was asked for, says why this lab has none (and that no --pcap file was written). */
function noLadder(why: string, { draw = true, pcapPath }: PacketOptions & { pcapPath?: string }, write: (line: string) => void): void {
  write('');
  if (draw) write(`No ladder: ${why}.`);
  if (pcapPath !== undefined) write(`${pcapPath} was not written: ${draw ? 'the capture on lo would hold none of its packets' : why}.`);
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
