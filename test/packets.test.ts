/**
 * The packet ladders end to end: `lab-server trace --read` on the recorded captures, the labs'
 * ladders captured live by a real tcpdump (as root, where tcpdump is installed: CI installs it),
 * `trace --port` drawing live connections, and, for a user without capture rights, the inferred
 * ladder and the advice on how to get the real one.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConnectionTracker, statePath, type Connection } from '../src/capture/connection-tracker.js';
import { checkLinkType, decodeSegment } from '../src/capture/decode.js';
import { inferSegments } from '../src/capture/inferred.js';
import { readPcapFile } from '../src/capture/pcap.js';
import type { End } from '../src/capture/tcp-machine.js';
import { flagNames } from '../src/capture/segment.js';
import { startCapture } from '../src/capture/tcpdump.js';
import type { EventOf } from '../src/framework/events.js';
import { runs } from './helpers/programs.js';
import { assertOneLineError, LAB_CLIENT, LAB_SERVER, run, start, startServerProcess } from './helpers/cli.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/pcap/', import.meta.url));
const REPOSITORY = fileURLToPath(new URL('../../', import.meta.url));

const hasTcpdump = runs('tcpdump', '--version');
const isRoot = process.getuid?.() === 0;
const noLiveCapture = process.platform !== 'linux'
  ? 'live capture is tested on Linux'
  : !hasTcpdump
    ? 'tcpdump is not installed (Debian: apt-get install tcpdump): the live ladders are not tested'
    : !isRoot && 'capturing needs root here: the live ladders are not tested';

/** The flags of each arrow of a drawn ladder, in order: `SYN`, `SYN,ACK`, ... */
function ladderFlags(text: string): string[] {
  const flag = '(?:SYN|FIN|RST|PSH|URG|ECE|CWR|ACK)';
  const label = new RegExp(`[─◀] (${flag}(?:,${flag})*)(?: |$)`);
  return text.split('\n').filter((line) => /[▶◀]/.test(line)).map((line) => label.exec(line)?.[1] ?? `unreadable: ${line}`);
}

/** The flags of each packet as `tcpdump -r` prints them (`[S.]`), in our spelling (`SYN,ACK`). */
function tcpdumpFlags(pcap: string): string[] {
  const names: Record<string, number> = { S: 0x02, F: 0x01, R: 0x04, P: 0x08, U: 0x20, E: 0x40, W: 0x80, '.': 0x10 };
  const printed = execFileSync('tcpdump', ['-nn', '-r', pcap], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return [...printed.matchAll(/Flags \[([^\]]+)\]/g)].map(([, letters]) => flagNames([...letters!].reduce((bits, letter) => bits | (names[letter] ?? 0), 0)));
}

/** Each connection of a recorded capture, through the tracker. */
function trackFixture(name: string): Connection[] {
  const { header, records } = readPcapFile(join(FIXTURES, name));
  checkLinkType(header.linkType, name);
  const finished: Connection[] = [];
  const tracker = new ConnectionTracker({ onFinished: (connection) => finished.push(connection) });
  for (const record of records) {
    const segment = decodeSegment(header.linkType, record);
    if (segment !== undefined) tracker.add(segment);
  }
  return [...finished, ...tracker.flush()];
}

