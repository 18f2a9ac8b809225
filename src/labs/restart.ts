/**
 * restart: the tutorial's reason for SO_REUSEADDR. Stop a server while its old connections
 * sit in TIME_WAIT and bind its port again at once: without SO_REUSEADDR bind() fails with
 * EADDRINUSE; with it (Node sets it on every TCP listener) the new server starts.
 *
 * On Linux the option must be on both sides of the conflict: a TIME_WAIT socket keeps the
 * SO_REUSEADDR its listener had (inet_csk_bind_conflict, net/ipv4/inet_connection_sock.c,
 * asks both sockets). 4.4BSD asks only the new one. The last step checks Linux's rule.
 */
import { LabError } from '../errors.js';
import { daytime } from '../protocols/daytime.js';
import { readTcpSockets } from '../tcp-states/read.js';
import { LAB_HOST } from './context.js';
import { openDaytimeSession, startDaytimeServer } from './daytime-session.js';
import type { Lab } from './lab.js';
import { PYTHON, reportSkipped, runPythonJson } from './python.js';

/** Binds and listens on a plain socket without SO_REUSEADDR; prints `listening` or the errno name. */
const BIND_WITHOUT_REUSEADDR = [
  'import errno, socket, sys',
  's = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # no setsockopt(SO_REUSEADDR)',
  'try:',
  '    s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); print("listening")',
  'except OSError as e:',
  '    print(errno.errorcode.get(e.errno, str(e.errno)))',
].join('\n');

/**
 * The restart again, all in python3 and with a server that never set SO_REUSEADDR: it serves
 * one client, closes first (TIME_WAIT on its side) and stops; then a new socket *with*
 * SO_REUSEADDR binds and listens on its port. Prints the outcome.
 */
const OLD_SERVER_WITHOUT = `
import errno, json, socket, sys
old = socket.socket(); old.bind((sys.argv[1], 0)); old.listen()   # no SO_REUSEADDR
port = old.getsockname()[1]
client = socket.create_connection((sys.argv[1], port)); served, _ = old.accept()
served.close()                       # the server closes first: its end goes to TIME_WAIT
client.recv(1); client.close(); old.close()
# What still holds the port, from the kernel's table (state 06 is TIME_WAIT).
rows = [line.split() for line in open('/proc/net/tcp').read().splitlines()[1:]]
holders = ['TIME_WAIT' if r[3] == '06' else 'state ' + r[3] for r in rows if r[1].endswith(':%04X' % port)]
new = socket.socket(); new.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    new.bind((sys.argv[1], port)); new.listen(); outcome = 'listening'
except OSError as e:
    outcome = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps({'port': port, 'holders': holders, 'outcome': outcome}))
`;

export const restart: Lab = {
  name: 'restart',
  summary: 'TIME_WAIT connections, then a restarted server binds the same port at once thanks to SO_REUSEADDR',
  concept:
    'Textbook: kill a server and restart it at once, and bind() fails with "Address already in use": the connections ' +
    "it closed first still sit in TIME_WAIT on its port. SO_REUSEADDR lets the new listener bind anyway; \"all TCP servers " +
    'should set it" (Stevens UNP §7.5). Node sets it on every TCP listener. On Linux the old connections must have had it ' +
    'too: they keep their listener\'s setting, and the kernel asks both sockets.',
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
    const holders = (await readTcpSockets()).filter((entry) => entry.local.port === port && entry.local.address === LAB_HOST);
    ctx.expectFact('port-holders', `every socket on ${LAB_HOST}:${port}`, 'TIME_WAIT, TIME_WAIT', holders.map((entry) => entry.state).sort().join(', ') || 'none');

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

    ctx.step(`Linux asks both sockets: a ${PYTHON} server WITHOUT SO_REUSEADDR closes first and stops; a new socket WITH it binds its port.`);
    const both = await runPythonJson<{ port: number; holders: string[]; outcome: string }>(ctx, OLD_SERVER_WITHOUT, [LAB_HOST]);
    if (!both.ran) return reportSkipped(ctx, 'reuseaddr-on-both', 'SO_REUSEADDR on the new socket only', both.why);
    ctx.watchPort(both.value.port); // the script said its port only once done: the capture kept its packets
    ctx.expectFact('old-holder', 'what holds the old port', 'TIME_WAIT', both.value.holders.join(', ') || 'nothing');
    ctx.expectFact('reuseaddr-on-both', 'bind with SO_REUSEADDR, old server without', 'EADDRINUSE', both.value.outcome);
    ctx.say("The TIME_WAIT connection kept its server's setting (none), so the new socket's option is not enough. 4.4BSD would allow this bind.");
  },
};
