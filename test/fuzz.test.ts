/**
 * Bad input, everywhere: random streams to echo, random argument vectors to the CLI.
 *
 * Both are seeded (see helpers/random.ts): the seed is in each test's name, and
 * FUZZ_SEED=<seed> node --test dist/test/fuzz.test.js replays exactly the same inputs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';
import { test } from 'node:test';
import { ExitCode } from '../src/errors.js';
import { echo } from '../src/protocols/echo.js';
import { protocols } from '../src/protocols/index.js';
import { findSocketByInode } from '../src/tcp-states/read.js';
import { LAB_SERVER } from './helpers/cli.js';
import { firstDifference, forEachLimited, playEchoCase, randomEchoCase } from './helpers/echo-cases.js';
import { Random, seedFromEnvironment } from './helpers/random.js';
import { startServer } from './helpers/servers.js';

const seed = seedFromEnvironment();

// ---------------------------------------------------------------------------------------------
// Echo: random bytes, random chunks, random half-close points.

const ECHO_CASES = 200;
const ECHO_PARALLEL = 8;
const MAX_STREAM_BYTES = 256 * 1024;

test(`echo fuzz: ${ECHO_CASES} random streams, chunkings and half-closes come back byte for byte (FUZZ_SEED=${seed})`, async (t) => {
  const { server, port } = await startServer(echo);
  t.after(() => server.close(0));
  const random = new Random(seed);
  // One generator per case: a failing case replays the same whatever ran beside it.
  const cases = Array.from({ length: ECHO_CASES }, () => random.fork());
  let bytes = 0;
  await forEachLimited(cases, ECHO_PARALLEL, async (caseRandom, index) => {
    const c = randomEchoCase(caseRandom, MAX_STREAM_BYTES);
    const reply = await playEchoCase(port, c, caseRandom);
    bytes += c.data.length;
    if (!reply.equals(c.data)) {
      assert.fail(
        `FUZZ_SEED=${seed} case ${index}: sent ${c.data.length} bytes in ${c.chunks.length} chunk(s), half-close ${c.halfClose}; ` +
          `got ${reply.length} bytes back, first difference at ${firstDifference(reply, c.data)}`,
      );
    }
  });
  t.diagnostic(`${ECHO_CASES} streams, ${bytes} bytes echoed intact`);
});

// ---------------------------------------------------------------------------------------------
// The CLI: random argument vectors. Each run ends one of three clean ways, never with a stack trace.

const CLI_VECTORS = 60;
const CLI_PARALLEL = 4;
/** A run that neither exits nor starts listening by then is a hang. */
const CLI_TIMEOUT_MS = 15_000;
const QUIET_LEVELS = ['warn', 'error', 'fatal', 'silent'];
/** Whether a process's descriptors can be listed (Linux's /proc/PID/fd). */
const SEES_DESCRIPTORS = existsSync('/proc/self/fd');
/** How often to look for a quiet server's sockets. */
const QUIET_POLL_MS = 50;

/** Exit statuses of a user's mistake (sysexits): usage, unknown host, unavailable, permission. */
const USER_ERROR_CODES: readonly number[] = [ExitCode.usage, ExitCode.noHost, ExitCode.unavailable, ExitCode.noPermission];

const COMMANDS = [...protocols.map((p) => p.name), 'all', 'chargen2', 'ECHO', 'http', ''];
/**
 * Real flags (and a few near misses), drawn with replacement: a flag given twice keeps its last
 * value. Never --host: the harness gives `--host 127.0.0.1` itself, so a fuzzed server can bind
 * loopback only.
 */
const FLAGS = [
  '--port', '-p', '--log-format', '--log-level', '--kernel-states', '--no-kernel-states', '--resolve', '--iterative',
  '--max-connections', '--max-per-source', '--allow', '--deny', '--idle-timeout', '--shutdown-timeout',
  '--close', '--no-close', '--close-delay', '--udp', '--udp-only', '--udp-burst', '--udp-rate',
  '--help', '--version', '--verbose', '--prot', '-x', '--max_connections',
];
const VALUES = [
  '0', '1', '7', '13', '80', '5000', '65535', '65536', '-1', '1e3', '0x50', '3.5', 'NaN', 'Infinity', ' 0', '',
  'json', 'pretty', 'info', 'debug', 'silent', 'fin', 'rst',
  '127.0.0.1', '127.0.0.0/8', '::1', '::1/128', '10.0.0.0/33', 'fe80::/10', '1.2.3.4/x', 'localhost',
  'true', 'false', '--', '-', '日本語', 'é', '\u202e', '😀', ' ', '\t', 'a b',
];
const ALPHABET = [...'abcxyz019-=./:_ ', 'é', '日', '😀', '\u202e', '\n'];

