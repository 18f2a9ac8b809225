/**
 * `lab-server lab NAME --quiz / --answers`, spawned as a student or a grader would run them, on
 * the time-wait lab (a few seconds, and the kernel's answer never varies). --step and --json:
 * lab-step-cli.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { platform, tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import type { RunDocument } from '../src/labs/records.js';
import { assertOneLineError, LAB_SERVER, run } from './helpers/cli.js';

const linuxOnly = platform() === 'linux' ? false : 'the labs compare with Linux /proc/net/tcp';

const answersFile = (name: string, text: string): string => {
  const path = join(mkdtempSync(join(tmpdir(), 'lab-answers-')), name);
  writeFileSync(path, text);
  return path;
};

/** time-wait --no-ladder --json with these extra arguments: its document, after checking stdout held nothing else. */
async function timeWaitJson(args: string[]): Promise<RunDocument> {
  const { code, stdout, stderr } = await run(LAB_SERVER, ['lab', 'time-wait', '--no-ladder', '--json', ...args]);
  assert.equal(code, 0, stderr);
  assert.equal(stderr, '', 'no narration when nobody has to answer at a terminal');
  return JSON.parse(stdout) as RunDocument;
}

test('lab time-wait --quiz --answers FILE: right answers, one a line, score all right; the exit status is the kernel\'s', { skip: linuxOnly }, async () => {
  const document = await timeWaitJson(['--quiz', '--answers', answersFile('right.txt', 'TIME_WAIT\n5\nat most 60 s\ntime_wait\n')]);
  assert.equal(document.passed, true);
  const quiz = document.quiz!;
  assert.deepEqual(quiz.questions.map((q) => q.id).slice(0, 3), ['server', 'client', 'time-wait-length']);
  assert.deepEqual([quiz.correct, quiz.unanswered, quiz.invalid], [quiz.asked, 0, 0], JSON.stringify(quiz.questions));
  assert.ok(quiz.asked >= 3);
});

test('lab time-wait --quiz --answers FILE: wrong answers score none right, and the lab still passes (exit 0)', { skip: linuxOnly }, async () => {
  const document = await timeWaitJson(['--quiz', '--answers', answersFile('wrong.txt', 'ESTABLISHED\n1\n3\nCLOSE_WAIT\n')]);
  assert.equal(document.passed, true);
  assert.deepEqual([document.quiz!.correct, document.quiz!.unanswered], [0, 0]);
  assert.deepEqual(document.quiz!.questions.slice(0, 2).map((q) => [q.answer, q.observed, q.correct]), [
    ['ESTABLISHED', 'TIME_WAIT', false],
    ['ESTABLISHED', 'none', false],
  ]);
});

test('lab time-wait --quiz --answers FILE.json: answers by observation id; missing ones unanswered, unknown ids reported', { skip: linuxOnly }, async () => {
  const file = answersFile('answers.json', JSON.stringify({ server: 'TIME_WAIT', client: 'FIN_WAIT2', 'time-wait-length': 2, sevrer: 'TIME_WAIT' }));
  const document = await timeWaitJson(['--quiz', '--answers', file]);
  const byId = Object.fromEntries(document.quiz!.questions.map((q) => [q.id, q.correct]));
  assert.deepEqual([byId.server, byId.client, byId['time-wait-length']], [true, false, true]);
  assert.equal(document.quiz!.correct, 2);
  assert.equal(document.quiz!.unanswered, document.quiz!.asked - 3);
  assert.deepEqual(document.quiz!.unused, ['"sevrer"']);
});

test('lab time-wait --quiz with answers piped on stdin: the narration asks, then shows the answer, then the kernel\'s, then the score', { skip: linuxOnly }, async () => {
  const { code, stdout, stderr } = await run(LAB_SERVER, ['lab', 'time-wait', '--no-ladder', '--quiz'], { input: '4\nTIME_WAIT\n' });
  assert.equal(code, 0, stderr);
  const lines = stdout.split('\n');
  const asked = lines.findIndex((line) => /^ {3}\? Q1\. Which TCP state will the kernel show for: server /.test(line));
  assert.ok(asked > 0, stdout);
  // The question and its choices, the answer, and only then the textbook and the kernel.
  assert.match(lines[asked + 1]!, /1\. ESTABLISHED {3}2\. FIN_WAIT2 {3}3\. CLOSE_WAIT {3}4\. TIME_WAIT {3}5\. no socket/);
  assert.equal(lines[asked + 2], '   → you said TIME_WAIT: right');
  assert.match(lines[asked + 3]!, /^ {3}✓ server .*textbook: TIME_WAIT .*kernel: TIME_WAIT/);
  assert.equal(lines.slice(0, asked).some((line) => line.includes('textbook:')), false, 'nothing revealed before the first answer');
  assert.match(stdout, /→ you said TIME_WAIT: wrong\n {3}✓ client .*kernel: no socket/);
  // The input ended after two answers: the rest are unanswered, not waited for.
  assert.match(lines.at(-2)!, /^quiz: 1 of \d right \(\d unanswered\); an answer is right when it matches what the kernel did$/);
});

test('lab --answers FILE that does not exist: one line, exit 64, before the lab starts', async () => {
  const result = await run(LAB_SERVER, ['lab', 'time-wait', '--quiz', '--answers', '/nonexistent/answers.txt']);
  assertOneLineError(result, 64, /^lab-server: --answers \/nonexistent\/answers\.txt: cannot be read \(ENOENT\); give one answer a line, or a JSON object of answers by observation id$/);
  assert.equal(result.stdout, '');
});

test('lab --answers FILE holding broken JSON: one line, exit 64', async () => {
  const result = await run(LAB_SERVER, ['lab', 'time-wait', '--quiz', '--answers', answersFile('broken.json', '{"server": TIME_WAIT}')]);
  assertOneLineError(result, 64, /--answers .*broken\.json: not valid JSON/);
});

test('lab --answers without --quiz: one line, exit 64', async () => {
  const result = await run(LAB_SERVER, ['lab', 'time-wait', '--answers', answersFile('a.txt', '4\n')]);
  assertOneLineError(result, 64, /^lab-server: --answers goes with --quiz/);
});