test('the state machine on the recorded captures: each end\'s path through RFC 9293\'s diagram, as the real packets moved it', () => {
  const expected: Record<string, Record<End, string>> = {
    // Linux delays the ACK of the server's FIN, so the client's FIN carries it: no FIN_WAIT2.
    'daytime-ipv4.pcap': { client: 'CLOSED → SYN_SENT → ESTABLISHED → CLOSE_WAIT → LAST_ACK → CLOSED', server: 'LISTEN → SYN_RECV → ESTABLISHED → FIN_WAIT1 → TIME_WAIT' },
    'daytime-ipv6.pcap': { client: 'CLOSED → SYN_SENT → ESTABLISHED → CLOSE_WAIT → LAST_ACK → CLOSED', server: 'LISTEN → SYN_RECV → ESTABLISHED → FIN_WAIT1 → TIME_WAIT' },
    // The half-close: the server's echo acknowledges the client's FIN, and the client keeps reading in FIN_WAIT2.
    'echo-half-close.pcap': { client: 'CLOSED → SYN_SENT → ESTABLISHED → FIN_WAIT1 → FIN_WAIT2 → TIME_WAIT', server: 'LISTEN → SYN_RECV → ESTABLISHED → CLOSE_WAIT → LAST_ACK → CLOSED' },
    // An abortive close: no FIN, no TIME_WAIT anywhere.
    'rst.pcap': { client: 'CLOSED → SYN_SENT → ESTABLISHED → CLOSED', server: 'LISTEN → SYN_RECV → ESTABLISHED → CLOSED' },
    'closed-port.pcap': { client: 'CLOSED → SYN_SENT → CLOSED', server: 'CLOSED' },
  };
  for (const [name, paths] of Object.entries(expected)) {
    const connections = trackFixture(name);
    assert.equal(connections.length, 1, name);
    const [connection] = connections;
    assert.equal(connection!.finished, true, `${name}: seen to its end`);
    assert.deepEqual({ client: statePath(connection!, 'client').join(' → '), server: statePath(connection!, 'server').join(' → ') }, paths, name);
  }
});

test('trace --read: the ladder of a recorded daytime close, the server closing first and waiting in TIME_WAIT', async () => {
  const { code, stdout } = await run(LAB_SERVER, ['trace', '--read', join(FIXTURES, 'daytime-ipv4.pcap')]);
  assert.equal(code, 0);
  assert.deepEqual(ladderFlags(stdout), ['SYN', 'SYN,ACK', 'ACK', 'PSH,ACK', 'ACK', 'FIN,ACK', 'FIN,ACK', 'ACK']);
  assert.deepEqual(ladderFlags(stdout), tcpdumpFlagsOr(join(FIXTURES, 'daytime-ipv4.pcap'), ladderFlags(stdout)));
  const serverFin = stdout.split('\n').find((line) => line.includes('◀') && line.includes('FIN,ACK'));
  assert.match(serverFin ?? '', /FIN_WAIT1$/, "the server's FIN comes first, and it enters FIN_WAIT1");
  assert.match(stdout, /▶ TIME_WAIT \(60 s\)/, "TIME_WAIT on the server's side, right of the arrow");
  assert.match(stdout, /"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\\n"/, 'the time line, escaped');
});

/** tcpdump's reading of a file where tcpdump is installed; otherwise the expectation itself (nothing to compare with). */
function tcpdumpFlagsOr(pcap: string, fallback: string[]): string[] {
  return hasTcpdump ? tcpdumpFlags(pcap) : fallback;
}

test('trace --read: IPv6 addresses, and an RST that leaves no TIME_WAIT', async () => {
  const ipv6 = await run(LAB_SERVER, ['trace', '--read', join(FIXTURES, 'daytime-ipv6.pcap')]);
  assert.equal(ipv6.code, 0);
  assert.match(ipv6.stdout, /client \[::1\]:\d+ +server \[::1\]:44/);
  const reset = await run(LAB_SERVER, ['trace', '--read', join(FIXTURES, 'rst.pcap')]);
  assert.equal(reset.code, 0);
  assert.equal(ladderFlags(reset.stdout).at(-1), 'RST,ACK');
  assert.doesNotMatch(reset.stdout, /TIME_WAIT/);
});

test('trace --read --json: one object per segment with both ends\' states; a SYN to a closed port is answered by RST', async () => {
  const { code, stdout } = await run(LAB_SERVER, ['trace', '--read', join(FIXTURES, 'closed-port.pcap'), '--json']);
  assert.equal(code, 0);
  const segments = stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as { flags: string[]; clientState: string; serverState: string; notes: string[] });
  assert.deepEqual(segments.map((s) => s.flags.join(',')), ['SYN', 'RST,ACK']);
  assert.deepEqual(segments.map((s) => [s.clientState, s.serverState]), [['SYN_SENT', 'CLOSED'], ['CLOSED', 'CLOSED']], 'nobody listened: the server end was never LISTEN or SYN_RECV');
  assert.match(segments[1]!.notes.join(), /no listener/);
});

