import assert from 'node:assert/strict';
import { platform } from 'node:os';
import test from 'node:test';
import { findLab, labs } from '../src/labs/index.js';
import type { Lab, LabResult, Observation } from '../src/labs/lab.js';
import { runLab } from '../src/labs/runner.js';
import { hasPython3 } from './helpers/programs.js';

const linuxOnly = platform() === 'linux' ? false : 'the labs compare with Linux /proc/net/tcp';

/**
 * What each lab must observe, by observation id: the kernel's state ('none': no socket left)
 * or the fact the lab checks. These are the textbook's predictions, so a lab that quietly
 * changed its prediction would fail here.
 */
const EXPECTED: Record<string, Record<string, string>> = {
  'time-wait': { server: 'TIME_WAIT', client: 'none', 'time-wait-length': 'at most 60 s', 'server-log': 'TIME_WAIT' },
  'client-never-closes': {
    'client-exit': '0',
    server: 'TIME_WAIT',
    client: 'none',
    'exit-unread-bytes': '32',
    'exit-unread-server-sees': 'ECONNRESET',
    'exit-unread-server': 'none',
    'exit-unread-client': 'none',
  },
  'server-never-closes': {
    client: 'FIN_WAIT2',
    server: 'CLOSE_WAIT',
    'server-descriptor': 'an open descriptor',
    'client-descriptor': 'no descriptor (orphan)',
    'client-after-stop': 'TIME_WAIT',
    'server-after-stop': 'none',
  },
  'client-waits': { 'server-during-hold': 'FIN_WAIT2', 'client-during-hold': 'CLOSE_WAIT', 'server-after-hold': 'TIME_WAIT', 'client-after-hold': 'none' },
  'server-waits': { 'client-during-delay': 'FIN_WAIT2', 'server-during-delay': 'CLOSE_WAIT', 'client-after-delay': 'TIME_WAIT', 'server-after-delay': 'none' },
  'half-close': {
    'client-half-closed': 'FIN_WAIT2',
    'server-half-closed': 'CLOSE_WAIT',
    'client-holder': 'an open descriptor',
    'client-timer': 'no timer',
    'client-while-data': 'FIN_WAIT2',
    'server-while-data': 'CLOSE_WAIT',
    sorted: 'apple fig pear',
    'client-after': 'TIME_WAIT',
    'server-after': 'none',
  },
  rst: {
    poll: 'POLLIN POLLERR POLLHUP',
    'read-1': 'the time line, 25 bytes',
    'read-2': 'ECONNRESET',
    'read-3': '0 (end of file)',
    server: 'none',
    client: 'none',
    'so-error': 'ECONNRESET',
    'after-so-error': 'the time line, 25 bytes, then 0 (end of file)',
    'discard-window': 'zero-window probe',
    'discard-accounted': '1048576 bytes',
    'discard-read': 'all of its Recv-Q',
    'discard-lost': 'fewer than written',
    'discard-error': 'ECONNRESET',
    'discard-server': 'none',
    'discard-client': 'none',
  },
  'unread-data-rst': {
    unread: 'Recv-Q 34',
    'unread-client-sees': 'ECONNRESET',
    'abort-on-close': 'rose',
    'unread-server': 'none',
    'unread-client': 'none',
    read: 'Recv-Q 0',
    'read-client-sees': 'end of file (FIN)',
    'read-server': 'TIME_WAIT',
    'read-client': 'none',
  },
  // Linux's answers where the book leaves them open: EPIPE (not ECONNRESET) for the write after the reset.
  'server-killed': {
    killed: 'SIGKILL',
    'c-server': 'FIN_WAIT2',
    'c-server-holder': 'no descriptor (orphan)',
    'c-client': 'CLOSE_WAIT',
    'node-sees': 'end of file (FIN)',
    'node-server': 'TIME_WAIT',
    'node-client': 'none',
    'node-write': 'EPIPE',
    'c-write': 'accepted: 12 bytes',
    'c-reset': 'POLLERR POLLHUP',
    'c-read': '0 (end of file)',
    'c-write-again': 'EPIPE',
    'c-sigpipe': 'SIGPIPE',
    'c-client-after': 'none',
    'c-server-after': 'none',
  },
  'closed-port': {
    'tcp-table': 'no socket',
    'tcp-taken': 'EADDRINUSE',
    'tcp-node': 'ECONNREFUSED (from connect())',
    'tcp-rst': 'rose',
    'tcp-c': 'ECONNREFUSED',
    'udp-send': 'sent',
    'udp-connected': 'ECONNREFUSED (from recvmsg())',
    'udp-noports': 'rose',
    'udp-sendto': 'sent',
    'udp-icmp': 'rose',
    'udp-unconnected': 'its own marker: no error',
  },
  restart: {
    'time-wait-1': 'TIME_WAIT',
    'time-wait-2': 'TIME_WAIT',
    'time-wait-after-stop': 'TIME_WAIT',
    'port-holders': 'TIME_WAIT, TIME_WAIT',
    'with-reuseaddr': 'listening',
    listener: 'LISTEN',
    'time-wait-beside-listener': 'TIME_WAIT',
    'old-holder': 'TIME_WAIT',
    'reuseaddr-on-both': 'EADDRINUSE',
  },
  // Linux's rules (inet_csk_bind_conflict, udp_lib_lport_inuse); the lab narrates where 4.4BSD differs.
  'duplicate-bind': {
    first: 'LISTEN',
    'same-address': 'EADDRINUSE',
    'other-address': 'listening',
    'other-listener': 'LISTEN',
    'tcp-other-address-without': 'listening',
    'tcp-other-address-with': 'listening',
    'tcp-wildcard-after-without': 'bind: EADDRINUSE',
    'tcp-wildcard-after-with': 'bind: EADDRINUSE',
    'tcp-specific-after-without': 'bind: EADDRINUSE',
    'tcp-specific-after-with': 'bind: EADDRINUSE',
    'tcp-same-without': 'bind: EADDRINUSE',
    'tcp-same-with': 'bind: EADDRINUSE',
    'tcp-idle-same-without': 'bind: EADDRINUSE',
    'tcp-idle-same-with': "listening; the first's listen(): EADDRINUSE",
    'tcp-idle-wildcard-after-with': "listening; the first's listen(): EADDRINUSE",
    'tcp-idle-wildcard-after-second-only': 'bind: EADDRINUSE',
    'udp-other-address-without': 'bound',
    'udp-other-address-with': 'bound',
    'udp-wildcard-after-without': 'bind: EADDRINUSE',
    'udp-wildcard-after-with': 'bound',
    'udp-wildcard-after-second-only': 'bind: EADDRINUSE',
    'udp-specific-after-without': 'bind: EADDRINUSE',
    'udp-specific-after-with': 'bound',
    'udp-same-without': 'bind: EADDRINUSE',
    'udp-same-with': 'bound',
  },
  'socket-pair': { listener: 'LISTEN', 'server-1': 'ESTABLISHED', 'server-2': 'ESTABLISHED', difference: 'remote port' },
  'iterative-vs-concurrent': {
    'unaccepted-client': 'ESTABLISHED',
    'unaccepted-server': 'ESTABLISHED',
    'accept-queue': 'Recv-Q 1',
    'iterative-b-server': 'ESTABLISHED',
    'iterative-b-unread': 'Recv-Q 2',
    'iterative-b-served': 'after A closed',
    'concurrent-b-served': 'while A was connected',
  },
  // Linux: the accept queue holds backlog + 1; a SYN beyond it is dropped (tcp_conn_request).
  'backlog-full': {
    'queued-1': 'ESTABLISHED',
    'queued-2': 'ESTABLISHED',
    'accept-queue': 'Recv-Q 2',
    'dropped-client': 'SYN_SENT',
    'dropped-timer': 'retransmit',
    'dropped-server': 'none',
    'listen-overflows': 'rose',
    'accept-queue-full': 'Recv-Q 2',
    accepted: 'client 1 (the oldest)',
    'retried-client': 'ESTABLISHED',
    'accept-queue-after': 'Recv-Q 2',
  },
  'flow-control': {
    'server-timer': 'zero-window probe',
    queues: 'both hold bytes',
    'waits-for-drain': 'yes',
    'node-buffer': 'at most the high-water mark + one write',
    'writes-stopped': '0',
    'queues-unchanged': 'unchanged',
    'writes-resumed': 'more than 0',
  },
  nagle: { 'request-nagle': 'at least 20 ms', 'request-nodelay': 'under 20 ms', 'echo-nagle': 'under 20 ms' },
  'self-connect': {
    connect: 'connected',
    state: 'ESTABLISHED',
    rows: '1, local = remote',
    'reads-itself': '"hello, me\\n"',
    'sees-close': 'end of file (FIN)',
    'after-close': 'TIME_WAIT',
  },
  'idle-timeout': {
    'silent-closed': 'after ≥ 1000 ms',
    'silent-server': 'TIME_WAIT',
    'chatty-server': 'ESTABLISHED',
    rcvtimeo: 'what had come when the time was up',
  },
};

