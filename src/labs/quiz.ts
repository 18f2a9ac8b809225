/**
 * Quiz mode (`lab-server lab NAME --quiz`): before each prediction is shown, the student picks
 * what they think the kernel will do from a short list; then the kernel's answer is revealed, and
 * at the end the answers are scored. Every lab gets it without work of its own: the choices come
 * from the prediction itself (a TCP state, an errno, yes or no, ...: `choicesFor`), or from the
 * lab where it passes its own. A prediction with no choices is shown as usual, not asked.
 *
 * An answer is right when it matches what the kernel did, not what the textbook says. They agree
 * in a passing lab; where they do not, the kernel is the experiment, and the lab fails anyway.
 */
import { readFileSync, statSync } from 'node:fs';
import { LabError } from '../errors.js';
import type { Observation } from './lab.js';
import { describeChoice, type AnswerRecord, type LabRecord, type QuestionRecord, type ScoreRecord } from './records.js';

/** The TCP states in the order a connection goes through them; 'none': the kernel keeps no socket. */
const STATE_ORDER = ['LISTEN', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'CLOSE_WAIT', 'CLOSING', 'LAST_ACK', 'TIME_WAIT', 'none'];
/** The states every state question offers: where a connection rests while a program waits. */
const COMMON_STATES = ['ESTABLISHED', 'FIN_WAIT2', 'CLOSE_WAIT', 'TIME_WAIT', 'none'];
/**
 * A state outside the common ones comes with the states it is confused with, so that it is never
 * the one odd choice in the list: the opening states together, the brief closing states together.
 */
const STATE_FAMILIES = [
  ['LISTEN', 'SYN_SENT', 'SYN_RECV'],
  ['FIN_WAIT1', 'CLOSING', 'LAST_ACK'],
];

/**
 * The vocabularies a lab's facts are written in, each with the predictions it answers (`when`):
 * a prediction in one becomes a question with all of its choices. 'no socket' is in the holders'
 * list as a choice, not as a trigger: said of a kernel table it means something else.
 */
const FACT_CHOICES: ReadonlyArray<{ when: readonly string[]; choices: readonly string[] }> = [
  { when: ['yes', 'no'], choices: ['yes', 'no'] },
  { when: ['rose', 'unchanged'], choices: ['rose', 'unchanged'] },
  { when: ['the client', 'the server'], choices: ['the client', 'the server', 'nobody'] },
  { when: ['an open descriptor', 'no descriptor (orphan)'], choices: ['an open descriptor', 'no descriptor (orphan)', 'no socket'] },
  // The errors a socket program meets at the boundaries of a connection (Stevens UNP ch. 5).
  { when: ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EADDRINUSE'], choices: ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EADDRINUSE'] },
];

function stateChoices(predicted: string): string[] | undefined {
  if (!STATE_ORDER.includes(predicted)) return undefined;
  const family = STATE_FAMILIES.find((states) => states.includes(predicted)) ?? [];
  const offered = new Set([...COMMON_STATES, ...family]);
  return STATE_ORDER.filter((state) => offered.has(state));
}

/**
 * The choices of the question a prediction makes, or undefined when it makes none: a report (no
 * prediction), or a fact in no known vocabulary with no choices from its lab. `explicit`, a lab's
 * own list, must hold the prediction.
 */
export function choicesFor(kind: Observation['kind'], predicted: string | undefined, explicit?: readonly string[]): string[] | undefined {
  if (kind === 'report' || predicted === undefined) return undefined;
  if (explicit !== undefined) {
    if (!explicit.includes(predicted)) throw new Error(`the choices ${JSON.stringify(explicit)} do not include the prediction ${JSON.stringify(predicted)}`);
    return [...explicit];
  }
  if (kind === 'tcp-state') return stateChoices(predicted);
  // A fact that is a state (`TIME_WAIT` in the server's log) is asked like one; a fact's 'none' is not a state.
  const asState = predicted === 'none' ? undefined : stateChoices(predicted);
  return asState ?? FACT_CHOICES.find((vocabulary) => vocabulary.when.includes(predicted))?.choices.slice();
}

/** Case, spaces, `_` and `-` do not matter: `fin_wait_2`, `FIN-WAIT2` and `FIN_WAIT2` are one state. */
const normal = (text: string): string => text.toLowerCase().replace(/[\s_-]+/g, '');

/** The choice an answer names, by its number (1 is the first) or its text; null when it names none. */
export function matchChoice(given: string, question: Pick<QuestionRecord, 'choices'>): string | null {
  const text = given.trim();
  if (/^\d+$/.test(text)) return question.choices[Number(text) - 1] ?? null;
  const wanted = normal(text);
  return question.choices.find((choice) => normal(choice) === wanted || normal(describeChoice(choice)) === wanted) ?? null;
}

/** Where the student's answers come from: a person at a terminal, a pipe, or an answers file. */
export interface AnswerSource {
  /** The answer to `question` as given, or undefined for none. Asked in question order. */
  answer(question: QuestionRecord): Promise<string | undefined>;
  /** Answers held for questions this run did not ask, named for a person: `"clinet"`, `line 7`. */
  unused(): string[];
}

