/**
 * rst: an abortive close. close(2) with SO_LINGER {on, 0 s} sends RST instead of FIN
 * (Linux: __tcp_close in net/ipv4/tcp.c; Stevens UNP §7.5). What the reset does, as this lab
 * checks it:
 *
 * - bytes that had already reached the peer stay in its receive buffer: a plain read(2) returns
 *   them first, then fails once with ECONNRESET, then returns 0 (tcp_recvmsg reads the queue
 *   before it looks at the socket's error, and taking the error clears it);
 * - bytes the resetting side had written but its kernel had not sent yet are thrown away;
 * - there is no FIN, so neither end enters TIME_WAIT: both sockets are gone at once.
 *
 * The readers are python3 (python.ts): a Node socket reads on its own and, when the RST comes
 * before its connect() has finished, reports only the failed connect (step 4 shows why).
 * The server of the last step is a plain node:net server, so that the lab holds its socket.
 */
import { LabError } from '../errors.js';
import { formatSocketPair, socketEnds } from '../framework/endpoint.js';
import { bothEnds, LAB_HOST } from './context.js';
import { startDaytimeServer } from './daytime-session.js';
import type { Lab } from './lab.js';
import { reportSkipped, runPythonJson, servePythonClient } from './python.js';
import { expectZeroWindowProbe, queues } from './windows.js';

/** How long a reader waits for the reset before it gives up (python's poll() takes milliseconds). */
const RESET_DEADLINE_MS = 5000;

/**
 * The reader, in one of three modes:
 * - `blocking`: daytime.c's way, a blocking connect(), then read();
 * - `nonblocking`: an event loop's way (libuv's, under Node), connect() returns EINPROGRESS and
 *   the outcome is asked for later with getsockopt(SO_ERROR);
 * - `drain`: a blocking connect(), then no read at all until the reset has come; then read
 *   everything left, counting bytes.
 * It waits for the reset with poll(2) asking for no events: POLLERR and POLLHUP are always
 * reported, and only a reset (or both directions closed) sets them. A FIN alone would not.
 */
const READER = `
import errno, json, select, socket, sys
host, port, mode, deadline_ms = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
name = lambda e: errno.errorcode.get(e, str(e))
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
out = {}
if mode == 'nonblocking':
    s.setblocking(False)
    out['connect'] = name(s.connect_ex((host, port)))
else:
    try:
        s.connect((host, port))
        out['connect'] = 'ok'
    except OSError as e:
        print(json.dumps({'connect': name(e.errno)})); sys.exit(0)
out['local'] = list(s.getsockname())
waiting = select.poll(); waiting.register(s, 0)
if not waiting.poll(deadline_ms):
    out['timeout'] = True; print(json.dumps(out)); sys.exit(0)
looking = select.poll(); looking.register(s, select.POLLIN)
revents = looking.poll(0)[0][1]
out['poll'] = ' '.join(f for f, bit in (('POLLIN', select.POLLIN), ('POLLERR', select.POLLERR), ('POLLHUP', select.POLLHUP)) if revents & bit)
if mode == 'nonblocking':
    out['so_error'] = name(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
def read():
    try:
        data = s.recv(1 << 20)
        return {'bytes': len(data), 'text': data[:64].decode('ascii', 'replace')}
    except OSError as e:
        return {'error': name(e.errno)}
if mode == 'drain':
    received = 0
    while True:
        r = read()
        if r.get('bytes', 0) == 0: break
        received += r['bytes']
    out.update(received=received, end=r, after=read())
else:
    out['reads'] = [read(), read(), read()]
print(json.dumps(out))
`;

interface ReadResult {
  bytes?: number;
  text?: string;
  error?: string;
}

interface ReaderReport {
  connect: string;
  local?: [string, number];
  timeout?: true;
  poll?: string;
  so_error?: string;
  reads?: ReadResult[];
  received?: number;
  end?: ReadResult;
  after?: ReadResult;
}

/** An asctime(3) line as daytime sends it: `Sun Nov 22 00:58:44 2026\n`, 25 bytes. */
const TIME_LINE = /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\n$/;

