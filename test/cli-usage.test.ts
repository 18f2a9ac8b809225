/**
 * End to end: first-use mistakes, each answered with one line that says what to type instead,
 * exit status 64 and no stack trace; and the forms a first-time user reaches for that just work.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { platform } from 'node:os';
import { test } from 'node:test';
import { ExitCode } from '../src/errors.js';
import { assertOneLineError, LAB_CLIENT, LAB_SERVER, run, start } from './helpers/cli.js';

const linuxOnly = platform() === 'linux' ? false : 'reading TCP states needs Linux /proc/net/tcp';

test('--base-port gives its own range, not the 0 to 65535 of --port', async () => {
  for (const value of ['-5', '0', '65499']) {
    const result = await run(LAB_SERVER, ['all', '--base-port', value]);
    assertOneLineError(result, ExitCode.usage, new RegExp(`^lab-server: invalid --base-port "${value}": give a whole number from 1 to 65498, so that every service gets a port$`));
  }
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
  assert.deepEqual(groups, ['Options', 'Logging', 'Limits', 'Access']);
  assert.ok(echo.indexOf('--port') < echo.indexOf('--log-format'), 'the port comes before the logging options');
  const daytime = await help(LAB_SERVER, ['daytime']);
  assert.match(daytime, /^Close behaviour:$/m);
  assert.match(daytime, /--close-delay[^\n]*\n?[^\n]*\[number\] \[default: 0\]/);
  assert.match(await help(LAB_SERVER, ['all']), /--base-port[^\n]*\n?[^\n]*\[number\] \[default: 10000\]/);
  const client = await help(LAB_CLIENT, ['daytime']);
  assert.match(client, /--port\s+Server port\s+\[number\] \[default: 13\]/);
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
