/**
 * time-wait: daytime closes first, so the server's end of the socket pair waits in TIME_WAIT
 * after the connection is gone, and the client's end, which closed second, is simply freed.
 */
import { statePath } from '../capture/connection-tracker.js';
import { KernelStateReporter } from '../observers/kernel-states.js';
import type { ConnectionEnds, LabContext } from './context.js';
import { openDaytimeSession, startDaytimeServer } from './daytime-session.js';
import type { Lab } from './lab.js';
import { capturedConnection } from './wire.js';
import { TCP_FLAGS } from '../capture/segment.js';

export const timeWait: Lab = {
  name: 'time-wait',
  summary: "daytime's active close leaves TIME_WAIT on the server's side, none on the client's",
  concept:
    'Textbook (RFC 793 §3.5): the side that sends the first FIN (the active close) passes through FIN_WAIT1 (and ' +
    "FIN_WAIT2, when the ACK of its FIN comes before the peer's FIN) into TIME_WAIT, and keeps the socket pair there for 2×MSL after its program has closed it; Linux " +
    'uses a fixed 60 s (TCP_TIMEWAIT_LEN in include/net/tcp.h). The other side (the passive close) goes ' +
    'CLOSE_WAIT → LAST_ACK → gone.',
  async run(ctx) {
    ctx.step('Start a daytime server (RFC 867) on a port the kernel picks, with its kernel-state report on.');
    const { server, port, events } = await startDaytimeServer(ctx);
    // The same report `lab-server daytime` logs after each close (src/observers/kernel-states.ts).
    // A lab has few connections to look up, so it reads the kernel's table however big that is.
    const reporter = new KernelStateReporter(server.events.stream, { maxTableRows: Infinity });
    ctx.defer(() => reporter.stop());

    ctx.step('Connect a daytime client: the server writes the time and closes first; the client reads to EOF and closes.');
    const session = await openDaytimeSession(ctx, port);
    await ctx.within(session.finished, 'the client to close');

    ctx.step('Ask the kernel (/proc/net/tcp) about both ends of the socket pair.');
    const serverEnd = await ctx.expectState({ id: 'server', end: 'server', ...session.ends.server, predicted: 'TIME_WAIT' });
    await ctx.expectState({ id: 'client', end: 'client', ...session.ends.client, predicted: 'none' });
    const left = serverEnd.remainingMs;
    ctx.expectFact('time-wait-length', "the server's TIME_WAIT timer", 'at most 60 s', left !== undefined && left > 0 && left <= 60_000 ? 'at most 60 s' : `${left ?? 'no'} ms`, {
      choices: ['no timer: it ends at once', 'at most 60 s', '4 min (2×MSL, with the 2 min MSL of RFC 793)'],
    });

    await followThePackets(ctx, session.ends);

    ctx.step("Read the server's own kernel-state report, published a moment after the close.");
    const report = await ctx.event(events, ['kernel-state', 'kernel-state-skipped', 'kernel-state-failed'], "the server's kernel-state report");
    if (report.type !== 'kernel-state') {
      // The reporter chose not to look (or could not): that says nothing about the kernel.
      ctx.report('server-log', 'state in the server log', `not reported (${report.type === 'kernel-state-skipped' ? report.reason : report.message})`);
      return;
    }
    ctx.say(`kernel state of connection #${report.conn}: ${report.explanation}`);
    ctx.expectFact('server-log', 'state in the server log', 'TIME_WAIT', String(report.state));
  },
};

/**
 * With a capture, the states the kernel's table shows only for an instant: FIN_WAIT1 lasts until
 * the peer's ACK comes back, a few milliseconds on loopback; LAST_ACK less.
 */
async function followThePackets(ctx: LabContext, ends: ConnectionEnds): Promise<void> {
  // No ladder asked for (--no-ladder, or the API's default): nothing to follow, nothing to say.
  if (!ctx.capturing && ctx.packetsUnavailable === undefined) return;
  ctx.step('Follow both ends through the captured packets (the ladder below): the short-lived states a table read misses.');
  const connection = await capturedConnection(ctx, ends, 'packets', 'the short-lived states, from packets');
  if (connection === undefined) return;
  const server = statePath(connection, 'server');
  const client = statePath(connection, 'client');
  ctx.say(`server: ${server.join(' → ')}`);
  ctx.say(`client: ${client.join(' → ')}`);
  const firstFin = connection.steps.find((step) => step.segment.flags & TCP_FLAGS.FIN);
  ctx.expectFact('first-fin', 'who sent the first FIN', 'the server', firstFin === undefined ? 'nobody' : `the ${firstFin.from}`);
  const activeClose = server.includes('FIN_WAIT1') && server.at(-1) === 'TIME_WAIT';
  ctx.expectFact('server-path', 'server went FIN_WAIT1 … TIME_WAIT', 'yes', activeClose ? 'yes' : server.join(' → '));
  const passiveClose = client.slice(-3).join(' → ') === 'CLOSE_WAIT → LAST_ACK → CLOSED';
  ctx.expectFact('client-path', 'client went CLOSE_WAIT → LAST_ACK → CLOSED', 'yes', passiveClose ? 'yes' : client.join(' → '));
  // Linux delays the ACK of a FIN (it enters "pingpong" mode in tcp_fin()): when the client's
  // program closes at once, its FIN carries that ACK, and the server skips FIN_WAIT2.
  ctx.report('fin-wait2', 'FIN_WAIT2 on the server', server.includes('FIN_WAIT2') ? 'yes: the ACK of its FIN came alone, before the client\'s FIN' : "no: the client's FIN carried the ACK of the server's FIN (a delayed ACK), so FIN_WAIT1 went straight to TIME_WAIT");
}