function randomString(random: Random): string {
  const length = random.int(0, 12);
  let text = '';
  for (let i = 0; i < length; i++) text += random.pick(ALPHABET);
  return text;
}

/**
 * Tokens that would leave the sandbox: another --host (or a prefix yargs might expand to it),
 * and the commands that are not servers (`states` reads the kernel's table; `lab` runs experiments).
 */
const unsafe = (token: string): boolean => /^-+h(o|$)/i.test(token) || token === 'states' || token === 'lab';

/** Flags with values the server accepts: vectors made mostly of these get far enough to start. */
const VALID_SETTINGS: readonly (readonly string[])[] = [
  ['--log-format', 'json'], ['--log-format', 'pretty'], ['--log-level', 'debug'], ['--log-level', 'warn'],
  ['--kernel-states'], ['--no-kernel-states'], ['--resolve'], ['--iterative'],
  ['--max-connections', '10'], ['--max-per-source', '1'], ['--allow', '127.0.0.0/8'], ['--deny', '10.0.0.0/8', '::2'],
  ['--idle-timeout', '1.5'], ['--shutdown-timeout', '0'], ['--close', 'rst'], ['--no-close'], ['--close-delay', '0.5'],
  ['--udp'], ['--udp-burst', '5'], ['--udp-rate', '10'], ['--port', '0'],
];

/** A random flag with a random value, a bare value, a number, or random text. */
function noiseTokens(random: Random): string[] {
  const kind = random.int(0, 9);
  if (kind < 5) {
    const flag = random.pick(FLAGS);
    // Usually with a value, sometimes as --flag=value, sometimes bare.
    const value = random.chance(0.7) ? random.pick(VALUES) : randomString(random);
    const form = random.int(0, 9);
    if (form < 6) return [flag, value];
    if (form < 8 && flag.startsWith('--')) return [`${flag}=${value}`];
    return [flag];
  }
  if (kind < 7) return [random.pick(VALUES)];
  if (kind < 8) return [String(random.int(-100, 100_000))];
  return [randomString(random)];
}

function randomArgumentVector(random: Random): string[] {
  // Some vectors are pure noise, some are plausible with a little noise, some are fully valid.
  const noise = random.pick([0, 0.2, 1]);
  const vector: string[] = [];
  if (random.chance(1 - noise / 4)) vector.push(random.chance(1 - noise / 2) ? random.pick(protocols).name : random.pick(COMMANDS));
  const tokens = random.int(0, 6);
  for (let i = 0; i < tokens; i++) vector.push(...(random.chance(noise) ? noiseTokens(random) : random.pick(VALID_SETTINGS)));
  // Most vectors end with --port 0 so that a valid one can really start; the rest keep their luck
  // (a random or default port may be privileged or in use: that is a clean, known exit too).
  if (random.chance(0.7)) vector.push('--port', '0');
  return vector.filter((token) => !unsafe(token));
}

interface CliOutcome {
  kind: 'listening' | 'exited' | 'hung';
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** How it ended after our SIGTERM, when the server had started. */
  stop?: { code: number | null; signal: NodeJS.Signals | null };
}

/**
 * Runs `lab-server --host 127.0.0.1 <vector>`. The --host comes first so nothing in the vector can
 * swallow it as a value, and it comes before any `--` (after which yargs reads no more options).
 */
async function runVector(vector: string[]): Promise<CliOutcome> {
  // Above info, a server that starts logs nothing: it counts as started once it holds a socket of
  // its own (it handles SIGTERM from before it binds). A fixed wait would SIGTERM a server that a
  // loaded machine is still starting, and the default action would end it, not a graceful stop.
  const quiet = QUIET_LEVELS.some((level) => vector.join(' ').includes(`--log-level ${level}`) || vector.includes(`--log-level=${level}`));
  const child = spawn(process.execPath, [LAB_SERVER, '--host', '127.0.0.1', ...vector], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  const listening = new Promise<void>((resolve) => child.stdout.on('data', () => /listening on /.test(stdout) && resolve()));
  let timer: NodeJS.Timeout | undefined;
  // Without /proc (not Linux), a quiet server still running at the deadline counts as started.
  const timedOut = new Promise<'hung' | 'listening'>((resolve) => (timer = setTimeout(() => resolve(quiet && !SEES_DESCRIPTORS ? 'listening' : 'hung'), CLI_TIMEOUT_MS)));
  const holdsSocket = quiet && SEES_DESCRIPTORS ? untilHoldsSocket(child.pid!, exited) : new Promise<never>(() => {});
  const first = await Promise.race([exited.then(() => 'exited' as const), listening.then(() => 'listening' as const), holdsSocket.then(() => 'listening' as const), timedOut]);
  clearTimeout(timer);
  if (first === 'exited') {
    const [code, signal] = await exited;
    return { kind: 'exited', code, signal, stdout, stderr };
  }
  child.kill(first === 'hung' ? 'SIGKILL' : 'SIGTERM');
  const [code, signal] = await exited;
  return { kind: first, code: null, signal: null, stdout, stderr, stop: { code, signal } };
}

/** Resolves once process `pid` holds a TCP or UDP socket (its descriptors' inodes, found in /proc/net); never if it exits first. */
async function untilHoldsSocket(pid: number, exited: Promise<unknown>): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  while (!gone) {
    const links = await readdir(`/proc/${pid}/fd`).then((fds) => Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''))), () => []);
    const inodes = links.map((link) => /^socket:\[(\d+)\]$/.exec(link)?.[1]).filter((inode) => inode !== undefined);
    for (const inode of inodes) if ((await findSocketByInode(Number(inode))) !== undefined) return;
    await new Promise((resolve) => setTimeout(resolve, QUIET_POLL_MS));
  }
  return new Promise<never>(() => {});
}

