/**
 * A lab run is a sequence of typed records: the lab started, a step, a note, an observation (a
 * prediction checked against the kernel), a quiz question and its answer, the packets, the
 * verdict, the quiz score. The lab's context and the runner only emit records; everything that
 * shows a run renders them: the narration on a terminal (`narrationLines` below), `--json` (the
 * records collected into one document), a dashboard (the same records, streamed). One story,
 * several renderings, the way the server's event stream has several observers.
 */
import type { StepJson } from '../capture/connection-tracker.js';
import { formatRemaining } from '../tcp-states/table.js';
import type { Observation } from './lab.js';

export interface LabStarted {
  type: 'lab';
  name: string;
  summary: string;
  concept: string;
}

export interface StepStarted {
  type: 'step';
  /** Counting from 1. */
  step: number;
  text: string;
}

/** A line of narration under the current step. */
export interface Note {
  type: 'note';
  step: number;
  text: string;
}

/** One prediction checked (or, kind `report`, one thing reported), as the lab's context recorded it. */
export interface ObservationRecord extends Observation {
  type: 'observation';
  /** `kernel`: read from the kernel's TCP table (/proc/net/tcp); `observed`: seen otherwise (a system call's result, a counter, the packets). */
  source: 'kernel' | 'observed';
  /** The answers a student may choose from, when the prediction can be a quiz question (quiz.ts). */
  choices?: string[];
}

/** A quiz question, asked before the observation it is about is shown. */
export interface QuestionRecord {
  type: 'question';
  /** The observation's id. */
  id: string;
  /** Counting from 1 in this run. */
  number: number;
  step: number;
  subject: string;
  kind: Observation['kind'];
  choices: string[];
}

export interface AnswerRecord {
  type: 'answer';
  id: string;
  number: number;
  kind: Observation['kind'];
  /** What the student typed (or the answers file held), or null when nothing was given. */
  given: string | null;
  /** The choice that matches it, or null: no answer, or one that is none of the choices. */
  answer: string | null;
  /** What the kernel (or the lab) observed: an answer is right when it matches this, not the textbook. */
  observed: string;
  correct: boolean;
}

/** One captured (or inferred) connection, for programs: its segments as `trace --json` writes them. */
export interface ConnectionJson {
  client: string;
  server: string;
  segments: number;
  steps: StepJson[];
}

/** The lab's packets: the ladders as drawn, and the connections as data. */
export interface PacketsRecord {
  type: 'packets';
  /** `captured` by tcpdump, `inferred` from the servers' events, or `none` when nothing could be drawn. */
  source: 'captured' | 'inferred' | 'none';
  lines: string[];
  connections: ConnectionJson[];
}

export interface VerdictRecord {
  type: 'verdict';
  /** True when every prediction agreed with what the kernel did. */
  passed: boolean;
  /** How many predictions were checked (reports are not). */
  checked: number;
  /** The ids of the predictions the kernel disagreed with. */
  disagreed: string[];
  /** The ids of the steps that could not run (a missing python3, no capture). */
  skipped: string[];
  text: string;
}

export interface ScoreRecord {
  type: 'score';
  asked: number;
  /** Answers that matched what was observed. */
  correct: number;
  /** Questions with no answer (an empty line, the end of the answers, a JSON object without the id). */
  unanswered: number;
  /** Answers that were none of the choices. */
  invalid: number;
  /** Answers given for questions this run did not ask: ids of a JSON object, or lines past the last question. */
  unused: string[];
  text: string;
}

/** The lab stopped before its verdict: a step got stuck, a helper failed, or it was interrupted. */
export interface ErrorRecord {
  type: 'error';
  code?: string;
  message: string;
}

export type LabRecord =
  | LabStarted
  | StepStarted
  | Note
  | ObservationRecord
  | QuestionRecord
  | AnswerRecord
  | PacketsRecord
  | VerdictRecord
  | ScoreRecord
  | ErrorRecord;

/** Where records go, one at a time, in order. */
export type RecordSink = (record: LabRecord) => void;

/** 'none' is a prediction that the kernel keeps no socket for the pair. */
export const describeState = (state: string): string => (state === 'none' ? 'no socket' : state);

/** A choice as a student reads it: `no socket`, not `none`. */
export const describeChoice = describeState;

const NOTE_INDENT = '   ';

