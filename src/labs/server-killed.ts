/**
 * server-killed (Stevens UNP §5.12, "Termination of Server Process", and §5.13, SIGPIPE): the
 * server process is killed while clients are connected.
 *
 * A process that dies does not close its sockets; the kernel does, as part of its exit, and a
 * socket closed with nothing left unread sends FIN, as close() would. The server's end is then an
 * orphan: no descriptor, no program behind it. What happens next depends on the client:
 *
 * - a C client that is busy elsewhere (UNP's is blocked in fgets) has not read the FIN; its
 *   write is accepted, the data reaches the orphan, and the server's kernel answers RST (RFC 9293
 *   §3.6.1: data received after CLOSE "SHOULD" draw a reset; Linux: tcp_timewait_state_process,
 *   "If new data arrive after half-duplex close, reset"). Its read returns 0, the FIN; its next
 *   write fails with EPIPE and raises SIGPIPE, which kills a C program that did not ask otherwise.
 * - a Node client reads all the time, so it sees the FIN at once ('end'); with the default
 *   allowHalfOpen false, Node ends its own side right away, and a later write fails in Node itself
 *   with EPIPE ("This socket has been ended by the other party") before any system call.
 *
 * The server is a real process, `lab-server echo`, killed by its PID.
 */
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { LabError } from '../errors.js';
import { formatSocketPair } from '../framework/endpoint.js';
import { bothEnds, describeHolder, EVENT_DEADLINE_MS, LAB_HOST, type ConnectionEnds, type LabContext } from './context.js';
import { connectEchoPeer, type EchoPeer } from './echo-clients.js';
import type { Lab } from './lab.js';
import { reportSkipped, startPython } from './python.js';
import { howItEnds } from './sockets.js';
import { capturedConnection, closingSegments } from './wire.js';

/** The project's own server program, run as a separate process so that it can be killed. */
const LAB_SERVER = fileURLToPath(new URL('../cli/lab-server.js', import.meta.url));

/** How long the C client waits for the reset after its write (poll() returns as soon as it comes). */
const RESET_DEADLINE_MS = 5000;

/**
 * The C client, in python3's thin wrappers of the system calls: connect, send a line, read its
 * echo, then wait (on stdin) while the lab kills the server, reading nothing, like UNP's str_cli
 * blocked in fgets. Then write, wait for the reset, read, write again, and write once more in a
 * child process that keeps SIGPIPE's default action, as a C program does (python3, like Node,
 * ignores SIGPIPE and gets EPIPE instead).
 */
const C_CLIENT = `
import errno, json, os, select, signal, socket, sys
host, port, deadline_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def call(f):
    try: return f()
    except OSError as e: return errno.errorcode.get(e.errno, str(e.errno))
s = socket.create_connection((host, port))
s.sendall(b'first line\\n')
print(json.dumps({'local': list(s.getsockname()), 'echoed': s.recv(64).decode()}), flush=True)
sys.stdin.read()
out = {'write': call(lambda: s.send(b'second line\\n'))}
# poll() for no events: POLLERR and POLLHUP are always reported, and here only a reset sets them
# (the FIN alone shut one direction: neither).
waiting = select.poll(); waiting.register(s, 0)
ready = waiting.poll(deadline_ms)
out['poll'] = ' '.join(f for f, bit in (('POLLERR', select.POLLERR), ('POLLHUP', select.POLLHUP)) if ready and ready[0][1] & bit) or 'nothing'
out['read'] = call(lambda: len(s.recv(64)))
out['write_again'] = call(lambda: s.send(b'third line\\n'))
child = os.fork()
if child == 0:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    s.send(b'fourth line\\n')
    os._exit(0)
_, status = os.waitpid(child, 0)
out['child'] = signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) else 'exit %d' % os.WEXITSTATUS(status)
print(json.dumps(out), flush=True)
`;

interface CClientReady {
  local: [string, number];
  echoed: string;
}

interface CClientReport {
  /** What each call returned: a byte count, or the errno's name. */
  write: number | string;
  poll: string;
  read: number | string;
  write_again: number | string;
  /** How the child that wrote with SIGPIPE's default action ended: a signal's name or `exit N`. */
  child: string;
}

