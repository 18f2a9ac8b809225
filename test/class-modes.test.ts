/**
 * The class modes' parts, without a lab: the quiz's choices and answers, the step pacing, the
 * JSON document, and a lab interrupted mid-run.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir, platform } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { setImmediate as turn } from 'node:timers/promises';
import { LabError } from '../src/errors.js';
import { paced, Queue } from '../src/labs/class-modes.js';
import type { Lab } from '../src/labs/lab.js';
import { choicesFor, matchChoice, quizzed, readAnswersFile, type AnswerSource } from '../src/labs/quiz.js';
import { runDocument, type LabRecord, type ObservationRecord } from '../src/labs/records.js';
import { interruption, runLab } from '../src/labs/runner.js';

const linuxOnly = platform() === 'linux' ? false : 'a lab reads Linux /proc/net/tcp first';

test('state questions offer the common resting states, and an opening or brief closing state with its kin', () => {
  assert.deepEqual(choicesFor('tcp-state', 'TIME_WAIT'), ['ESTABLISHED', 'FIN_WAIT2', 'CLOSE_WAIT', 'TIME_WAIT', 'none']);
  assert.deepEqual(choicesFor('tcp-state', 'none'), choicesFor('tcp-state', 'ESTABLISHED'));
  assert.deepEqual(choicesFor('tcp-state', 'LISTEN'), ['LISTEN', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT2', 'CLOSE_WAIT', 'TIME_WAIT', 'none']);
  assert.deepEqual(choicesFor('tcp-state', 'LAST_ACK'), ['ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'CLOSE_WAIT', 'CLOSING', 'LAST_ACK', 'TIME_WAIT', 'none']);
});

test("a fact is a question when its prediction is in a known vocabulary or its lab gives choices; otherwise, and for a report, it is not", () => {
  assert.deepEqual(choicesFor('fact', 'ECONNRESET'), ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EADDRINUSE']);
  assert.deepEqual(choicesFor('fact', 'yes'), ['yes', 'no']);
  assert.deepEqual(choicesFor('fact', 'the server'), ['the client', 'the server', 'nobody']);
  assert.deepEqual(choicesFor('fact', 'no descriptor (orphan)'), ['an open descriptor', 'no descriptor (orphan)', 'no socket']);
  assert.deepEqual(choicesFor('fact', 'TIME_WAIT'), choicesFor('tcp-state', 'TIME_WAIT'));
  assert.equal(choicesFor('fact', 'no socket'), undefined, "a table's 'no socket' is not a holder question");
  assert.equal(choicesFor('fact', 'Recv-Q 2'), undefined);
  assert.equal(choicesFor('report', undefined), undefined);
  assert.deepEqual(choicesFor('fact', 'Recv-Q 2', ['Recv-Q 0', 'Recv-Q 2']), ['Recv-Q 0', 'Recv-Q 2']);
  assert.throws(() => choicesFor('fact', 'Recv-Q 2', ['Recv-Q 0', 'Recv-Q 1']), /do not include the prediction/);
});

test('an answer names a choice by its number or its text, in any case, with _ - or spaces', () => {
  const question = { choices: choicesFor('tcp-state', 'TIME_WAIT')! };
  for (const given of ['4', ' 4 ', 'TIME_WAIT', 'time_wait', 'Time-Wait', 'time wait']) assert.equal(matchChoice(given, question), 'TIME_WAIT', given);
  assert.equal(matchChoice('FIN_WAIT_2', question), 'FIN_WAIT2');
  assert.equal(matchChoice('no socket', question), 'none');
  assert.equal(matchChoice('none', question), 'none');
  for (const given of ['0', '6', 'LISTEN', 'TIME']) assert.equal(matchChoice(given, question), null, given);
});

const observation = (id: string, predicted: string, observed: string, step = 1): ObservationRecord => ({
  type: 'observation',
  id,
  step,
  subject: `server ${id}`,
  kind: 'tcp-state',
  predicted,
  observed,
  agreed: predicted === observed,
  source: 'kernel',
  choices: choicesFor('tcp-state', predicted)!,
});

async function* from(records: LabRecord[]): AsyncGenerator<LabRecord> {
  yield* records;
}

async function collect(records: AsyncIterable<LabRecord>): Promise<LabRecord[]> {
  const all: LabRecord[] = [];
  for await (const record of records) all.push(record);
  return all;
}

const answering = (answers: Array<string | undefined>): AnswerSource => ({ answer: async ({ number }) => answers[number - 1], unused: () => [] });

test('the quiz asks before each observation with choices, scores against what was observed, and scores once at the end', async () => {
  const records: LabRecord[] = [
    { type: 'step', step: 1, text: 'look' },
    observation('a', 'TIME_WAIT', 'TIME_WAIT'),
    // The kernel disagreed with the textbook: the answer that matches the kernel is the right one.
    observation('b', 'TIME_WAIT', 'none'),
    observation('c', 'CLOSE_WAIT', 'CLOSE_WAIT'),
    observation('d', 'FIN_WAIT2', 'FIN_WAIT2'),
    { type: 'observation', id: 'e', step: 1, subject: 'a report', kind: 'report', observed: 'x', agreed: true, source: 'observed' },
    { type: 'verdict', passed: false, checked: 4, disagreed: ['b'], skipped: [], text: 'FAILED' },
  ];
  const out = await collect(quizzed(from(records), answering(['time_wait', 'no socket', undefined, 'LISTEN'])));
  assert.deepEqual(
    out.map((r) => (r.type === 'question' || r.type === 'answer' || r.type === 'observation' ? `${r.type} ${r.id}` : r.type)),
    ['step', 'question a', 'answer a', 'observation a', 'question b', 'answer b', 'observation b', 'question c', 'answer c', 'observation c', 'question d', 'answer d', 'observation d', 'observation e', 'verdict', 'score'],
  );
  const answers = out.filter((r) => r.type === 'answer');
  assert.deepEqual(answers.map((a) => [a.given, a.answer, a.correct]), [
    ['time_wait', 'TIME_WAIT', true],
    ['no socket', 'none', true],
    [null, null, false],
    ['LISTEN', null, false],
  ]);
  const score = out.at(-1);
  assert.deepEqual(score?.type === 'score' && [score.asked, score.correct, score.unanswered, score.invalid], [4, 2, 1, 1]);
  assert.match(score?.type === 'score' ? score.text : '', /^quiz: 2 of 4 right \(1 unanswered, 1 none of the choices\)/);
});

test('--step holds each step back until a line comes, and stops pausing once the input has ended', async () => {
  const input = new Queue<string>();
  const prompts: number[] = [];
  const stepped = paced(from([{ type: 'step', step: 1, text: 'one' }, { type: 'note', step: 1, text: 'a note' }, { type: 'step', step: 2, text: 'two' }, { type: 'step', step: 3, text: 'three' }]), input, (n) => prompts.push(n));
  const shown: LabRecord[] = [];
  const consuming = (async () => {
    for await (const record of stepped) shown.push(record);
  })();
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 10; i += 1) await turn();
  };
  await settle();
  assert.deepEqual([shown.length, prompts], [0, [1]], 'step 1 waits for its line');
  input.push('');
  await settle();
  assert.deepEqual([shown.map((r) => r.type), prompts], [['step', 'note'], [1, 2]], 'step 2 waits for its line');
  input.end();
  await consuming;
  assert.deepEqual([shown.length, prompts], [4, [1, 2]], 'after the end of the input, no more pauses');
});

test('an answers file: one answer a line, an empty line for none, answers past the last question reported unused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'answers-'));
  const file = join(dir, 'a.txt');
  writeFileSync(file, '4\n\nno socket\r\nTIME_WAIT\n');
  const source = readAnswersFile(file);
  const ask = (number: number): Promise<string | undefined> => source.answer({ type: 'question', id: `q${number}`, number, step: 1, subject: '', kind: 'tcp-state', choices: [] });
  assert.deepEqual([await ask(1), await ask(2), await ask(3)], ['4', undefined, 'no socket']);
  assert.deepEqual(source.unused(), ['line 4']);
});

test('an answers file: a JSON object by observation id, whatever the order; ids never asked reported unused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'answers-'));
  const file = join(dir, 'a.json');
  writeFileSync(file, JSON.stringify({ client: 'no socket', server: 4, sever: 'TIME_WAIT' }));
  const source = readAnswersFile(file);
  const ask = (id: string): Promise<string | undefined> => source.answer({ type: 'question', id, number: 1, step: 1, subject: '', kind: 'tcp-state', choices: [] });
  assert.deepEqual([await ask('server'), await ask('client'), await ask('server-log')], ['4', 'no socket', undefined]);
  assert.deepEqual(source.unused(), ['"sever"']);
});

test('an answers file that cannot be one: ERR_ANSWERS_FILE, saying what is wrong', () => {
  const dir = mkdtempSync(join(tmpdir(), 'answers-'));
  const write = (name: string, text: string): string => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const cases: Array<[string, RegExp]> = [
    [join(dir, 'missing.txt'), /cannot be read \(ENOENT\)/],
    [dir, /cannot be read \(EISDIR\)/],
    [write('broken.json', '{"server": '), /not valid JSON/],
    [write('nested.json', '{"server": ["TIME_WAIT"]}'), /the answer for "server" is not a string or a number/],
    [write('big.txt', 'x\n'.repeat(40_000)), /larger than 64 KiB/],
  ];
  for (const [path, message] of cases) {
    assert.throws(() => readAnswersFile(path), (error: unknown) => error instanceof LabError && error.code === 'ERR_ANSWERS_FILE' && message.test(error.message), path);
  }
});

test('the JSON document: the verdict, the observations, the quiz with each answer, and the error that stopped a lab', () => {
  const records: LabRecord[] = [
    { type: 'lab', name: 'demo', summary: 's', concept: 'c' },
    { type: 'step', step: 1, text: 'look' },
    { type: 'question', id: 'a', number: 1, step: 1, subject: 'server a', kind: 'tcp-state', choices: ['TIME_WAIT', 'none'] },
    { type: 'answer', id: 'a', number: 1, kind: 'tcp-state', given: '1', answer: 'TIME_WAIT', observed: 'TIME_WAIT', correct: true },
    observation('a', 'TIME_WAIT', 'TIME_WAIT'),
    { type: 'verdict', passed: true, checked: 1, disagreed: [], skipped: [], text: 'passed' },
    { type: 'score', asked: 1, correct: 1, unanswered: 0, invalid: 0, unused: [], text: 'quiz: 1 of 1 right' },
  ];
  const document = runDocument(records);
  assert.equal(document.lab, 'demo');
  assert.equal(document.passed, true);
  assert.deepEqual(document.observations.map((o) => [o.id, o.observed]), [['a', 'TIME_WAIT']]);
  assert.deepEqual(document.quiz?.questions.map((q) => [q.id, q.subject, q.given, q.correct]), [['a', 'server a', '1', true]]);
  assert.equal(document.records.length, records.length);
  const stuck = runDocument([records[0]!, { type: 'error', code: 'ERR_LAB_STUCK', message: 'step 1: gave up' }]);
  assert.deepEqual([stuck.passed, stuck.verdict, stuck.error?.code, stuck.quiz], [false, null, 'ERR_LAB_STUCK', undefined]);
});

test('a lab interrupted mid-step runs its cleanups, and fails with ERR_LAB_INTERRUPTED after an error record', { skip: linuxOnly }, async () => {
  const stop = new AbortController();
  let cleanedUp = false;
  const hanging: Lab = {
    name: 'hanging',
    summary: 'waits forever',
    concept: '',
    run: async (ctx) => {
      ctx.defer(() => (cleanedUp = true));
      ctx.step('wait');
      stop.abort(interruption());
      await new Promise(() => {});
    },
  };
  const records: LabRecord[] = [];
  await assert.rejects(runLab(hanging, { onRecord: (r) => records.push(r), signal: stop.signal }), (error: unknown) => error instanceof LabError && error.code === 'ERR_LAB_INTERRUPTED');
  assert.equal(cleanedUp, true);
  assert.deepEqual(records.map((r) => r.type), ['lab', 'step', 'error']);
});
