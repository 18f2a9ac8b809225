/**
 * idle-timeout: an inactivity timer. `lab-server --idle-timeout` counts the client's silence:
 * every byte the client sends restarts it (the server's own writes do not), so a chatty client
 * stays connected however long it stays, and a silent one is disconnected once the timer runs out.
 *
 * Stevens (UNP §7.5) describes SO_RCVTIMEO and SO_SNDTIMEO in Berkeley-derived systems as such
 * inactivity timers. Linux's SO_RCVTIMEO is something else, a limit on one blocking call
 * (socket(7): "if an input or output function blocks for this period of time ..."); the last
 * step shows the difference with a recv() that waits for more than one byte.
 */
import { echo } from '../protocols/echo.js';
import { LAB_HOST } from './context.js';
import { connectEchoPeer } from './echo-clients.js';
import type { Lab } from './lab.js';
import { reportSkipped, runPythonJson } from './python.js';

/** Short, so the lab is quick; `lab-server echo --idle-timeout <s>` sets it by hand. */
const IDLE_TIMEOUT_MS = 1000;
/** The chatty client writes this often: well inside the timer. */
const CHAT_INTERVAL_MS = 200;
/** Echoes the chatty client waits for before the silent one arrives: together longer than the timer. */
const CHAT_LINES_BEFORE_SILENT = 8;

/** The SO_RCVTIMEO step: one byte every TRICKLE_MS, a recv() for TRICKLE_BYTES, a RCVTIMEO_MS limit. */
const TRICKLE_MS = 100;
const TRICKLE_BYTES = 20;
const RCVTIMEO_MS = 500;

/**
 * A server thread writes one byte every TRICKLE_MS; the client sets SO_RCVTIMEO and asks
 * recv() for TRICKLE_BYTES with MSG_WAITALL (wait for them all). Prints what recv() returned
 * and when. An inactivity timer would wait the 2 s for all 20 bytes; a limit on the call
 * returns what has come when the time is up.
 */
const RCVTIMEO = `
import json, socket, struct, sys, threading, time
host, every_ms, count, timeout_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
listener = socket.socket(); listener.bind((host, 0)); listener.listen()
def trickle():
    conn, _ = listener.accept()
    for _ in range(count):
        time.sleep(every_ms / 1000); conn.send(b'.')
threading.Thread(target=trickle, daemon=True).start()
client = socket.create_connection(listener.getsockname())
client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack('ll', timeout_ms // 1000, timeout_ms % 1000 * 1000))
start = time.monotonic()
try:
    got = len(client.recv(count, socket.MSG_WAITALL)); error = None
except OSError as e:
    got = 0; error = e.strerror
print(json.dumps({'port': listener.getsockname()[1], 'bytes': got, 'ms': round((time.monotonic() - start) * 1000), 'error': error}))
`;

export const idleTimeout: Lab = {
  name: 'idle-timeout',
  summary: 'a silent client is disconnected after the inactivity timer, a chatty one is not',
  concept:
    'Textbook: Stevens (UNP §7.5) describes SO_RCVTIMEO and SO_SNDTIMEO, in Berkeley-derived systems, as inactivity ' +
    'timers, not deadlines for the whole exchange: each byte restarts them. A server uses such a timer to drop clients ' +
    "that went quiet; lab-server's counts the client's silence, restarted by every byte the client sends. Linux's SO_RCVTIMEO " +
    'is not one: it limits each blocking call (socket(7)).',
  async run(ctx) {
    ctx.step(`Start an echo server with a ${IDLE_TIMEOUT_MS / 1000} s idle timer (lab-server echo --idle-timeout ${IDLE_TIMEOUT_MS / 1000}).`);
    const { port } = await ctx.startServer({ protocol: echo, idleTimeoutMs: IDLE_TIMEOUT_MS });

    ctx.step(`A chatty client connects and sends a line every ${CHAT_INTERVAL_MS} ms.`);
    const chatty = await connectEchoPeer(ctx, port);
    const chattySince = performance.now();
    const ticker = setInterval(() => chatty.socket.write('tick\n'), CHAT_INTERVAL_MS);
    ctx.defer(() => clearInterval(ticker));
    for (let line = 1; line <= CHAT_LINES_BEFORE_SILENT; line++) await chatty.nextEcho(`echo ${line} of the chatty client`);
    ctx.say(`${CHAT_LINES_BEFORE_SILENT} echoes came back in ${Math.round(performance.now() - chattySince)} ms: longer than the timer, and still connected.`);

    ctx.step('A silent client connects and sends nothing.');
    const silent = await connectEchoPeer(ctx, port);
    const silentSince = performance.now();
    await ctx.until(silent.socket, 'end', 'the server to close the silent client', IDLE_TIMEOUT_MS + 5000);
    const silentFor = Math.round(performance.now() - silentSince);
    ctx.say(`the server closed the silent client after ${silentFor} ms`);
    ctx.expectFact('silent-closed', 'silent client closed by the server', `after ≥ ${IDLE_TIMEOUT_MS} ms`, silentFor >= IDLE_TIMEOUT_MS - 10 ? `after ≥ ${IDLE_TIMEOUT_MS} ms` : `after only ${silentFor} ms`);
    // The server closed first, so its end of the silent connection holds TIME_WAIT.
    await ctx.expectState({ id: 'silent-server', end: 'server', ...silent.ends.server, predicted: 'TIME_WAIT' });

    ctx.step('Meanwhile, the chatty client.');
    ctx.say(`connected for ${Math.round(performance.now() - chattySince)} ms, over ${Math.floor((performance.now() - chattySince) / IDLE_TIMEOUT_MS)}× the timer`);
    await ctx.expectState({ id: 'chatty-server', end: 'server', ...chatty.ends.server, predicted: 'ESTABLISHED' });
    clearInterval(ticker);

    ctx.step(`Linux's SO_RCVTIMEO (python3): a server sends a byte every ${TRICKLE_MS} ms; the client sets a ${RCVTIMEO_MS} ms SO_RCVTIMEO and asks recv(MSG_WAITALL) for ${TRICKLE_BYTES}.`);
    const trickled = await runPythonJson<{ port: number; bytes: number; ms: number; error: string | null }>(ctx, RCVTIMEO, [LAB_HOST, String(TRICKLE_MS), String(TRICKLE_BYTES), String(RCVTIMEO_MS)]);
    if (!trickled.ran) return reportSkipped(ctx, 'rcvtimeo', 'SO_RCVTIMEO on a trickle', trickled.why);
    ctx.watchPort(trickled.value.port); // the script said its port only once done: the capture kept its packets
    const { bytes, ms, error } = trickled.value;
    ctx.say(`recv() returned ${error ?? `${bytes} bytes`} after ${ms} ms`);
    // Bytes kept coming all along: an inactivity timer would never have fired before the 20th.
    const outcome = bytes === TRICKLE_BYTES ? 'all of them: the timer restarted with each byte' : bytes > 0 && ms < 2 * RCVTIMEO_MS ? 'what had come when the time was up' : `${bytes} bytes after ${ms} ms`;
    ctx.expectFact('rcvtimeo', `what recv() returned, of ${TRICKLE_BYTES} bytes`, 'what had come when the time was up', outcome);
    ctx.say(`A byte came every ${TRICKLE_MS} ms, yet the call ended at ${RCVTIMEO_MS} ms: on Linux the timeout bounds the whole call, not each silence.`);
  },
};
