/**
 * The baselines: the smallest correct Node servers for each protocol, with nothing else.
 * No logging, no lifecycle tracking, no limits. Whatever lab-server does on top of these is
 * what the benchmarks measure.
 *
 *     node dist/bench/baseline-servers.js echo|daytime [port]
 *
 * Like lab-server, it binds 127.0.0.1, prints one JSON line with `"event":"listening"` and the
 * port on stdout, and exits on SIGINT or SIGTERM.
 */
import net from 'node:net';
import { formatAsctime } from '../src/protocols/asctime.js';

/** A client's RST must not crash the baseline either: one no-op listener, the least a correct server does. */
const contain = (socket: net.Socket): net.Socket => socket.on('error', () => {});

const servers = {
  // pipe() is Node's own backpressure: it pauses reading while the write queue is full.
  echo: () => net.createServer((socket) => contain(socket).pipe(socket)),
  // Writes the line and sends FIN at once: the same active close as lab-server's daytime.
  daytime: () => net.createServer((socket) => contain(socket).end(`${formatAsctime(new Date())}\n`)),
};

const protocol = process.argv[2];
if (protocol !== 'echo' && protocol !== 'daytime') {
  process.stderr.write('usage: baseline-servers.js echo|daytime [port]\n');
  process.exit(64);
}
const server = servers[protocol]();
server.on('error', (error) => process.stderr.write(`baseline ${protocol}: ${error.message}\n`));
server.listen({ host: '127.0.0.1', port: Number(process.argv[3] ?? 0), backlog: 511 }, () => {
  const address = server.address() as net.AddressInfo;
  process.stdout.write(`${JSON.stringify({ event: 'listening', protocol, baseline: true, port: address.port })}\n`);
});
const stop = (): void => {
  server.close();
  process.exit(0);
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
