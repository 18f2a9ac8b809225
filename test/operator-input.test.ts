/**
 * What an operator types, taken at its word but never trusted (issue 18, items 3 and 9): files that
 * never end or never open, odd but legal values, and a descriptor limit too low to start. Each is
 * refused at once with one line and a documented exit status, the real programs spawned.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MAX_PCAP_FILE_BYTES } from '../src/capture/pcap.js';
import { MAX_DURATION_SECONDS } from '../src/cli/arguments.js';
import { DESCRIPTORS_TO_LOAD } from '../src/cli/descriptor-limit.js';
import { ExitCode } from '../src/errors.js';
import { assertOneLineError, LAB_CLIENT, LAB_SERVER, run, startServerProcess } from './helpers/cli.js';

const linuxOnly = process.platform === 'linux' ? false : 'Linux only: FIFOs, /dev/zero and ulimit as on Linux';
/**
 * A program blocked in open(2) on a FIFO would sit there until killed: the tests that could hang
 * so fail by this deadline even when run without --test-timeout (generous: a loaded machine takes
 * seconds per spawn).
 */
const AT_ONCE = { timeout: 240_000 };

function scratch(t: { after(fn: () => void): void }): { dir: string; fifo: string | undefined } {
  const dir = mkdtempSync(join(tmpdir(), 'operator-input-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'fifo');
  return { dir, fifo: spawnSync('mkfifo', [fifo]).status === 0 ? fifo : undefined };
}

test('--log-file on a FIFO is refused before open(2) could wait for a reader (exit 73)', { ...AT_ONCE, skip: linuxOnly }, async (t) => {
  const { fifo } = scratch(t);
  if (fifo === undefined) return t.skip('mkfifo is not installed');
  assertOneLineError(
    await run(LAB_SERVER, ['echo', '--port', '0', '--log-file', fifo]),
    ExitCode.cantCreate,
    /^lab-server: cannot use --log-file ".*fifo": it is a named pipe \(FIFO\) or a socket; without --log-file the log goes to stdout/,
  );
});

test('trace --read: a FIFO, /dev/zero and a file over the cap are refused before reading (exit 65); stdin from a file is read', { ...AT_ONCE, skip: linuxOnly }, async (t) => {
  const { dir, fifo } = scratch(t);
  const big = join(dir, 'big.pcap');
  writeFileSync(big, '');
  truncateSync(big, MAX_PCAP_FILE_BYTES + 1); // sparse: no disk space used
  const cases: [string, RegExp][] = [
    ['/dev/zero', /it is a character device; give a saved capture/],
    [big, new RegExp(`it is ${MAX_PCAP_FILE_BYTES + 1} bytes, over the ${MAX_PCAP_FILE_BYTES}-byte \\(256 MiB\\) limit for a pcap file$`)],
  ];
  if (fifo !== undefined) cases.push([fifo, /it is a named pipe \(FIFO\); give a saved capture/]);
  for (const [path, why] of cases) {
    assertOneLineError(await run(LAB_SERVER, ['trace', '--read', path]), ExitCode.dataError, new RegExp(`^lab-server: cannot use ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ${why.source}`));
  }
  // A saved capture redirected to stdin is a regular file behind /dev/stdin: read as any other.
  const pcap = new URL('../../test/fixtures/pcap/daytime-ipv4.pcap', import.meta.url).pathname;
  const redirected = spawnSync('bash', ['-c', 'exec "$@" < "$0"', pcap, process.execPath, LAB_SERVER, 'trace', '--read', '/dev/stdin'], { encoding: 'utf8' });
  assert.equal(redirected.status, 0, redirected.stderr);
  assert.match(redirected.stdout, /read from \/dev\/stdin/);
});

test('lab --pcap on a FIFO is refused before the lab starts (exit 73)', { ...AT_ONCE, skip: linuxOnly }, async (t) => {
  const { fifo } = scratch(t);
  if (fifo === undefined) return t.skip('mkfifo is not installed');
  assertOneLineError(await run(LAB_SERVER, ['lab', 'time-wait', '--pcap', fifo]), ExitCode.cantCreate, /cannot write .*fifo: it is a named pipe \(FIFO\) or a socket/);
});

test('--host: empty is refused (exit 64), a name longer than any host name is unknown (exit 68), neither with a stack trace', async () => {
  assertOneLineError(await run(LAB_SERVER, ['echo', '--port', '0', '--host', '']), ExitCode.usage, /^lab-server: invalid --host "": name an address to bind/);
  for (const length of [256, 300, 1000]) {
    assertOneLineError(
      await run(LAB_SERVER, ['echo', '--port', '0', '--host', 'a'.repeat(length)]),
      ExitCode.noHost,
      new RegExp(`^lab-server: cannot listen on port 0: a host name of ${length} characters cannot exist`),
    );
  }
});

test('durations: one number syntax (no hex, exponent, sign or spaces) and a maximum Node timers can count, for every duration flag', async () => {
  const flags: [string, string[]][] = [
    [LAB_SERVER, ['daytime', '--port', '0', '--idle-timeout']],
    [LAB_SERVER, ['daytime', '--port', '0', '--shutdown-timeout']],
    [LAB_SERVER, ['daytime', '--port', '0', '--close-delay']],
    [LAB_CLIENT, ['daytime', '--timeout']],
    [LAB_CLIENT, ['daytime', '--hold']],
  ];
  // Every spelling on one flag, and on each of the others the two the issue found (all go through one check).
  for (const [program, args] of flags) {
    const flag = args.at(-1)!;
    const values = flag === '--idle-timeout' ? ['0x10', '1e9', '-1', ' 5', '1_000', String(MAX_DURATION_SECONDS + 1)] : ['0x10', String(MAX_DURATION_SECONDS + 1)];
    for (const value of values) {
      const result = await run(program, [...args, value]);
      assertOneLineError(result, ExitCode.usage, new RegExp(`invalid ${flag} "${value}": give a number of seconds from 0 to ${MAX_DURATION_SECONDS}`));
      assert.doesNotMatch(result.stderr, /TimeoutOverflowWarning/);
    }
  }
  // The largest is accepted, and starts no timer that overflows.
  const server = await startServerProcess(['echo', '--idle-timeout', String(MAX_DURATION_SECONDS), '--shutdown-timeout', '0.5']);
  const stopped = await server.stop();
  assert.equal(stopped.code, 0);
  assert.doesNotMatch(stopped.stderr, /Warning/);
});

test('ulimit -n below what loading needs: one line saying how many, exit 71, no crash in the loader', { ...AT_ONCE, skip: linuxOnly }, async () => {
  const withLimit = (n: number) => ({ prefix: ['bash', '-c', `ulimit -n ${n} && exec "$@"`, 'bash'] });
  for (const [program, name] of [[LAB_SERVER, 'lab-server'], [LAB_CLIENT, 'lab-client']] as const) {
    const needed = DESCRIPTORS_TO_LOAD[name];
    for (const limit of [24, 40, needed - 1]) {
      assertOneLineError(
        await run(program, name === 'lab-server' ? ['echo', '--port', '0'] : ['daytime'], withLimit(limit)),
        ExitCode.osError,
        new RegExp(`^${name}: needs at least ${needed} open files to start, and this process may open only ${limit}: raise the limit`),
      );
    }
  }
  // At the limit it needs, the server starts (test/stress/fd-exhaustion serves 200 clients that way).
  const server = await startServerProcess(['echo'], withLimit(DESCRIPTORS_TO_LOAD['lab-server']));
  assert.equal((await server.stop()).code, 0);
});
