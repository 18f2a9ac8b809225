/**
 * End to end: first-use mistakes, each answered with one line that says what to type instead,
 * exit status 64 and no stack trace; and the forms a first-time user reaches for that just work.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { platform, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ExitCode } from '../src/errors.js';
import { protocols } from '../src/protocols/index.js';
import { MAX_QUOTES_FILE_BYTES } from '../src/protocols/qotd.js';
import { assertOneLineError, LAB_CLIENT, LAB_SERVER, run, start, startServerProcess } from './helpers/cli.js';

const linuxOnly = platform() === 'linux' ? false : 'reading TCP states needs Linux /proc/net/tcp';

/** Whether this machine can use IPv6 loopback (some containers have IPv6 off). */
async function hasIPv6Loopback(): Promise<boolean> {
  const probe = net.createServer();
  try {
    probe.listen(0, '::1');
    await once(probe, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    probe.close();
  }
}

test('--port with no value is an error, not the default: every command of both programs', async () => {
  const cases = [
    ...protocols.map((p) => [LAB_SERVER, p.name, '--port']),
    [LAB_SERVER, 'echo', '--port', '--udp'], // a flag after it is not its value
    [LAB_SERVER, 'daytime', '-p'],
    [LAB_SERVER, 'states', '--port'],
    ...protocols.map((p) => [LAB_CLIENT, p.name, '--port']),
    [LAB_CLIENT, 'echo', '--port', '--verbose'],
  ];
  await Promise.all(
    cases.map(async ([program, ...args]) => {
      const flag = args.includes('-p') ? '-p' : '--port';
      const result = await run(program!, args);
      assertOneLineError(result, ExitCode.usage, new RegExp(`^lab-(server|client): ${flag} needs a value\\b.*\\(see lab-\\w+ ${args[0]} --help\\)$`));
    }),
  );
  const base = await run(LAB_SERVER, ['all', '--base-port']);
  assertOneLineError(base, ExitCode.usage, /^lab-server: --base-port needs a value, e\.g\. --base-port 10000 \(see lab-server all --help\)$/);
  const timeout = await run(LAB_CLIENT, ['daytime', '--timeout']);
  assertOneLineError(timeout, ExitCode.usage, /^lab-client: --timeout needs a value, e\.g\. --timeout 10 /);
});

test('--base-port gives its own range, not the 0 to 65535 of --port', async () => {
  for (const value of ['-5', '0', '65499']) {
    const result = await run(LAB_SERVER, ['all', '--base-port', value]);
    assertOneLineError(result, ExitCode.usage, new RegExp(`^lab-server: invalid --base-port "${value}": give a whole number from 1 to 65498, so that every service gets a port$`));
  }
});

test('unknown commands and options suggest the closest name', async () => {
  const cases: [string, string[], RegExp][] = [
    [LAB_CLIENT, ['ecoh'], /^lab-client: unknown command "ecoh": did you mean echo\? \(see lab-client --help\)$/],
    [LAB_SERVER, ['ecoh'], /^lab-server: unknown protocol "ecoh": did you mean echo\? \(see lab-server --help\)$/],
    [LAB_SERVER, ['stats'], /^lab-server: unknown protocol "stats": did you mean states\?/],
    [LAB_SERVER, ['lab', 'tme-wait'], /^lab-server: unknown lab "tme-wait": did you mean time-wait\?/],
    [LAB_CLIENT, ['echo', '--prot', '5000'], /^lab-client: unknown option --prot: did you mean --port\? \(see lab-client echo --help\)$/],
    [LAB_CLIENT, ['daytime', '--no-verbos'], /^lab-client: unknown option --no-verbos: did you mean --no-verbose\?/],
    [LAB_SERVER, ['echo', '--max-conn', '5'], /^lab-server: unknown option --max-conn: did you mean --max-connections\? \(see lab-server echo --help\)$/],
    [LAB_SERVER, ['echo', '--verbose'], /^lab-server: unknown option --verbose \(see lab-server echo --help\)$/],
    [LAB_SERVER, ['echo', '5000'], /^lab-server: unexpected argument "5000": to choose the port, type --port 5000 \(see lab-server echo --help\)$/],
  ];
  await Promise.all(cases.map(async ([program, args, message]) => assertOneLineError(await run(program, args), ExitCode.usage, message)));
});

test('lab-client: the port after the host, as telnet and nc take it, or in the host as host:port', async () => {
  const server = await startServerProcess(['echo']);
  const port = String(server.port);
  const forms = [
    ['localhost', port],
    [`localhost:${port}`],
    [`127.0.0.1:${port}`],
    [`127.0.0.1:${port}`, port, '--port', port], // given three times, the same: fine
  ];
  if (await hasIPv6Loopback()) forms.push([`[::1]:${port}`], ['::1', '--port', port]); // bare ::1 is a host
  for (const args of forms) {
    const result = await run(LAB_CLIENT, ['echo', ...args], { input: 'hi\n' });
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    assert.equal(result.stdout, 'hi\n');
  }
  await server.stop();
});

test('lab-client: two different ports, or a malformed host:port, are refused before connecting', async () => {
  const cases: [string[], RegExp][] = [
    [['echo', 'localhost:5000', '--port', '7'], /^lab-client: two different ports: 5000 in "localhost:5000" and 7 with --port; give the port once$/],
    [['echo', 'localhost', '5000', '-p', '7'], /^lab-client: two different ports: 5000 after the host and 7 with --port; give the port once$/],
    [['echo', 'localhost:abc'], /^lab-client: invalid port "abc" in "localhost:abc": give the server's port, a whole number from 1 to 65535$/],
    [['echo', '[::1'], /^lab-client: invalid host "\[::1": write an IPv6 address in brackets when a port follows it, e\.g\. \[::1\]:5000$/],
    [['echo', 'localhost', '5000', 'extra'], /^lab-client: unexpected argument "extra" \(see lab-client echo --help\)$/],
  ];
  await Promise.all(cases.map(async ([args, message]) => assertOneLineError(await run(LAB_CLIENT, args), ExitCode.usage, message)));
});

test('--help shows numbers as numbers, and the main options first', async () => {
  const help = async (program: string, args: string[]): Promise<string> => {
    const result = await run(program, [...args, '--help']);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout;
  };
  const echo = await help(LAB_SERVER, ['echo']);
  assert.match(echo, /--port .*\n?.*\[number\] \[default: 5000\]/);
  assert.match(echo, /--max-connections[^\n]*\n?[^\n]*\[number\] \[default: 1024\]/);
  assert.doesNotMatch(echo, /\[default: "5000"\]/);
  const groups = [...echo.matchAll(/^(\w[\w ]*):$/gm)].map((m) => m[1]);
  assert.deepEqual(groups, ['Options', 'Logging', 'Metrics and dashboard', 'Limits', 'Access']);
  assert.ok(echo.indexOf('--port') < echo.indexOf('--log-format'), 'the port comes before the logging options');
  const daytime = await help(LAB_SERVER, ['daytime']);
  assert.match(daytime, /^Close behaviour:$/m);
  assert.match(daytime, /--close-delay[^\n]*\n?[^\n]*\[number\] \[default: 0\]/);
  assert.match(await help(LAB_SERVER, ['all']), /--base-port[^\n]*\n?[^\n]*\[number\] \[default: 10000\]/);
  const client = await help(LAB_CLIENT, ['daytime']);
  assert.match(client, /--port\s+Server port\s+\[number\] \[default: 13\]/);
  assert.match(client, /^lab-client daytime \[host\] \[port-number\]$/m);
});

test('lab-server states --watch | head: quiet exit 0, and no screen-clearing escapes in a pipe', { skip: linuxOnly }, async () => {
  const watch = start(LAB_SERVER, ['states', '--watch']);
  const exitedFirst = watch.finished.then((result) => {
    throw new Error(`states --watch exited before printing: ${result.stderr}`);
  });
  exitedFirst.catch(() => {}); // it exits later anyway, once the test has what it waits for
  const [first] = (await Promise.race([once(watch.child.stdout!, 'data'), exitedFirst])) as [Buffer];
  // What `head` does once it has its lines: close its end of the pipe.
  watch.child.stdout!.destroy();
  const result = await watch.finished;
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, '', 'no EPIPE stack trace');
  assert.doesNotMatch(first.toString(), /\x1b\[/, 'no escape sequences');
  assert.match(first.toString(), /^--- \d{4}-\d\d-\d\dT[\d:.]+Z {2}TCP sockets\n/);
});

test('qotd --quotes refuses a device, a FIFO, a directory and a file over the cap, before reading', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'quotes-'));
  const big = join(dir, 'big.txt');
  writeFileSync(big, 'x'.repeat(MAX_QUOTES_FILE_BYTES + 1));
  const cases: [string, RegExp][] = [
    ['/dev/zero', /it is a character device; give a text file of quotes$/],
    [dir, /it is a directory; give a text file of quotes$/],
    [big, /it is 1048577 bytes, over the 1048576-byte \(1 MiB\) limit for a quotes file$/],
  ];
  const fifo = join(dir, 'fifo');
  if (spawnSync('mkfifo', [fifo]).status === 0) cases.push([fifo, /it is a named pipe \(FIFO\); give a text file of quotes$/]);
  for (const [path, why] of cases) {
    const result = await run(LAB_SERVER, ['qotd', '--port', '0', '--quotes', path]);
    assertOneLineError(result, ExitCode.usage, new RegExp(`^lab-server: cannot use --quotes ${JSON.stringify(path).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: ${why.source}`));
  }
});