/** A step that needs python3 reports itself skipped when there is none, and checks nothing after. */
const skippedSteps = (result: LabResult): Observation[] =>
  result.observations.filter((o) => o.kind === 'report' && o.observed.startsWith('skipped'));

function observation(result: LabResult, id: string): Observation {
  const found = result.observations.find((o) => o.id === id);
  assert.ok(found, `${result.name}: no observation ${id}`);
  return found;
}

test('every lab has expectations here, and the registry has no duplicate names', () => {
  assert.deepEqual(labs.map((l) => l.name).sort(), Object.keys(EXPECTED).sort());
  assert.equal(new Set(labs.map((l) => l.name)).size, labs.length);
});

for (const lab of labs) {
  test(`lab ${lab.name}: the kernel agrees with the textbook`, { skip: linuxOnly }, async () => {
    const narration: string[] = [];
    const result = await runLab(lab, { write: (line) => narration.push(line) });
    const disagreed = result.observations.filter((o) => !o.agreed);
    assert.deepEqual(disagreed, [], narration.join('\n'));
    assert.equal(result.passed, true);
    const skipped = skippedSteps(result);
    for (const [id, expected] of Object.entries(EXPECTED[lab.name] ?? {})) {
      // Without python3 the steps that need it are skipped, and say so; everything else still runs.
      if (skipped.length > 0 && !result.observations.some((o) => o.id === id)) continue;
      assert.equal(observation(result, id).observed, expected, `${lab.name}: ${id}`);
    }
  });
}