/** Lines typed or piped in, one at a time. */
export interface LineInput {
  /** The next line, without its newline; undefined once the input has ended. */
  next(): Promise<string | undefined>;
}

/**
 * Answers read from `input`, one a line, in question order; an empty line skips a question. With
 * `reprompt` (a person at a terminal), an answer that is none of the choices is asked again.
 */
export function answersFromLines(input: LineInput, reprompt?: (question: QuestionRecord, again: boolean) => void): AnswerSource {
  return {
    async answer(question) {
      for (let again = false; ; again = true) {
        reprompt?.(question, again);
        const line = await input.next();
        if (line === undefined || line.trim() === '') return undefined;
        if (reprompt === undefined || matchChoice(line, question) !== null) return line;
      }
    },
    unused: () => [],
  };
}

/** An answers file is small: a line per question. Anything bigger is not one. */
const ANSWERS_FILE_MAX_BYTES = 64 * 1024;

/**
 * `--answers FILE`: one answer a line, in the order the questions are asked (the choice's number or
 * its text; an empty line for none), or a JSON object of answers by observation id, which does not
 * depend on the order or on which questions a run asks (a capture adds some).
 */
export function readAnswersFile(path: string): AnswerSource {
  const problem = (what: string): LabError => new LabError('ERR_ANSWERS_FILE', `--answers ${path}: ${what}; give one answer a line, or a JSON object of answers by observation id`);
  let text: string;
  try {
    if (statSync(path).size > ANSWERS_FILE_MAX_BYTES) throw problem(`larger than ${ANSWERS_FILE_MAX_BYTES / 1024} KiB, not an answers file`);
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof LabError) throw error;
    throw problem(`cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  if (!text.trimStart().startsWith('{')) return answersFromFileLines(text);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw problem(`not valid JSON (${(error as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw problem('not a JSON object');
  const byId = new Map<string, string>();
  for (const [id, value] of Object.entries(parsed)) {
    if (typeof value !== 'string' && typeof value !== 'number') throw problem(`the answer for ${JSON.stringify(id)} is not a string or a number`);
    byId.set(id, String(value));
  }
  const asked = new Set<string>();
  return {
    answer: async (question) => {
      asked.add(question.id);
      return byId.get(question.id);
    },
    unused: () => [...byId.keys()].filter((id) => !asked.has(id)).map((id) => JSON.stringify(id)),
  };
}

function answersFromFileLines(text: string): AnswerSource {
  const lines = text.split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop(); // the newline that ends the last line
  let asked = 0;
  return {
    answer: async (question) => {
      asked = Math.max(asked, question.number);
      const line = lines[question.number - 1]?.trim();
      return line === '' ? undefined : line;
    },
    unused: () => lines.map((line, i) => ({ line, number: i + 1 })).filter(({ line, number }) => number > asked && line.trim() !== '').map(({ number }) => `line ${number}`),
  };
}

/**
 * The quiz, as a stage between the lab's records and whoever shows them: before each observation
 * that has choices, a question record, then (once `answers` has one) an answer record, then the
 * observation itself; after the last record, the score.
 */
export async function* quizzed(records: AsyncIterable<LabRecord>, answers: AnswerSource): AsyncGenerator<LabRecord> {
  const results: AnswerRecord[] = [];
  for await (const record of records) {
    if (record.type === 'observation' && record.choices !== undefined) {
      const question: QuestionRecord = { type: 'question', id: record.id, number: results.length + 1, step: record.step, subject: record.subject, kind: record.kind, choices: record.choices };
      yield question;
      const given = (await answers.answer(question)) ?? null;
      const answer = given === null ? null : matchChoice(given, question);
      const result: AnswerRecord = { type: 'answer', id: record.id, number: question.number, kind: record.kind, given, answer, observed: record.observed, correct: answer === record.observed };
      results.push(result);
      yield result;
    }
    yield record;
  }
  yield score(results, answers.unused());
}

function score(results: readonly AnswerRecord[], unused: string[]): ScoreRecord {
  const correct = results.filter((r) => r.correct).length;
  const unanswered = results.filter((r) => r.given === null).length;
  const invalid = results.filter((r) => r.given !== null && r.answer === null).length;
  const counts = [unanswered > 0 ? `${unanswered} unanswered` : '', invalid > 0 ? `${invalid} none of the choices` : ''].filter((part) => part !== '');
  const text =
    results.length === 0
      ? 'quiz: this run asked no questions'
      : `quiz: ${correct} of ${results.length} right${counts.length > 0 ? ` (${counts.join(', ')})` : ''}; an answer is right when it matches what the kernel did` +
        (unused.length > 0 ? `; answers for questions not asked: ${unused.join(', ')}` : '');
  return { type: 'score', asked: results.length, correct, unanswered, invalid, unused, text };
}