test('lab-server completion: a bash script (zsh under zsh) that asks the program for the next words', async () => {
  const bash = await run(LAB_SERVER, ['completion']);
  assert.equal(bash.code, 0);
  assert.match(bash.stdout, /^complete -o bashdefault -o default -F _lab-server_yargs_completions lab-server$/m);
  const words = await run(LAB_SERVER, ['--get-yargs-completions', 'lab-server', 'l']);
  assert.ok(words.stdout.split('\n').includes('lab'), words.stdout);
  const labOptions = await run(LAB_SERVER, ['--get-yargs-completions', 'lab-server', 'lab', '--']);
  assert.ok(['--ladder', '--pcap', '--list'].every((option) => labOptions.stdout.split('\n').includes(option)), labOptions.stdout);
  const zsh = spawnSync(process.execPath, [LAB_SERVER, 'completion'], { encoding: 'utf8', env: { ...process.env, SHELL: '/usr/bin/zsh' } });
  assert.match(zsh.stdout, /^#compdef lab-server$/m);
});

test('--rate 1/s --rate-burst 1: of three quick connections one is served, the rest reset and logged with the flag; a bad rate is exit 64', async () => {
  assertOneLineError(await run(LAB_SERVER, ['daytime', '--rate', '0/s']), ExitCode.usage, /invalid --rate "0\/s": give new connections a second, like 20 or 20\/s/);
  const server = await startServerProcess(['daytime', '--rate', '1/s', '--rate-burst', '1']);
  try {
    const outcomes = await Promise.all(
      [1, 2, 3].map(
        () =>
          new Promise<string>((resolve) => {
            const socket = net.connect({ host: '127.0.0.1', port: server.port });
            socket.once('data', () => resolve('served'));
            socket.once('error', () => resolve('reset')); // ECONNRESET, before or after connect() said yes
          }),
      ),
    );
    // Three connects within milliseconds: the bucket had one token, and a second takes a whole second.
    assert.ok(outcomes.filter((o) => o === 'served').length <= 2, outcomes.join());
    assert.ok(outcomes.includes('reset'), outcomes.join());
    const refused = await server.event('refused');
    assert.equal(refused.reason, 'rate');
    assert.match(String(refused.msg), /more new connections than 1 a second \(--rate\)/);
  } finally {
    await server.stop();
  }
});