test('restart: bind without SO_REUSEADDR fails with EADDRINUSE where python3 can make that socket, and is reported skipped where not', { skip: linuxOnly }, async () => {
  const result = await runLab(findLab('restart')!, { write: () => {} });
  const without = observation(result, 'without-reuseaddr');
  if (hasPython3) assert.deepEqual([without.kind, without.observed], ['fact', 'EADDRINUSE']);
  else assert.deepEqual([without.kind, without.observed.startsWith('skipped')], ['report', true]);
});

test('socket-pair: both client ports come from the kernel\'s ephemeral range', { skip: linuxOnly }, async () => {
  const result = await runLab(findLab('socket-pair')!, { write: () => {} });
  for (const id of ['ephemeral-1', 'ephemeral-2']) assert.match(observation(result, id).observed, /^inside \d+–\d+$/);
});

test('duplicate-bind: every row of the matrix is a checked prediction, none merely reported', { skip: linuxOnly }, async () => {
  const result = await runLab(findLab('duplicate-bind')!, { write: () => {} });
  const reports = result.observations.filter((o) => o.kind === 'report');
  assert.deepEqual(reports, skippedSteps(result));
});

test('server-never-closes: the orphaned FIN_WAIT_2 timer is within net.ipv4.tcp_fin_timeout', { skip: linuxOnly }, async () => {
  const result = await runLab(findLab('server-never-closes')!, { write: () => {} });
  const timer = observation(result, 'client-fin-timeout');
  assert.match(timer.observed, /^timer ≤ \d+ s$/);
  assert.equal(timer.observed, timer.predicted);
});

test('a lab whose prediction disagrees fails, and says which prediction', { skip: linuxOnly }, async () => {
  const wrong: Lab = { name: 'wrong', summary: 'a lab that predicts badly', concept: '', run: async (ctx) => void ctx.expectFact('guess', 'a guess', 'yes', 'no') };
  const narration: string[] = [];
  const result = await runLab(wrong, { write: (line) => narration.push(line) });
  assert.equal(result.passed, false);
  assert.deepEqual(result.observations.map((o) => [o.id, o.agreed]), [['guess', false]]);
  assert.match(narration.at(-1) ?? '', /guess/);
});
