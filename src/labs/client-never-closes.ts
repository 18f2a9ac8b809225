/**
 * client-never-closes (the close-states write-up, experiment 1): the client exits without
 * calling close(). Exit closes every descriptor, so the kernel sends the client's FIN anyway,
 * and the server, which closed first, ends in TIME_WAIT.
 *
 * Unless bytes are left unread: closing a socket whose receive buffer still holds data sends
 * RST instead of FIN (RFC 1122 §4.2.2.13; Linux: __tcp_close in net/ipv4/tcp.c, "data was
 * lost"). The second half shows that with a client that exits before reading its line.
 */
import { fileURLToPath } from 'node:url';
import { LabError } from '../errors.js';
import { formatSocketPair, socketEnds } from '../framework/endpoint.js';
import { bothEnds, LAB_HOST } from './context.js';
import { startDaytimeServer } from './daytime-session.js';
import type { Lab } from './lab.js';
import { reportSkipped, servePythonClient } from './python.js';
import { howItEnds } from './sockets.js';

/** The project's own client program, run as a separate process so that it can exit. */
const LAB_CLIENT = fileURLToPath(new URL('../cli/lab-client.js', import.meta.url));

/** What `lab-client --verbose` prints once connected: `socket pair {127.0.0.1:49356, 127.0.0.1:40941}`. */
const SOCKET_PAIR_LINE = /socket pair \{([\d.]+):(\d+), ([\d.]+):(\d+)\}/;

/**
 * A client that exits with its line unread: connect, wait (poll) until the line has arrived,
 * report how many bytes wait in the receive buffer (FIONREAD), then _exit(2) without close()
 * and without reading. The kernel closes the socket as part of the exit.
 */
const EXIT_UNREAD = `
import fcntl, json, os, select, socket, struct, sys, termios
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
arrived = select.poll(); arrived.register(s, select.POLLIN)
ready = arrived.poll(int(sys.argv[3]))
unread = struct.unpack('i', fcntl.ioctl(s, termios.FIONREAD, b'\\0' * 4))[0] if ready else 0
print(json.dumps({'local': list(s.getsockname()), 'unread': unread}), flush=True)
os._exit(0)
`;

/** The line the plain server of the second half writes, and then keeps its socket open. */
const LINE = 'a line the client will not read\n';

export const clientNeverCloses: Lab = {
  name: 'client-never-closes',
  summary: 'the client exits without close(): FIN and TIME_WAIT on the server; with unread data, RST and no TIME_WAIT',
  concept:
    'Textbook: when a process exits, the kernel closes its open descriptors, and a TCP socket closed that way ' +
    'sends FIN just as close() would. That holds when the client has read everything: closing a socket with data ' +
    'still unread in its receive buffer sends RST instead (RFC 1122 §4.2.2.13), and the peer sees ECONNRESET.',
  async run(ctx) {
    ctx.step('Start a daytime server; it writes the time and closes first.');
    const { port } = await startDaytimeServer(ctx);

    ctx.step(`Run the client as its own process: lab-client daytime ${LAB_HOST} --port ${port} --no-close --verbose`);
    ctx.say('It reads the line and exits without calling close().');
    const outcome = await ctx.runProcess(process.execPath, [LAB_CLIENT, 'daytime', LAB_HOST, '--port', String(port), '--no-close', '--verbose']);
    ctx.say(`the client printed: ${outcome.stdout.trimEnd()}`);
    ctx.expectFact('client-exit', 'the client process exit status', '0', String(outcome.code));
    // The client's own socket pair, as it printed it right after connect().
    const pair = SOCKET_PAIR_LINE.exec(outcome.stderr);
    if (pair === null) throw new LabError('ERR_LAB_NO_PAIR', `lab-client --verbose printed no socket pair: ${outcome.stderr.trim()}`);
    const ends = bothEnds({ address: pair[1]!, port: Number(pair[2]) }, { address: pair[3]!, port: Number(pair[4]) });
    ctx.say(`socket pair: client ${formatSocketPair(ends.client.local, ends.client.remote)}`);

    ctx.step('The process is gone. Ask the kernel about both ends.');
    await ctx.expectState({ id: 'server', end: 'server', ...ends.server, predicted: 'TIME_WAIT' });
    await ctx.expectState({ id: 'client', end: 'client', ...ends.client, predicted: 'none' });
    ctx.say("Exit closed the client's socket: its FIN reached the server, which closed first, so the server holds TIME_WAIT.");

    ctx.step('Now a client that exits with bytes unread. A plain server writes a line and keeps its socket open;');
    ctx.say('the client (python3) connects, waits until the line has arrived, and exits without reading it or calling close().');
    const peer = await servePythonClient<{ local: [string, number]; unread: number }>(ctx, EXIT_UNREAD, ['5000'], { id: 'exit-unread', subject: 'exit with unread data' });
    if (peer === undefined) return;
    const { socket, client: exiting } = peer;
    const ended = howItEnds(socket);
    socket.resume();
    socket.write(LINE);
    const { local: serverEnd, remote: clientEnd } = socketEnds(socket);
    const unreadEnds = bothEnds(clientEnd, serverEnd);
    const exited = await ctx.within(exiting, 'the client to exit');
    if (!exited.ran) return reportSkipped(ctx, 'exit-unread', 'exit with unread data', exited.why);
    ctx.say(`socket pair: server ${formatSocketPair(serverEnd, clientEnd)}; the client exited with ${exited.value.unread} bytes unread`);
    ctx.expectFact('exit-unread-bytes', 'bytes unread when the client exited', `${LINE.length}`, String(exited.value.unread));
    ctx.expectFact('exit-unread-server-sees', "what the server's socket sees", 'ECONNRESET', await ctx.within(ended, "the server's socket to end"));
    await ctx.expectState({ id: 'exit-unread-server', end: 'server', ...unreadEnds.server, predicted: 'none' });
    await ctx.expectState({ id: 'exit-unread-client', end: 'client', ...unreadEnds.client, predicted: 'none' });
    ctx.say('The exit sent RST, not FIN, because data would have been lost: no TIME_WAIT anywhere, and the server learns of it as an error.');
  },
};
