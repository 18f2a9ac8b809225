/**
 * ephemeral-ports (Stevens UNP §2.9, "Port Numbers"; TCP/IP Illustrated vol. 1 §13.2.3; tcp(7),
 * ip(7) ip_local_port_range): a client that connects without bind() gets a port the kernel picks
 * from net.ipv4.ip_local_port_range. What must be unique is the whole socket pair, not the port: a
 * port may serve connections to many destinations at once. Each connection the client closed first
 * leaves TIME_WAIT holding its socket pair for 60 s; when every port of the range is held that
 * way towards one destination, connect() to it fails with EADDRNOTAVAIL, while another destination
 * still gets a port. net.ipv4.tcp_tw_reuse lets connect() take over a TIME_WAIT pair once its last
 * segment is more than a second old (with TCP timestamps on, which tell old segments from new);
 * Linux's default, 2, allows that on loopback only.
 *
 * The lab needs a range of 4 ports, which it sets in a network namespace of its own, with
 * tcp_tw_reuse 0 to start with; the machine's range and its connections are left alone.
 */
import { readFile } from 'node:fs/promises';
import type { Lab } from './lab.js';
import { namespacesUnavailable, privateHost, procRootOf } from './namespaces.js';
import { readTcpSockets } from '../tcp-states/read.js';

const FIRST_PORT = 40000;
const LAST_PORT = 40003;
const RANGE = `${FIRST_PORT} ${LAST_PORT}`;
const HOST = '127.0.0.1';
/**
 * The two servers' ports, fixed and outside the range: a listener on port 0 would take a port from
 * the same tiny range. Nothing else listens in the lab's own namespace.
 */
const SERVER_PORTS = [5000, 5001] as const;

/**
 * Inside the namespace: two servers that close after the client (so the client's end is the one in
 * TIME_WAIT); one connection, closed by the client, for each port of the range; then one connect()
 * more to the first server and one to the second. Prints what happened as one line of JSON, and
 * keeps its sockets until its stdin ends. With `again` (while the first program still serves),
 * tries the first server every 200 ms, for at most 5 s, until a connect() succeeds (tcp_tw_reuse).
 */
const FILL_THE_RANGE = `
const net = require('node:net');
const [count, mode] = [Number(process.argv[1]), process.argv[2]];
const report = (value) => process.stdout.write(JSON.stringify(value) + '\\n');
const listen = (port) => new Promise((resolve) => { const server = net.createServer((s) => s.on('error', () => {})); server.listen(port, '${HOST}', () => resolve(port)); });
const connect = (port) => new Promise((resolve) => {
  const socket = net.connect(port, '${HOST}');
  socket.once('error', (error) => resolve({ error: error.code }));
  socket.once('connect', () => resolve({ socket, port: socket.localPort }));
});
const closeFirst = (socket) => new Promise((resolve) => { socket.once('close', resolve); socket.end(); });
(async () => {
  const first = ${SERVER_PORTS[0]};
  const out = { server: first, ports: [] };
  if (mode !== 'again') await listen(first);
  if (mode === 'again') {
    const start = Date.now();
    for (let attempt = 1; Date.now() - start < 5000; attempt += 1) {
      const result = await connect(first);
      if (result.socket) { Object.assign(out, { port: result.port, attempts: attempt, afterMs: Date.now() - start }); break; }
      out.error = result.error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } else {
    for (let i = 0; i < count; i += 1) {
      const result = await connect(first);
      if (!result.socket) { out.early = result.error; break; }
      out.ports.push(result.port);
      await closeFirst(result.socket);
    }
    out.sameDestination = (await connect(first)).error ?? 'connected';
    const second = await listen(${SERVER_PORTS[1]});
    const other = await connect(second);
    Object.assign(out, { second, otherDestination: other.error ?? 'connected', otherPort: other.port });
  }
  report(out);
  process.stdin.resume().on('end', () => process.exit(0));
})();
`;

interface Filled {
  server: number;
  ports: number[];
  early?: string;
  sameDestination: string;
  second: number;
  otherDestination: string;
  otherPort?: number;
}

interface Again {
  port?: number;
  attempts?: number;
  afterMs?: number;
  error?: string;
}