/** One read(2) result as a student would say it. */
function describeRead(result: ReadResult | undefined): string {
  if (result === undefined) return 'no read';
  if (result.error !== undefined) return result.error;
  if (result.bytes === 0) return '0 (end of file)';
  return TIME_LINE.test(result.text ?? '') ? `the time line, ${result.bytes} bytes` : `${result.bytes} bytes`;
}

/** The reader's report, or the lab fails with what went wrong before the reads. */
function checkedReport(report: ReaderReport, expectedConnect: string): ReaderReport & { local: [string, number] } {
  if (report.connect !== expectedConnect || report.local === undefined) {
    throw new LabError('ERR_LAB_RESET_EARLY', `the reader's connect() returned ${report.connect}, not ${expectedConnect}: the reset came before the handshake was done`);
  }
  if (report.timeout === true) {
    throw new LabError('ERR_LAB_STUCK', `the reader saw no reset within ${RESET_DEADLINE_MS / 1000} s`);
  }
  return report as ReaderReport & { local: [string, number] };
}

/** 1 MiB: more than the client's receive buffer holds, less than the server's send buffer grows to. */
const WRITTEN = 1 << 20;

export const rst: Lab = {
  name: 'rst',
  summary: 'abortive close (SO_LINGER 0): RST; bytes already arrived are still read, unsent ones are lost; no TIME_WAIT',
  concept:
    'Textbook: close() with SO_LINGER {on, 0 s} discards the data not yet sent and sends RST (Stevens UNP §7.5). ' +
    'There is no FIN exchange, so nothing waits in TIME_WAIT, and the peer learns of it as an error, ECONNRESET, ' +
    'not as an end of file. What the reset does not take back is what has already arrived: on Linux the peer can still read it.',
  async run(ctx) {
    ctx.step('Start a daytime server that writes the time, then closes with RST (lab-server daytime --close rst).');
    const { port } = await startDaytimeServer(ctx, { closePolicy: { mode: 'rst', delayMs: 0 } });
    const args = (mode: string): string[] => [LAB_HOST, String(port), mode, String(RESET_DEADLINE_MS)];

    ctx.step("A plain reader, like daytime.c: connect(), wait until poll() reports the reset, then read() three times.");
    const blocking = await runPythonJson<ReaderReport>(ctx, READER, args('blocking'));
    if (!blocking.ran) return reportSkipped(ctx, 'reads', 'the reads after a reset', blocking.why);
    const reader = checkedReport(blocking.value, 'ok');
    const ends = bothEnds({ address: reader.local[0], port: reader.local[1] }, { address: LAB_HOST, port });
    ctx.say(`socket pair: client ${formatSocketPair(ends.client.local, ends.client.remote)}`);
    // POLLERR: the socket has an error to report (the reset); POLLHUP: both directions are shut.
    ctx.expectFact('poll', 'poll() once the reset has come', 'POLLIN POLLERR POLLHUP', reader.poll ?? 'nothing');
    ctx.expectFact('read-1', 'first read()', 'the time line, 25 bytes', describeRead(reader.reads?.[0]));
    ctx.expectFact('read-2', 'second read()', 'ECONNRESET', describeRead(reader.reads?.[1]));
    ctx.expectFact('read-3', 'third read()', '0 (end of file)', describeRead(reader.reads?.[2]));
    ctx.say('The line arrived before the RST, and the reset did not take it back: read() returns it first.');
    ctx.say('Then read() reports the reset, once; after that the socket reads as closed.');

    ctx.step('Ask the kernel about both ends.');
    await ctx.expectState({ id: 'server', end: 'server', ...ends.server, predicted: 'none' });
    await ctx.expectState({ id: 'client', end: 'client', ...ends.client, predicted: 'none' });
    ctx.say('No FIN, so no TIME_WAIT on either side: the RST ended both sockets at once.');

    ctx.step("An event loop's reader (libuv's, under Node): a non-blocking connect(), then getsockopt(SO_ERROR) once the reset has come.");
    const nonblocking = await runPythonJson<ReaderReport>(ctx, READER, args('nonblocking'));
    if (!nonblocking.ran) return reportSkipped(ctx, 'so-error', 'SO_ERROR after a reset', nonblocking.why);
    const loop = checkedReport(nonblocking.value, 'EINPROGRESS');
    ctx.say(`connect() returned ${loop.connect}: the handshake finishes later, and SO_ERROR tells how it went`);
    ctx.expectFact('so-error', 'getsockopt(SO_ERROR)', 'ECONNRESET', loop.so_error ?? 'none');
    const after = (loop.reads ?? []).slice(0, 2).map(describeRead).join(', then ');
    ctx.expectFact('after-so-error', 'read(), twice, after that', 'the time line, 25 bytes, then 0 (end of file)', after);
    ctx.say('SO_ERROR handed over the reset, so the reads no longer report it, and the line is still there.');
    ctx.say('libuv finishes a connect() this way; when the RST is already in, Node reports "connect ECONNRESET" and never reads the line.');

    ctx.step(`What the reset throws away: a plain server writes ${WRITTEN} bytes to a client that reads nothing, then resets.`);
    const peer = await servePythonClient<ReaderReport>(ctx, READER, ['drain', String(RESET_DEADLINE_MS)], { id: 'discard', subject: 'what a reset throws away' });
    if (peer === undefined) return;
    const { socket, client: draining } = peer;
    // The server's own view of the pair (getsockname, getpeername); the client's is its mirror.
    const { local: serverEnd, remote: clientEnd } = socketEnds(socket);
    const pair = bothEnds(clientEnd, serverEnd);
    ctx.say(`socket pair: server ${formatSocketPair(pair.server.local, pair.server.remote)}`);
    // The write callback runs once the kernel has taken every byte into the socket's send buffer.
    await ctx.within(
      new Promise<void>((resolve, reject) => socket.write(Buffer.alloc(WRITTEN, '.'), (error) => (error ? reject(error) : resolve()))),
      `the server's kernel to take all ${WRITTEN} bytes`,
    );
    // The client's receive buffer fills, it advertises a zero window, and the server's kernel,
    // holding the rest, arms its zero-window probe timer (RFC 1122 §4.2.2.17): from then on
    // nothing moves until someone reads or resets.
    await expectZeroWindowProbe(ctx, 'discard-window', pair.server);
    const { received: unread, unsent } = await queues(pair.client, pair.server);
    ctx.say(`the client's kernel holds ${unread} bytes it has not read (Recv-Q); the server's holds ${unsent} it could not send (Send-Q)`);
    ctx.expectFact('discard-accounted', "client's Recv-Q + server's Send-Q", `${WRITTEN} bytes`, `${unread + unsent} bytes`);

    socket.resetAndDestroy(); // SO_LINGER {on, 0}, then close(2)
    const drained = await ctx.within(draining, 'the client to read what is left');
    if (!drained.ran) return reportSkipped(ctx, 'discard', 'what a reset throws away', drained.why);
    const client = checkedReport(drained.value, 'ok');
    const received = client.received ?? 0;
    ctx.say(`the client read ${received} bytes, then: ${describeRead(client.end)}`);
    ctx.expectFact('discard-read', `bytes the client read (its Recv-Q held ${unread})`, 'all of its Recv-Q', received === unread ? 'all of its Recv-Q' : `${received} bytes`);
    ctx.expectFact('discard-lost', `bytes delivered, of ${WRITTEN} written`, 'fewer than written', received < WRITTEN ? 'fewer than written' : `all ${received}`);
    ctx.expectFact('discard-error', 'the read after them (no FIN came)', 'ECONNRESET', describeRead(client.end));
    ctx.say(`The RST threw away the ${WRITTEN - received} bytes still in the server's send buffer: its program had written them, and they never left.`);
    await ctx.expectState({ id: 'discard-server', end: 'server', ...pair.server, predicted: 'none' });
    await ctx.expectState({ id: 'discard-client', end: 'client', ...pair.client, predicted: 'none' });
  },
};
