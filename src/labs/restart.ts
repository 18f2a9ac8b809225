/**
 * restart: the tutorial's reason for SO_REUSEADDR. Stop a server while its old connections
 * sit in TIME_WAIT and bind its port again at once: without SO_REUSEADDR bind() fails with
 * EADDRINUSE; with it (Node sets it on every TCP listener) the new server starts.
 */
import { LabError } from '../errors.js';
import { daytime } from '../protocols/daytime.js';
import { LAB_HOST } from './context.js';
import { openDaytimeSession, startDaytimeServer } from './daytime-session.js';
import type { Lab } from './lab.js';

/** Binds and listens on a plain socket without SO_REUSEADDR; prints `listening` or the errno name. */
const BIND_WITHOUT_REUSEADDR = [
  'import errno, socket, sys',
  's = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # no setsockopt(SO_REUSEADDR)',
  'try:',
  '    s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); print("listening")',
  'except OSError as e:',
  '    print(errno.errorcode.get(e.errno, str(e.errno)))',
].join('\n');

const PYTHON = 'python3';

export const restart: Lab = {
  name: 'restart',
  summary: 'TIME_WAIT connections, then a restarted server binds the same port at once thanks to SO_REUSEADDR',
  concept:
    'Textbook: kill a server and restart it at once, and bind() fails with "Address already in use": the connections ' +
    "it closed first still sit in TIME_WAIT on its port. SO_REUSEADDR lets the new listener bind anyway; \"all TCP servers " +
    'should set it". Node sets it on every TCP listener.',
  async run(ctx) {
    ctx.step('Start a daytime server and serve two clients: the server closes first each time.');
    const { port, stop } = await startDaytimeServer(ctx);
    const sessions = [await openDaytimeSession(ctx, port), await openDaytimeSession(ctx, port)];
    for (const [i, session] of sessions.entries()) {
      await ctx.within(session.finished, 'the client to close');
      await ctx.expectState({ id: `time-wait-${i + 1}`, end: 'server', ...session.ends.server, predicted: 'TIME_WAIT' });
    }

    ctx.step('Stop the server. Its TIME_WAIT connections stay behind, on its port.');
    await stop();
    await ctx.expectState({ id: 'time-wait-after-stop', end: 'server', ...sessions[0]!.ends.server, predicted: 'TIME_WAIT' });

    ctx.step(`Restart it with a socket that does NOT set SO_REUSEADDR (${PYTHON}'s plain socket module): bind ${LAB_HOST}:${port}.`);
    const python = await ctx.runProcess(PYTHON, ['-c', BIND_WITHOUT_REUSEADDR, LAB_HOST, String(port)]);
    if (python.startError !== undefined || python.code !== 0) {
      const why = python.startError === 'ENOENT' ? `${PYTHON} is not installed` : `${PYTHON} failed: ${python.startError ?? python.stderr.trim()}`;
      ctx.report('without-reuseaddr', 'bind without SO_REUSEADDR', `skipped (${why}); Node cannot turn SO_REUSEADDR off, so this step needs another program`);
    } else {
      ctx.expectFact('without-reuseaddr', 'bind without SO_REUSEADDR', 'EADDRINUSE', python.stdout.trim());
    }

    ctx.step(`Restart it as Node does, with SO_REUSEADDR: listen on ${LAB_HOST}:${port} again.`);
    const outcome = await ctx.startServer({ protocol: daytime, port }).then(
      () => 'listening',
      (error: unknown) => (error instanceof LabError && error.code === 'ERR_PORT_IN_USE' ? 'EADDRINUSE' : Promise.reject(error)),
    );
    ctx.expectFact('with-reuseaddr', 'bind with SO_REUSEADDR', 'listening', outcome);
    await ctx.expectState({ id: 'listener', end: 'server', local: { address: LAB_HOST, port }, remote: { address: '0.0.0.0', port: 0 }, predicted: 'LISTEN' });
    await ctx.expectState({ id: 'time-wait-beside-listener', end: 'server', ...sessions[0]!.ends.server, predicted: 'TIME_WAIT' });
    ctx.say('The new listener and the old TIME_WAIT connections share the port: TCP tells them apart by the whole socket pair.');
  },
};