test('trace --read: a truncated capture or not a capture at all is one line and exit 65; trace without a source is exit 64', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lab-server-trace-'));
  try {
    const whole = readFileSync(join(FIXTURES, 'daytime-ipv4.pcap'));
    const cut = join(dir, 'cut.pcap');
    writeFileSync(cut, whole.subarray(0, whole.length - 10));
    assertOneLineError(await run(LAB_SERVER, ['trace', '--read', cut]), 65, /cut\.pcap is truncated: record 8/);
    assertOneLineError(await run(LAB_SERVER, ['trace', '--read', join(dir, 'missing.pcap')]), 65, /missing\.pcap/);
    assertOneLineError(await run(LAB_SERVER, ['trace']), 64, /trace needs --port P \(live\) or --read FILE/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lab --pcap to a folder that does not exist: one line, exit 73, before the lab runs', async () => {
  const result = await run(LAB_SERVER, ['lab', 'time-wait', '--pcap', join(tmpdir(), 'no-such-folder-for-lab-server', 'tw.pcap')]);
  assertOneLineError(result, 73, /cannot write .*tw\.pcap: ENOENT/);
  assert.equal(result.stdout, '', 'nothing ran');
});

test('a capture that cannot start says why and what to do, and never throws', async () => {
  const started = await startCapture({ filter: 'tcp', program: join(tmpdir(), 'no-such-tcpdump'), onPacket: () => {} });
  assert.equal(started.capture, undefined);
  assert.equal(started.problem, 'not-installed');
  assert.match(started.unavailable ?? '', /tcpdump is not installed \(Debian and Ubuntu: sudo apt install tcpdump\)/);
});

test("the inferred ladder: a server's events give the handshake, the data and who closed first, through the same state machine", () => {
  const local = { address: '127.0.0.1', port: 13 };
  const remote = { address: '127.0.0.1', port: 40000 };
  const stamp = { protocol: 'daytime', transport: 'tcp' as const, conn: 1, local, remote };
  const accepted: EventOf<'accepted'> = { type: 'accepted', at: 1, time: 1000, ...stamp };
  const sent: EventOf<'sent'> = { type: 'sent', at: 2, time: 1001, ...stamp, text: 'now\\n', bytes: 25 };
  const closed: EventOf<'closed'> = { type: 'closed', at: 3, time: 1002, ...stamp, closedBy: 'server', how: 'fin', bytesIn: 0, bytesOut: 25, durationMs: 2 };
  const finished: Connection[] = [];
  const tracker = new ConnectionTracker({ onFinished: (connection) => finished.push(connection) });
  for (const segment of inferSegments({ accepted, messages: [], sent: [sent], closed })) tracker.add(segment);
  assert.equal(finished.length, 1);
  const [connection] = finished;
  assert.deepEqual(connection!.steps.map((step) => `${step.from} ${flagNames(step.segment.flags)}`), [
    'client SYN', 'server SYN,ACK', 'client ACK', 'server PSH,ACK', 'server FIN,ACK', 'client ACK', 'client FIN,ACK', 'server ACK',
  ]);
  assert.deepEqual(connection!.states, { client: 'CLOSED', server: 'TIME_WAIT' });
  assert.ok(connection!.steps.every((step) => step.notes.length === 0), 'no made-up window notes');
});

test('lab time-wait --pcap, captured: the ladder has the exact flags of the saved packets, the server FIN first, TIME_WAIT on its side', { skip: noLiveCapture }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lab-server-ladder-'));
  try {
    const pcap = join(dir, 'tw.pcap');
    const { code, stdout } = await run(LAB_SERVER, ['lab', 'time-wait', '--pcap', pcap]);
    assert.equal(code, 0, stdout);
    assert.match(stdout, /^The packets, captured by tcpdump on lo: one connection\.$/m);
    const flags = ladderFlags(stdout.slice(stdout.indexOf('The packets')));
    assert.deepEqual(flags, tcpdumpFlags(pcap), 'the ladder draws every packet saved, in order');
    assert.deepEqual(flags.slice(0, 3), ['SYN', 'SYN,ACK', 'ACK']);
    const fins = stdout.split('\n').filter((line) => /[▶◀]/.test(line) && line.includes('FIN'));
    assert.match(fins[0] ?? '', /◀.*FIN,ACK.* FIN_WAIT1$/, "the server's FIN is first");
    assert.match(stdout, /▶ TIME_WAIT \(60 s\)/, "TIME_WAIT on the server's side");
    assert.match(stdout, /✓ who sent the first FIN +textbook: the server/);
    assert.match(stdout, /┄┄ kernel \(\/proc\/net\/tcp\): server TIME_WAIT ✓ agrees/);
    assert.match(stdout.trimEnd().split('\n').at(-1)!, /^passed: .*\(\d+ of \d+ predictions\)\.$/, 'nothing skipped');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('trace --port: live, a ladder for each of five lab-client daytime connections, and --pcap saves them', { skip: noLiveCapture }, async () => {
  const server = await startServerProcess(['daytime']);
  const dir = mkdtempSync(join(tmpdir(), 'lab-server-trace-'));
  try {
    const pcap = join(dir, 'live.pcap');
    const tracer = start(LAB_SERVER, ['trace', '--port', String(server.port), '--count', '5', '--pcap', pcap]);
    await tracer.stderrLine(/^tracing tcp port \d+ on lo, 5 connections/);
    for (let i = 0; i < 5; i++) assert.equal((await run(LAB_CLIENT, ['daytime', `127.0.0.1:${server.port}`])).code, 0);
    const traced = await tracer.finished;
    assert.equal(traced.code, 0, traced.stderr);
    const titles = traced.stdout.split('\n').filter((line) => /^#\d+ 127\.0\.0\.1:\d+ → 127\.0\.0\.1:\d+: captured by tcpdump on lo$/.test(line));
    assert.equal(titles.length, 5, traced.stdout);
    assert.equal(ladderFlags(traced.stdout).filter((flags) => flags === 'SYN').length, 5);
    assert.equal(tcpdumpFlags(pcap).length, ladderFlags(traced.stdout).length, 'the file holds what was drawn');
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a user without capture rights: the lab still passes, its ladder is inferred and labelled, and it says how to capture', { skip: process.platform !== 'linux' ? 'uses setpriv' : !isRoot && 'needs root to drop to another user' }, async () => {
  // The user `nobody` cannot read a clone in root's private temporary folder: give it its own copy.
  const copy = mkdtempSync(join(tmpdir(), 'lab-server-nobody-'));
  try {
    chmodSync(copy, 0o755);
    cpSync(join(REPOSITORY, 'dist', 'src'), join(copy, 'dist', 'src'), { recursive: true });
    cpSync(join(REPOSITORY, 'package.json'), join(copy, 'package.json'));
    cpSync(join(REPOSITORY, 'node_modules'), join(copy, 'node_modules'), {
      recursive: true,
      dereference: true,
      filter: (source) => !/node_modules\/(typescript|@types)(\/|$)/.test(source),
    });
    const nobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'];
    const { code, stdout } = await run(join(copy, 'dist', 'src', 'cli', 'lab-server.js'), ['lab', 'time-wait'], { prefix: nobody });
    assert.equal(code, 0, stdout);
    assert.match(stdout, hasTcpdump ? /^no packet capture: this user may not capture packets on lo: run with sudo, or .*setcap cap_net_raw,cap_net_admin=eip/m : /^no packet capture: tcpdump is not installed/m);
    assert.match(stdout, /The ladder below is inferred, not seen\./);
    assert.match(stdout, /^#1 .*: inferred from the server's events$/m);
    assert.match(stdout, /▶ TIME_WAIT \(60 s\)/);
    assert.match(stdout.trimEnd().split('\n').at(-1)!, /^passed: .*1 skipped, not checked: packets\)\.$/);
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
});
