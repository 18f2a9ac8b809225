/**
 * Runs one lab: says what it is about, runs its steps, stops everything it started, and sums
 * up whether the kernel agreed with the textbook. All of it goes out as records (records.ts):
 * `write` gets them as the narration's lines, `onRecord` as they are, for --json, the class
 * modes and anything else that shows a run.
 */
import type { Connection } from '../capture/connection-tracker.js';
import { LabError } from '../errors.js';
import type { EventStream } from '../framework/events.js';
import { readTcpSockets } from '../tcp-states/read.js';
import { LabContext } from './context.js';
import type { Lab, LabResult } from './lab.js';
import { LabPackets, type PacketOptions } from './packets.js';
import { narrationLines, type LabRecord, type PacketsRecord, type RecordSink, type VerdictRecord } from './records.js';

export interface RunLabOptions {
  /** Where the narration goes, one line per call. */
  write?: (line: string) => void;
  /** Where the run's records go, as they happen. */
  onRecord?: RecordSink;
  /** Capture the lab's packets and draw its ladders (captured, or inferred where no capture can run). */
  ladder?: PacketOptions & { pcapPath?: string };
  /** Aborting it stops the lab at once (Ctrl-C): its cleanups run, and runLab rejects with ERR_LAB_INTERRUPTED. */
  signal?: AbortSignal;
  /** Told of each server's event stream as the lab starts it (for --dashboard). */
  onServer?: (events: EventStream) => void;
  /** Told of each of the lab's connections the capture saw end (for --dashboard's ladders). */
  onCaptured?: (connection: Connection) => void;
}

export async function runLab(lab: Lab, { write, onRecord, ladder, signal, onServer, onCaptured }: RunLabOptions): Promise<LabResult> {
  const emit: RecordSink = (record) => {
    onRecord?.(record);
    if (write !== undefined) for (const line of narrationLines(record)) write(line);
  };
  // Every lab compares with the kernel's table: fail now, with one clear line, where there is none.
  await readTcpSockets();
  // A lab that cannot run here (no root for its namespaces) runs no step: skipped, not passed.
  const missing = await lab.needs?.();
  if (missing !== undefined) return { name: lab.name, passed: false, skipped: missing, observations: [] };
  const packets = ladder === undefined || lab.noLadder !== undefined ? undefined : await LabPackets.start(ladder.pcapPath);
  emit({ type: 'lab', name: lab.name, summary: lab.summary, concept: lab.concept });
  if (onCaptured !== undefined) packets?.onFinished(onCaptured);
  const ctx = new LabContext(emit, packets, onServer);
  let failure: unknown;
  try {
    await untilAborted(lab.run(ctx), signal);
  } catch (error) {
    failure = error;
  }
  try {
    await ctx.cleanup();
  } catch (error) {
    failure ??= error;
  }
  if (packets !== undefined) {
    // Stopped and drawn even when the lab failed: the packets may show why. Not when interrupted: the user wants out.
    const interrupted = failure instanceof LabError && failure.code === 'ERR_LAB_INTERRUPTED';
    await (interrupted ? packets.finish({ draw: false }) : drawPackets(packets, ladder!, emit)).catch((error: unknown) => (failure ??= error));
  } else if (ladder !== undefined && lab.noLadder !== undefined) {
    emit(noLadder(lab.noLadder, ladder));
  }
  if (failure !== undefined) {
    emit(failure instanceof LabError ? { type: 'error', code: failure.code, message: failure.message } : { type: 'error', message: (failure as Error).message });
    throw failure;
  }
  const verdict = verdictOf(ctx);
  emit(verdict);
  return { name: lab.name, passed: verdict.passed, observations: ctx.observations };
}

function verdictOf(ctx: LabContext): VerdictRecord {
  const checked = ctx.observations.filter((o) => o.kind !== 'report');
  const disagreed = checked.filter((o) => !o.agreed).map((o) => o.id);
  // A step that could not run (python3 missing) checked nothing: say so next to the verdict.
  const skipped = ctx.observations.filter((o) => o.kind === 'report' && o.observed.startsWith('skipped')).map((o) => o.id);
  const skippedNote = skipped.length === 0 ? '' : `; ${skipped.length} skipped, not checked: ${skipped.join(', ')}`;
  const text =
    disagreed.length === 0
      ? `passed: the kernel did what the textbook predicts (${checked.length} of ${checked.length} predictions${skippedNote}).`
      : `FAILED: ${disagreed.length} of ${checked.length} predictions disagreed with the kernel: ${disagreed.join(', ')}${skippedNote}.`;
  return { type: 'verdict', passed: disagreed.length === 0, checked: checked.length, disagreed, skipped, text };
}

/** What a lab stopped by Ctrl-C (or SIGTERM) fails with. */
export const interruption = (): LabError => new LabError('ERR_LAB_INTERRUPTED', 'interrupted: the lab stopped its servers and processes');

/** The lab's run, or ERR_LAB_INTERRUPTED as soon as `signal` aborts. */
function untilAborted(running: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal === undefined) return running;
  // Once interrupted, the lab fails as its servers are stopped under it: nobody waits for that.
  running.catch(() => undefined);
  return new Promise((resolve, reject) => {
    const interrupted = (): void => reject(signal.reason instanceof LabError ? signal.reason : interruption());
    if (signal.aborted) return interrupted();
    signal.addEventListener('abort', interrupted, { once: true });
    running.then(resolve, reject).finally(() => signal.removeEventListener('abort', interrupted));
  });
}

/** Where a ladder was asked for, says why this lab has none (and that no --pcap file was written). */
function noLadder(why: string, { draw = true, pcapPath }: PacketOptions & { pcapPath?: string }): PacketsRecord {
  const lines = [
    ...(draw ? [`No ladder: ${why}.`] : []),
    ...(pcapPath === undefined ? [] : [`${pcapPath} was not written: ${draw ? 'the capture on lo would hold none of its packets' : why}.`]),
  ];
  return { type: 'packets', source: 'none', lines, connections: [] };
}

/** The ladders, below the lab. Capture never breaks a lab: a bug in drawing is reported, not thrown. */
async function drawPackets(packets: LabPackets, options: PacketOptions, emit: (record: LabRecord) => void): Promise<void> {
  try {
    emit({ type: 'packets', ...(await packets.finish(options)) });
  } catch (error) {
    if (error instanceof LabError) throw error; // --pcap could not be written: the user asked for that file
    emit({ type: 'packets', source: 'none', lines: [`the ladder could not be drawn (a bug in lab-server, please report it): ${(error as Error).message}`], connections: [] });
  }
}