/** The narration's lines for one record, as `lab-server lab` prints them on a terminal. */
export function narrationLines(record: LabRecord): string[] {
  switch (record.type) {
    case 'lab':
      return [`lab ${record.name}: ${record.summary}`, record.concept];
    case 'step':
      return ['', `${record.step}. ${record.text}`];
    case 'note':
      return [NOTE_INDENT + record.text];
    case 'observation':
      return [NOTE_INDENT + observationLine(record)];
    case 'question':
      return [
        `${NOTE_INDENT}? Q${record.number}. ${record.kind === 'tcp-state' ? 'Which TCP state will the kernel show for' : 'Predict'}: ${record.subject}`,
        `${NOTE_INDENT}    ${record.choices.map((choice, i) => `${i + 1}. ${describeChoice(choice)}`).join('   ')}`,
      ];
    case 'answer':
      return [NOTE_INDENT + answerLine(record)];
    case 'packets':
      return ['', ...record.lines];
    case 'verdict':
      return ['', record.text];
    case 'score':
      return [record.text];
    case 'error':
      // The CLI says it once, on stderr, with its exit status.
      return [];
  }
}

/** `✓ subject   textbook: X   kernel: Y`: the mark says whether the kernel agreed with the textbook. */
function observationLine(o: ObservationRecord): string {
  const mark = o.kind === 'report' ? '•' : o.agreed ? '✓' : '✗';
  const show = (value: string): string => (o.kind === 'tcp-state' ? describeState(value) : value);
  const remaining = o.remainingMs === undefined ? '' : ` (${formatRemaining(o.remainingMs)} left)`;
  const prediction = o.predicted === undefined ? '' : `textbook: ${show(o.predicted)}`;
  const outcome = o.kind === 'report' ? `this kernel: ${o.observed}` : `${o.source}: ${show(o.observed)}${remaining}`;
  const columns = [o.subject.padEnd(48), prediction.padEnd(24), outcome].filter((c) => c.trim() !== '');
  return `${mark} ${columns.join(' ')}`.trimEnd();
}

/** Right and wrong in words: ✓ and ✗ are the kernel's agreement with the textbook, not the student's. */
function answerLine(a: AnswerRecord): string {
  if (a.given === null) return '→ no answer';
  if (a.answer === null) return `→ you said ${JSON.stringify(a.given)}: none of the choices`;
  return `→ you said ${describeChoice(a.answer)}: ${a.correct ? 'right' : 'wrong'}`;
}

/**
 * `--json`: the whole run as one document. `records` is the story in order, the same records the
 * narration is drawn from; the other fields are the parts a grader looks up: the verdict, every
 * observation, the quiz (each question with the answer given and what was observed, and the
 * score), the packets, and the error that stopped the lab, if one did.
 */
export interface RunDocument {
  lab: string;
  /** True when the lab reached its verdict and every prediction agreed with the kernel. */
  passed: boolean;
  verdict: Omit<VerdictRecord, 'type'> | null;
  observations: Array<Omit<ObservationRecord, 'type'>>;
  quiz?: Omit<ScoreRecord, 'type'> & { questions: Array<Omit<QuestionRecord, 'type'> & Omit<AnswerRecord, 'type'>> };
  packets?: Omit<PacketsRecord, 'type' | 'lines'>;
  error?: Omit<ErrorRecord, 'type'>;
  records: LabRecord[];
}

export function runDocument(records: readonly LabRecord[]): RunDocument {
  const of = <T extends LabRecord['type']>(type: T): Array<Extract<LabRecord, { type: T }>> => records.filter((r): r is Extract<LabRecord, { type: T }> => r.type === type);
  const untyped = <R extends LabRecord>({ type: _type, ...rest }: R): Omit<R, 'type'> => rest;
  const verdict = of('verdict')[0];
  const score = of('score')[0];
  const packets = of('packets')[0];
  const error = of('error')[0];
  // The score comes after the last answer: with it, every question has its answer.
  const answers = of('answer');
  const questions = (): Array<Omit<QuestionRecord, 'type'> & Omit<AnswerRecord, 'type'>> =>
    of('question').map((question) => ({ ...untyped(question), ...untyped(answers.find((a) => a.number === question.number)!) }));
  return {
    lab: of('lab')[0]?.name ?? '',
    passed: verdict?.passed ?? false,
    verdict: verdict === undefined ? null : untyped(verdict),
    observations: of('observation').map(untyped),
    ...(score === undefined ? {} : { quiz: { ...untyped(score), questions: questions() } }),
    ...(packets === undefined ? {} : { packets: { source: packets.source, connections: packets.connections } }),
    ...(error === undefined ? {} : { error: untyped(error) }),
    records: [...records],
  };
}
