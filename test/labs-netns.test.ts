/**
 * The labs that make network namespaces (src/labs/namespaces.ts): as root they must run and agree
 * with the textbook; as anyone else they are skipped, never passed. In a file of their own, since each
 * takes seconds (the kernel's timers, lowered) and a test file has a time budget.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { platform } from 'node:os';
import test from 'node:test';
import { labs } from '../src/labs/index.js';
import { assertOneLineError, LAB_SERVER, run, start } from './helpers/cli.js';
import { expectLabAgrees, isRoot } from './helpers/labs.js';
import { runs } from './helpers/programs.js';

const linuxOnly = platform() === 'linux' ? false : 'network namespaces are Linux only';

/** What each lab must observe, by observation id, as in labs.test.ts. */
const EXPECTED: Record<string, Record<string, string>> = {
  'host-crash': {
    'client-connected': 'ESTABLISHED',
    'server-connected': 'ESTABLISHED',
    'client-unaware': 'ESTABLISHED',
    'client-retransmitting': 'retransmit timer, retransmitting',
    'client-error': 'ETIMEDOUT',
    retransmissions: 'rose',
    'gave-up-after': '1.4 s or more',
    'client-after': 'none',
    'server-after': 'ESTABLISHED',
  },
  'host-reboot': {
    'client-connected': 'ESTABLISHED',
    'server-connected': 'ESTABLISHED',
    'server-rebooted': 'none',
    'client-unaware': 'ESTABLISHED',
    'client-error': 'ECONNRESET',
    'server-reset': 'rose',
    'client-after': 'none',
  },
  keepalive: {
    'keepalive-timer': 'keepalive timer',
    'silent-timer': 'no timer',
    'keepalive-error': 'ETIMEDOUT',
    'keepalive-probes': '3',
    'keepalive-after': 'none',
    'silent-after': 'ESTABLISHED',
  },
  'fin-wait-2-timeout': {
    'held-state': 'FIN_WAIT2',
    'orphan-state': 'FIN_WAIT2',
    'held-server': 'CLOSE_WAIT',
    'held-holder': 'an open descriptor',
    'orphan-holder': 'no descriptor (orphan)',
    'held-timer': 'no timer',
    'orphan-timer': 'timer ≤ 2 s',
    'orphan-dropped': 'none',
    'held-after': 'FIN_WAIT2',
    'held-timer-after': 'no timer',
  },
  'ephemeral-ports': {
    'ports-in-range': 'inside 40000–40003',
    'time-wait': '4',
    'same-destination': 'EADDRNOTAVAIL',
    'other-destination': 'connected',
    reuse: 'connected, on a port in TIME_WAIT',
  },
};

const namespaceLabs = labs.filter((lab) => lab.needs !== undefined);

test('every lab that needs root has expectations here', () => {
  assert.deepEqual(namespaceLabs.map((l) => l.name).sort(), Object.keys(EXPECTED).sort());
});

for (const lab of namespaceLabs) {
  test(`lab ${lab.name}: the kernel agrees with the textbook (skipped without root)`, { skip: linuxOnly }, (t) => expectLabAgrees(t, lab, EXPECTED[lab.name]!));
}

/** As root, the test drops to nobody (uid 65534) with setpriv; as anyone else, it runs as it is. */
const asNobody = isRoot ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
const cannotDropRoot = (): string | false => {
  if (!isRoot) return false;
  if (!runs('setpriv', '--version')) return 'setpriv (util-linux) is not installed';
  // The checkout must be readable by nobody, as a user's installed copy would be.
  return runs(asNobody[0]!, ...asNobody.slice(1), process.execPath, '-e', `require('node:fs').accessSync(${JSON.stringify(LAB_SERVER)})`) ? false : `user 65534 cannot read ${LAB_SERVER}`;
};
const noSetpriv = cannotDropRoot();

test('lab-server lab host-crash without root: one line saying what it needs, exit 77 (skipped), no step run', { skip: linuxOnly || noSetpriv }, async () => {
  const result = await run(LAB_SERVER, ['lab', 'host-crash'], { prefix: asNobody });
  assertOneLineError(result, 77, /^lab-server: lab host-crash needs root to create network namespaces \(CAP_NET_ADMIN\) and iproute2's ip: .*run it with sudo$/);
  assert.equal(result.stdout, '');
});

test('lab-server lab keepalive, Ctrl-C mid-lab: exit 130, its programs stopped and its namespaces deleted first', { skip: linuxOnly || (isRoot ? false : 'needs root, to make network namespaces') }, async () => {
  const lab = start(LAB_SERVER, ['lab', 'keepalive']);
  // Step 2 starts the programs in the namespaces: stopped while they start, as a student would.
  await lab.stdoutLine(/^2\. /, 60_000);
  lab.child.kill('SIGINT');
  const result = await lab.finished;
  assertOneLineError(result, 130, /^lab-server: interrupted: the lab stopped its servers and processes$/);
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((line) => line.startsWith(`labsrv-${lab.child.pid}-`));
  assert.deepEqual(left, []);
});