/** A call's result as a student would say it. */
const describeCall = (result: number | string): string => (typeof result === 'string' ? result : result === 0 ? '0 (end of file)' : `${result} bytes`);

export const serverKilled: Lab = {
  name: 'server-killed',
  summary: "the server process is killed: its kernel sends FIN; a client's next write draws RST, and the write after that fails with EPIPE",
  concept:
    'Textbook (Stevens UNP §5.12–5.13): when a server process is killed, the kernel closes its descriptors, so each of its ' +
    "connections sends FIN, as close() would. A client that is not reading does not notice: its write is accepted, the data " +
    "reaches a socket no program holds, and the server's kernel answers RST. The client's read returns 0 (the FIN); its next " +
    'write fails with EPIPE, and raises SIGPIPE. A Node client reads all the time, so it sees the FIN at once, and by default ' +
    '(allowHalfOpen false) closes its side too.',
  async run(ctx) {
    ctx.step(`Start an echo server as its own process: lab-server echo --port 0 --host ${LAB_HOST} --log-format json`);
    const server = await ctx.startProcess<{ event?: string; port?: number }>(process.execPath, [LAB_SERVER, 'echo', '--port', '0', '--host', LAB_HOST, '--log-format', 'json'], 'lab-server echo');
    const { event, port } = server.ready;
    if (event !== 'listening' || port === undefined) throw new LabError('ERR_LAB_SCRIPT', `lab-server echo's first log line is not "listening": ${JSON.stringify(server.ready)}`);
    ctx.watchPort(port);
    ctx.say(`lab-server echo, PID ${server.pid}, listening on ${LAB_HOST}:${port} (from its JSON "listening" line)`);

    ctx.step('Two clients connect and each gets a line echoed: a Node client (net.connect) and a C-style client (python3: plain send() and recv()).');
    const node = await connectEchoPeer(ctx, port);
    const nodeEcho = node.nextEcho("the Node client's echo");
    node.socket.write('first line\n');
    ctx.say(`Node client ${formatSocketPair(node.ends.client.local, node.ends.client.remote)} got back ${JSON.stringify(await nodeEcho)}`);
    const started = await startPython<CClientReady>(ctx, C_CLIENT, [LAB_HOST, String(port), String(RESET_DEADLINE_MS)]);
    if (!started.ran) reportSkipped(ctx, 'c-client', "the C client's write after the FIN", started.why);
    const c = started.ran ? { process: started.value, ends: bothEnds({ address: started.value.ready.local[0], port: started.value.ready.local[1] }, { address: LAB_HOST, port }) } : undefined;
    if (c !== undefined) ctx.say(`C client ${formatSocketPair(c.ends.client.local, c.ends.client.remote)} got back ${JSON.stringify(c.process.ready.echoed)}; now it waits, reading nothing`);

    ctx.step(`Kill the server: kill -KILL ${server.pid}. A killed process closes nothing itself; its exit does, in the kernel.`);
    // The Node client reads all the time: what it sees must be listened for before it happens.
    const nodeSaw = howItEnds(node.socket);
    const nodeClosed = once(node.socket, 'close');
    ctx.expectFact('killed', 'how the server process ended', 'SIGKILL', await server.kill('SIGKILL'));

    if (c !== undefined) await finTo(ctx, c.ends);

    ctx.step("The Node client was reading, so it saw the FIN at once; allowHalfOpen is false by default, so Node ended its side too.");
    await nodeSeesFin(ctx, node, nodeSaw, nodeClosed);

    if (c === undefined) return;
    ctx.step('The C client writes a line, as UNP\'s does once fgets returns; then poll(), read(), write() again, and write() in a child that keeps SIGPIPE\'s default.');
    c.process.endInput();
    // Its poll() may wait RESET_DEADLINE_MS for a reset that never comes: then the lab says so, as a ✗.
    const report = await c.process.next<CClientReport>('the C client to write after the FIN', RESET_DEADLINE_MS + EVENT_DEADLINE_MS);
    ctx.expectFact('c-write', "the C client's write after the FIN", 'accepted: 12 bytes', typeof report.write === 'number' ? `accepted: ${report.write} bytes` : report.write);
    ctx.say("The FIN said only that the server will send nothing more; the client's kernel takes the data and sends it.");
    // POLLERR: an error is waiting (the reset); POLLHUP: both directions are now shut.
    ctx.expectFact('c-reset', 'poll() after the write', 'POLLERR POLLHUP', report.poll);
    ctx.say("The data reached a socket no program holds, and the server's kernel answered RST.");
    ctx.expectFact('c-read', 'read()', '0 (end of file)', describeCall(report.read));
    ctx.say('read() returns the FIN first, as UNP\'s readline does ("server terminated prematurely"): it never reports the reset.');
    // tcp_reset (net/ipv4/tcp_input.c) stores EPIPE, not ECONNRESET, when the reset finds the socket in CLOSE_WAIT.
    ctx.expectFact('c-write-again', 'write() after the reset', 'EPIPE', describeCall(report.write_again));
    ctx.expectFact('c-sigpipe', "a write, with SIGPIPE's default action", 'SIGPIPE', report.child);
    ctx.say('python3 and Node ignore SIGPIPE and see EPIPE; a C program that does not is killed by the signal (UNP §5.13).');
    await ctx.expectState({ id: 'c-client-after', end: 'client', ...c.ends.client, predicted: 'none' });
    await ctx.expectState({ id: 'c-server-after', end: 'server', ...c.ends.server, predicted: 'none' });
    ctx.say('The reset ended both ends at once: nothing is left, not even TIME_WAIT.');
    const wire = await capturedConnection(ctx, c.ends, 'c-wire', "the C client's connection, from packets");
    if (wire !== undefined) ctx.expectFact('c-wire', "the killed server's end, on the wire", 'FIN then RST', closingSegments(wire, 'server'));
  },
};

