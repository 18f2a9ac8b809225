/**
 * `lab-server lab NAME --quiz / --answers / --step / --json`, spawned as a student or a grader
 * would run them, on the time-wait lab (a few seconds, and the kernel's answer never varies).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { platform, tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import type { RunDocument } from '../src/labs/records.js';
import { readTcpSockets } from '../src/tcp-states/read.js';
import { assertOneLineError, LAB_SERVER, run, start, type StartedProcess } from './helpers/cli.js';
import { hasPython3 } from './helpers/programs.js';

const linuxOnly = platform() === 'linux' ? false : 'the labs compare with Linux /proc/net/tcp';
/** python3's pty module runs the program on a pseudo-terminal, and exits with its status. */
const ON_A_TERMINAL = ['python3', '-c', 'import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))'];
const noPty = hasPython3 ? false : 'python3 is not installed: no pseudo-terminal to test --step on';

/** Resolves when no stdout line (so far) matches `pattern`; fails when one does. */
const notShownYet = (lab: StartedProcess, pattern: RegExp): Promise<void> => assert.rejects(lab.stdoutLine(pattern, 0), /no stdout line/);

const answersFile = (name: string, text: string): string => {
  const path = join(mkdtempSync(join(tmpdir(), 'lab-answers-')), name);
  writeFileSync(path, text);
  return path;
};

/** time-wait --no-ladder --json with these extra arguments: its document, after checking stdout held nothing else. */
async function timeWaitJson(args: string[], input?: string): Promise<RunDocument> {
  const { code, stdout, stderr } = await run(LAB_SERVER, ['lab', 'time-wait', '--no-ladder', '--json', ...args], { input });
  assert.equal(code, 0, stderr);
  assert.equal(stderr, '', 'no narration when nobody has to answer at a terminal');
  return JSON.parse(stdout) as RunDocument;
}

/** The answers time-wait's questions have, without a capture: the kernel's, as the lab states them. */
const RIGHT = { server: 'TIME_WAIT', client: 'no socket', 'time-wait-length': 'at most 60 s', 'server-log': 'TIME_WAIT' };

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
  const file = answersFile('answers.json', JSON.stringify({ server: RIGHT.server, client: 'FIN_WAIT2', 'time-wait-length': 2, sevrer: 'TIME_WAIT' }));
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

test('lab time-wait --json: one document on stdout, with the verdict, every observation, and the packets as data', { skip: linuxOnly }, async () => {
  const { code, stdout, stderr } = await run(LAB_SERVER, ['lab', 'time-wait', '--json']);
  assert.equal(code, 0, stderr);
  const document = JSON.parse(stdout) as RunDocument;
  assert.equal(document.lab, 'time-wait');
  assert.deepEqual([document.passed, document.verdict?.passed, document.verdict?.disagreed], [true, true, []]);
  const server = document.observations.find((o) => o.id === 'server');
  assert.deepEqual([server?.kind, server?.predicted, server?.observed, server?.source], ['tcp-state', 'TIME_WAIT', 'TIME_WAIT', 'kernel']);
  assert.ok((server?.remainingMs ?? 0) > 0);
  assert.equal(document.quiz, undefined, 'no quiz without --quiz');
  assert.deepEqual(document.records.map((r) => r.type).filter((type) => type !== 'note' && type !== 'observation' && type !== 'step'), ['lab', 'packets', 'verdict']);
  const packets = document.packets!;
  assert.ok(['captured', 'inferred'].includes(packets.source), packets.source);
  const [connection] = packets.connections;
  assert.ok(connection, 'the daytime connection, captured or inferred');
  assert.deepEqual(connection.steps[0]?.flags, ['SYN']);
  assert.ok(connection.steps.some((step) => step.flags.includes('FIN')));
});

test('lab time-wait --step, stdin a pipe: each step waits for a line; at the end of the input the rest follows', { skip: linuxOnly }, async () => {
  const lab = start(LAB_SERVER, ['lab', 'time-wait', '--no-ladder', '--step']);
  await lab.stdoutLine(/^Textbook/);
  lab.child.stdin!.write('\n');
  await lab.stdoutLine(/^1\. Start a daytime server/);
  lab.child.stdin!.write('\n');
  await lab.stdoutLine(/^ {3}the client read: /);
  // The lab itself has finished by now, or soon will: its step 3 waits for a line that has not come.
  await notShownYet(lab, /^3\. /);
  lab.child.stdin!.end();
  const { code, stdout, stderr } = await lab.finished;
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^3\. Ask the kernel/m);
  assert.match(stdout, /^passed: /m);
  assert.doesNotMatch(stdout, /press Enter/, 'no prompts into a pipe');
});

test('lab time-wait --step on a terminal (a pseudo-terminal): a prompt, and the step only after Enter', { skip: linuxOnly || noPty }, async () => {
  const lab = start(LAB_SERVER, ['lab', 'time-wait', '--no-ladder', '--step'], { prefix: ON_A_TERMINAL });
  for (let step = 1; step <= 4; step += 1) {
    await lab.stdoutLine(new RegExp(`-- press Enter for step ${step} --`));
    await notShownYet(lab, new RegExp(`^${step}\\. `));
    lab.child.stdin!.write('\r'); // Enter, as a terminal sends it
    await lab.stdoutLine(new RegExp(`^${step}\\. `));
  }
  const { code, stdout } = await lab.finished;
  assert.equal(code, 0, stdout);
  assert.match(stdout, /passed: the kernel did what the textbook predicts/);
});

test('lab --step: Ctrl-C during a pause stops the lab and exits 130 with one line', { skip: linuxOnly }, async () => {
  const lab = start(LAB_SERVER, ['lab', 'time-wait', '--no-ladder', '--step']);
  await lab.stdoutLine(/^Textbook/);
  lab.child.stdin!.write('\n');
  const listening = await lab.stdoutLine(/daytime server listening on 127\.0\.0\.1:\d+/);
  const port = Number(/:(\d+)$/.exec(listening)![1]);
  lab.child.kill('SIGINT');
  const result = await lab.finished;
  assertOneLineError(result, 130, /^lab-server: interrupted: the lab stopped its servers and processes$/);
  const listeners = (await readTcpSockets()).filter((entry) => entry.state === 'LISTEN' && entry.local.port === port);
  assert.deepEqual(listeners, [], "the lab's server is gone");
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
