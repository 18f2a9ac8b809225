/**
 * `lab-server lab NAME --step / --json`, spawned as a teacher or a program would run them, on the
 * time-wait lab. --quiz and --answers: lab-quiz-cli.test.ts.
 */
import assert from 'node:assert/strict';
import { platform } from 'node:os';
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