export const ephemeralPorts: Lab = {
  name: 'ephemeral-ports',
  summary: 'clients get ports from ip_local_port_range; a range all in TIME_WAIT towards one server makes connect() fail with EADDRNOTAVAIL',
  concept:
    'Textbook (Stevens UNP §2.9; TCP/IP Illustrated vol. 1 §13.2.3): a client that does not bind() gets an ephemeral port from the ' +
    "kernel's range (net.ipv4.ip_local_port_range). A connection is its socket pair, so a port can serve many destinations at once; but " +
    'each connection the client closed first holds its pair in TIME_WAIT, and when every port of the range is held towards one ' +
    'destination, connect() to it fails with EADDRNOTAVAIL, unless tcp_tw_reuse lets it take over a TIME_WAIT pair.',
  needs: namespacesUnavailable,
  noLadder: "its packets cross the loopback of the lab's own network namespace, not the machine's lo, so the capture does not see them",
  async run(ctx) {
    const machine = (await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/).join('–');
    ctx.step(`This machine's ephemeral range is ${machine}. Make a host of our own with a range of 4 ports, ${FIRST_PORT}–${LAST_PORT}, and tcp_tw_reuse 0.`);
    const host = await privateHost(ctx, { 'net.ipv4.ip_local_port_range': RANGE, 'net.ipv4.tcp_tw_reuse': 0 });
    ctx.report('machine-range', "this machine's net.ipv4.ip_local_port_range", machine);
    ctx.say(`ip netns exec ${host.name} sysctl -w net.ipv4.ip_local_port_range="${RANGE}" net.ipv4.tcp_tw_reuse=0`);

    const count = LAST_PORT - FIRST_PORT + 1;
    ctx.step(`A client connects to a server ${count} times without bind(), closing first each time (so its end keeps TIME_WAIT); then once more; then to a second server.`);
    const filler = await host.start<Filled>(ctx, [process.execPath, '-e', FILL_THE_RANGE, String(count)], 'the client program');
    const filled = filler.ready;
    ctx.say(`the client's ports: ${filled.ports.join(', ')} (Linux tries even ports first for connect(), and leaves odd ones to bind(): fewer collisions between the two)`);
    ctx.expectFact('ports-in-range', 'each port the kernel picked', `inside ${FIRST_PORT}–${LAST_PORT}`, filled.ports.length === count && filled.ports.every((p) => p >= FIRST_PORT && p <= LAST_PORT) ? `inside ${FIRST_PORT}–${LAST_PORT}` : `${filled.ports.join(', ')}${filled.early === undefined ? '' : `, then ${filled.early}`}`);
    const table = await readTcpSockets({ procRoot: procRootOf(filler), port: filled.server });
    const waiting = table.filter((row) => row.state === 'TIME_WAIT' && row.remote.port === filled.server).map((row) => row.local.port).sort();
    ctx.expectFact('time-wait', `client ends in TIME_WAIT towards port ${filled.server}`, String(count), String(waiting.length));
    ctx.expectFact('same-destination', `connect() to port ${filled.server} once more`, 'EADDRNOTAVAIL', filled.sameDestination);
    ctx.expectFact('other-destination', `connect() to the second server, port ${filled.second}`, 'connected', filled.otherDestination);
    ctx.say(`it got port ${filled.otherPort}: the same port can serve another destination, since the socket pair differs.`);

    ctx.step("Set tcp_tw_reuse to 2, Linux's default (loopback only), and try the first server again, every 200 ms.");
    await host.sysctl('net.ipv4.tcp_tw_reuse', 2);
    const retry = await host.start<Again>(ctx, [process.execPath, '-e', FILL_THE_RANGE, '0', 'again'], 'the client program');
    const again = retry.ready;
    ctx.expectFact('reuse', `connect() to port ${filled.server} with tcp_tw_reuse 2`, 'connected, on a port in TIME_WAIT', again.port !== undefined && waiting.includes(again.port) ? 'connected, on a port in TIME_WAIT' : again.error ?? `port ${again.port}`);
    ctx.report('reuse-wait', 'how long it took', `${again.attempts} attempts, ${((again.afterMs ?? 0) / 1000).toFixed(1)} s: a TIME_WAIT pair is taken over once its last timestamp is more than 1 s old`);
    retry.endInput();
    filler.endInput();
  },
};
