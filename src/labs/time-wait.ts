/**
 * time-wait: daytime closes first, so the server's end of the socket pair waits in TIME_WAIT
 * after the connection is gone, and the client's end, which closed second, is simply freed.
 */
import { KernelStateReporter } from '../observers/kernel-states.js';
import { openDaytimeSession, startDaytimeServer } from './daytime-session.js';
import type { Lab } from './lab.js';

export const timeWait: Lab = {
  name: 'time-wait',
  summary: "daytime's active close leaves TIME_WAIT on the server's side, none on the client's",
  concept:
    'Textbook (RFC 793 §3.5): the side that sends the first FIN (the active close) passes through FIN_WAIT_1 and ' +
    'FIN_WAIT_2 into TIME_WAIT, and keeps the socket pair there for 2×MSL after its program has closed it; Linux ' +
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
    ctx.expectFact('time-wait-length', "the server's TIME_WAIT timer", 'at most 60 s', left !== undefined && left > 0 && left <= 60_000 ? 'at most 60 s' : `${left ?? 'no'} ms`);

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