/** Why this outcome is not clean, or undefined when it is. */
function uncleanBecause(outcome: CliOutcome): string | undefined {
  const stackTrace = /\n\s+at /.test(outcome.stderr);
  switch (outcome.kind) {
    case 'hung':
      return `neither exited nor listened within ${CLI_TIMEOUT_MS} ms`;
    case 'listening':
      if (outcome.stop?.code !== 0) return `started, but ended with ${outcome.stop?.code ?? outcome.stop?.signal} after SIGTERM instead of exit 0`;
      if (stackTrace) return 'started, but printed a stack trace';
      return undefined;
    case 'exited': {
      if (outcome.code === 0) {
        // --help and --version: the text on stdout, nothing on stderr.
        return outcome.stdout.length > 0 && outcome.stderr === '' ? undefined : 'exited 0 without listening or printing help';
      }
      if (outcome.code === null || !USER_ERROR_CODES.includes(outcome.code)) return `exit status ${outcome.code ?? outcome.signal}, not one of ${USER_ERROR_CODES.join('/')}`;
      const lines = outcome.stderr.trimEnd().split('\n');
      if (lines.length !== 1 || lines[0] === '') return `${lines.length} stderr line(s) instead of exactly one`;
      if (stackTrace) return 'a stack trace on stderr';
      return undefined;
    }
  }
}

test(`CLI fuzz: ${CLI_VECTORS} random argument vectors each end cleanly: a one-line error, help, or a clean start and stop (FUZZ_SEED=${seed})`, async (t) => {
  const random = new Random(seed);
  const vectors = Array.from({ length: CLI_VECTORS }, () => randomArgumentVector(random.fork()));
  const tally = new Map<string, number>();
  const failures: string[] = [];
  await forEachLimited(vectors, CLI_PARALLEL, async (vector, index) => {
    const outcome = await runVector(vector);
    const label = outcome.kind === 'exited' ? `exit ${outcome.code}` : outcome.kind;
    tally.set(label, (tally.get(label) ?? 0) + 1);
    const why = uncleanBecause(outcome);
    if (why !== undefined) failures.push(`vector ${index} ${JSON.stringify(vector)}: ${why}\n  stderr: ${outcome.stderr.slice(0, 600)}`);
  });
  t.diagnostic(`outcomes: ${[...tally].map(([label, count]) => `${label} ×${count}`).join(', ')}`);
  assert.deepEqual(failures, [], `FUZZ_SEED=${seed}`);
});

// Found by this fuzz test: a repeated --log-level or --host used to crash the CLI (exit 70).
test('a flag given twice: the last value wins, as in most Unix tools (not a crash)', async () => {
  for (const repeated of [['--log-level', 'info', '--log-level', 'warn'], ['--host', '127.0.0.2', '--host', '127.0.0.1']]) {
    const outcome = await runVector(['echo', '--port', '0', '--log-format', 'json', ...repeated]);
    assert.equal(uncleanBecause(outcome), undefined, `${repeated.join(' ')}: ${outcome.stderr}`);
  }
});

// Found by this fuzz test: the signal handlers used to be installed just after 'listening' was logged.
test("SIGTERM the moment 'listening' is logged is a graceful shutdown (exit 0)", async () => {
  for (let i = 0; i < 5; i++) {
    const child = spawn(process.execPath, [LAB_SERVER, 'echo', '--host', '127.0.0.1', '--port', '0', '--log-format', 'json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    await new Promise<void>((resolve) => child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text).includes('"listening"') && resolve()));
    child.kill('SIGTERM');
    const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, `attempt ${i + 1}`);
  }
});
