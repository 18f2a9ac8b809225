import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCloseMode, parsePort, parseTarget, portInRange, secondsOption } from '../src/cli/arguments.js';
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

test('client targets: host:port, [v6]:port, a port word, --port; bare IPv6 is a host', () => {
  const target = (host: string, portArgument?: string, portOption?: number) => parseTarget({ host, portArgument, portOption, defaultPort: 13 });
  assert.deepEqual(target('localhost'), { host: 'localhost', port: 13 });
  assert.deepEqual(target('localhost:5000'), { host: 'localhost', port: 5000 });
  assert.deepEqual(target('127.0.0.1:5000'), { host: '127.0.0.1', port: 5000 });
  assert.deepEqual(target('[::1]:5000'), { host: '::1', port: 5000 });
  assert.deepEqual(target('[::1]'), { host: '::1', port: 13 });
  assert.deepEqual(target('::1'), { host: '::1', port: 13 }, 'the colons of an IPv6 address are not a port');
  assert.deepEqual(target('fe80::1%eth0'), { host: 'fe80::1%eth0', port: 13 });
  assert.deepEqual(target('localhost', '5000'), { host: 'localhost', port: 5000 });
  assert.deepEqual(target('localhost', undefined, 7), { host: 'localhost', port: 7 });
  assert.deepEqual(target('localhost:5000', '5000', 5000), { host: 'localhost', port: 5000 }, 'the same port twice is fine');
});

test('client targets: bad or disagreeing ports are usage errors that say so', () => {
  const target = (host: string, portArgument?: string, portOption?: number) => () => parseTarget({ host, portArgument, portOption, defaultPort: 13 });
  assert.throws(target('localhost:5000', undefined, 7), (e: unknown) => isUsageError(e) && /two different ports: 5000 in "localhost:5000" and 7 with --port/.test((e as Error).message));
  assert.throws(target('localhost', '5000', 7), /two different ports: 5000 after the host and 7 with --port/);
  assert.throws(target('localhost:abc'), /invalid port "abc" in "localhost:abc"/);
  assert.throws(target('localhost:'), /invalid port "" in "localhost:"/);
  assert.throws(target('localhost', '0'), /invalid port "0": give the server's port, a whole number from 1 to 65535/);
  assert.throws(target('[::1'), /write an IPv6 address in brackets/);
  assert.throws(target(':5000'), /name a host/);
});

test('--base-port style ranges name the option and its own range', () => {
  const parse = portInRange('base-port', 1, 65498, 'so that every service gets a port');
  assert.equal(parse('10000'), 10000);
  for (const text of ['0', '-5', '65499', '0x10']) {
    assert.throws(() => parse(text), new RegExp(`^LabError: invalid --base-port "${text}": give a whole number from 1 to 65498`));
  }
});
