/**
 * One end of a lab's connection between two network namespaces (namespaces.ts). A network
 * namespace holds processes, not sockets: a socket belongs to the namespace of the process that
 * made it. So the lab runs this small program inside each "host", with
 * `ip netns exec NS node netns-peer.js ...`, and drives it by stdin.
 *
 *     netns-peer.js listen HOST PORT                 accept connections, and keep them open
 *     netns-peer.js connect HOST PORT [KEEPALIVE_MS] connect; with KEEPALIVE_MS, setKeepAlive(true, KEEPALIVE_MS)
 *                                                   (0: SO_KEEPALIVE alone; the namespace's sysctls decide the rest)
 *
 * It prints one line of JSON for each thing that happens, the first saying it is ready
 * (`listening`, or `connected` with the socket pair), each with `at`, the wall clock in ms, so that
 * the lab can time what happened since it cut the link. Commands, one a line on stdin, apply to
 * every connection it holds: `write TEXT` (write(2)), `end` (shutdown(SHUT_WR): FIN, and keep the
 * descriptor), `exit` (the process exits: the kernel closes its sockets).
 */
import net from 'node:net';
import { createInterface } from 'node:readline';

type Report = Record<string, unknown>;

const report = (event: string, fields: Report = {}): void => void process.stdout.write(`${JSON.stringify({ event, at: Date.now(), ...fields })}\n`);

const sockets = new Set<net.Socket>();

/** Every way a connection ends is reported, once: the lab's whole question is how it ends. */
function watch(socket: net.Socket, name: string): void {
  sockets.add(socket);
  socket.on('data', (chunk: Buffer) => report('data', { socket: name, text: chunk.toString() }));
  socket.on('end', () => report('end', { socket: name }));
  socket.on('error', (error: NodeJS.ErrnoException) => report('error', { socket: name, code: error.code ?? error.message }));
  socket.on('close', () => sockets.delete(socket));
}

const [mode, host = '', portText = '', keepAliveText] = process.argv.slice(2);
const port = Number(portText);

if (mode === 'listen') {
  // allowHalfOpen: a client's FIN leaves the server's end in CLOSE_WAIT, open, until the lab says `end`.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    watch(socket, 'accepted');
    report('accepted', { local: { address: socket.localAddress, port: socket.localPort }, remote: { address: socket.remoteAddress, port: socket.remotePort } });
  });
  server.listen({ host, port }, () => report('listening', { port: (server.address() as net.AddressInfo).port }));
} else if (mode === 'connect') {
  const socket = net.connect({ host, port, allowHalfOpen: true }, () => {
    if (keepAliveText !== undefined) socket.setKeepAlive(true, Number(keepAliveText));
    report('connected', { local: { address: socket.localAddress, port: socket.localPort }, remote: { address: socket.remoteAddress, port: socket.remotePort } });
  });
  watch(socket, 'client');
} else {
  process.stderr.write('usage: netns-peer.js listen|connect HOST PORT [KEEPALIVE_MS]\n');
  process.exit(64);
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const [command, ...words] = line.split(' ');
  if (command === 'exit') process.exit(0);
  for (const socket of sockets) {
    if (command === 'write') socket.write(words.join(' '));
    else if (command === 'end') socket.end();
  }
  report('done', { command });
});
