/**
 * End to end: first-use mistakes, each answered with one line that says what to type instead,
 * exit status 64 and no stack trace; and the forms a first-time user reaches for that just work.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { platform } from 'node:os';
import { test } from 'node:test';
import { LAB_SERVER, start } from './helpers/cli.js';

const linuxOnly = platform() === 'linux' ? false : 'reading TCP states needs Linux /proc/net/tcp';

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