/** The C client's connection right after the kill: the FIN has come, and no program has reacted. */
async function finTo(ctx: LabContext, ends: ConnectionEnds): Promise<void> {
  ctx.step("Ask the kernel about the C client's connection.");
  await ctx.expectState({ id: 'c-server', end: 'server', ...ends.server, predicted: 'FIN_WAIT2' });
  await ctx.expectKernel('c-server-holder', "the server's end held by", ends.server.local, ends.server.remote, 'no descriptor (orphan)', describeHolder);
  await ctx.expectState({ id: 'c-client', end: 'client', ...ends.client, predicted: 'CLOSE_WAIT' });
  ctx.say("The exit closed the server's socket with a FIN, and the client's kernel acknowledged it: the server's end waits in FIN_WAIT2 with no process behind it,");
  ctx.say("the client's in CLOSE_WAIT. Its program has read nothing, so it knows nothing yet.");
}

/** The Node client's connection: it saw the FIN, ended its side, and a later write fails in Node. */
async function nodeSeesFin(ctx: LabContext, node: EchoPeer, saw: Promise<string>, closed: Promise<unknown>): Promise<void> {
  ctx.expectFact('node-sees', 'what the Node client saw', 'end of file (FIN)', await ctx.within(saw, 'the Node client to see the FIN'));
  await ctx.within(closed, "the Node client's socket to close");
  await ctx.expectState({ id: 'node-server', end: 'server', ...node.ends.server, predicted: 'TIME_WAIT' });
  await ctx.expectState({ id: 'node-client', end: 'client', ...node.ends.client, predicted: 'none' });
  ctx.say("Node's FIN answered the server's: the dead server's end closed first, so it holds TIME_WAIT, with no process behind it.");
  // Node's socket, ended on both sides, fails a write before any system call (writeAfterFIN in lib/net.js).
  const refused = await new Promise<NodeJS.ErrnoException | null | undefined>((resolve) => node.socket.write('second line\n', resolve));
  ctx.expectFact('node-write', 'a write after that', 'EPIPE', refused?.code ?? 'no error');
  if (refused) ctx.say(`Node refused the write itself ("${refused.message}"): nothing was sent, so nothing drew a reset.`);
  const wire = await capturedConnection(ctx, node.ends, 'node-wire', "the Node client's connection, from packets");
  if (wire !== undefined) ctx.expectFact('node-wire', 'how each end closed, on the wire', 'server FIN, client FIN', `server ${closingSegments(wire, 'server')}, client ${closingSegments(wire, 'client')}`);
}
