import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCloseMode, parsePort, portInRange, secondsOption } from '../src/cli/arguments.js';
import { ExitCode, LabError } from '../src/errors.js';

const isUsageError = (error: unknown): boolean => error instanceof LabError && error.exitCode === ExitCode.usage;

test('ports: decimal 0 to 65535', () => {
  for (const [text, port] of [['0', 0], ['13', 13], ['1313', 1313], ['65535', 65535], [5000, 5000]] as const) {
    assert.equal(parsePort(text), port);
  }
});

test('ports: everything else is a usage error, before any socket is made', () => {
  for (const text of ['abc', '-1', '65536', '0x51', ' 1313', '1313 ', '1e3', '13.0', '', '99999999']) {
    assert.throws(() => parsePort(text), isUsageError, JSON.stringify(text));
  }
});

test('durations are seconds, returned as milliseconds', () => {
  const parse = secondsOption('hold');
  assert.equal(parse('2'), 2000);
  assert.equal(parse('0.25'), 250);
  assert.equal(parse('0'), 0);
  for (const text of ['-1', 'abc', '', 'Infinity']) assert.throws(() => parse(text), isUsageError, text);
});

test('close modes: fin, rst, and --no-close', () => {
  assert.equal(parseCloseMode('fin'), 'fin');
  assert.equal(parseCloseMode('rst'), 'rst');
  assert.equal(parseCloseMode(false), 'never');
  assert.throws(() => parseCloseMode('linger'), isUsageError);
});

test('--base-port style ranges name the option and its own range', () => {
  const parse = portInRange('base-port', 1, 65498, 'so that every service gets a port');
  assert.equal(parse('10000'), 10000);
  for (const text of ['0', '-5', '65499', '0x10']) {
    assert.throws(() => parse(text), new RegExp(`^LabError: invalid --base-port "${text}": give a whole number from 1 to 65498`));
  }
});
