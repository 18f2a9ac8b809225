/**
 * duplicate-bind: which second bind(2) on a port in use the kernel allows, with and without
 * SO_REUSEADDR. Stevens (UNP §7.5) describes BSD; Linux draws some of the lines elsewhere, and
 * every row of this lab is a prediction for Linux, checked:
 *
 * - TCP (inet_csk_bind_conflict, net/ipv4/inet_connection_sock.c): two sockets on one port
 *   conflict when their addresses overlap (the same address, or a wildcard and anything),
 *   unless both set SO_REUSEADDR and the one already there is not listening. listen(2) checks
 *   again, so of two overlapping sockets at most one ever listens. socket(7) says it in words.
 * - UDP (udp_lib_lport_inuse, net/ipv4/udp.c): overlapping binds conflict unless both sockets
 *   set SO_REUSEADDR; then even the very same address and port is allowed.
 * - Different specific addresses never conflict, with or without the option.
 *
 * 4.4BSD (in_pcbbind in sys/netinet/in_pcb.c, the code behind Stevens' text) asks only the new
 * socket: its SO_REUSEADDR allows a wildcard beside a specific address, whether or not the
 * other socket listens, and never a complete duplicate (that takes SO_REUSEPORT). Where the
 * two differ, the lab says what BSD does.
 *
 * The first step uses node:net listeners, which always set SO_REUSEADDR; the matrix is python3
 * (python.ts), the only way here to bind without it.
 */
import net from 'node:net';
import { LAB_HOST, type LabContext } from './context.js';
import type { Lab } from './lab.js';
import { reportSkipped, runPythonJson } from './python.js';

/** Another loopback address: on Linux the whole of 127.0.0.0/8 reaches the loopback interface. */
const SECOND_LOOPBACK = '127.0.0.2';
const WILDCARD = '0.0.0.0';
const NO_PEER = { address: WILDCARD, port: 0 };

/** listen() on host:port with Node; resolves with the bound port, or with the error code as text. */
async function tryListen(ctx: LabContext, host: string, port: number): Promise<{ outcome: string; port: number }> {
  const listener = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ host, port }, resolve);
    });
  } catch (error) {
    return { outcome: (error as NodeJS.ErrnoException).code ?? String(error), port };
  }
  ctx.defer(() => new Promise((resolve) => listener.close(resolve)));
  const bound = listener.address() as net.AddressInfo;
  return { outcome: 'listening', port: bound.port };
}

/** One row of the matrix: a first socket on a port the kernel picks, then a second on that port. */
interface Trial {
  id: string;
  kind: 'tcp' | 'udp';
  first: string;
  second: string;
  /** SO_REUSEADDR on the first socket and on the second. */
  reuse: [boolean, boolean];
  /** TCP: whether the first socket listens before the second binds (a server would). */
  firstListens: boolean;
  /** What Linux does: the prediction this lab checks. */
  linux: string;
  /** What 4.4BSD's in_pcbbind does, where that differs. */
  bsd?: string;
}

/**
 * Runs each trial: bind the first socket (and listen, for TCP, unless told not to), keep it
 * open, bind the second on the same port, and for TCP listen on it too. Prints one outcome per
 * trial: `listening`, `bound` (UDP), or which call failed and its errno, `bind: EADDRINUSE`.
 */
const MATRIX = `
import errno, json, socket, sys
def name(e): return errno.errorcode.get(e.errno, str(e.errno))
def make(kind, reuse):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == 'tcp' else socket.SOCK_DGRAM)
    if reuse: s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s
def trial(t):
    first, second = make(t['kind'], t['reuse'][0]), make(t['kind'], t['reuse'][1])
    try:
        first.bind((t['first'], 0))
        port = first.getsockname()[1]
        if t['kind'] == 'tcp' and t['firstListens']: first.listen()
        try: second.bind((t['second'], port))
        except OSError as e: return 'bind: ' + name(e)
        if t['kind'] == 'udp': return 'bound'
        try: second.listen()
        except OSError as e: return 'listen: ' + name(e)
        if t['firstListens']: return 'listening'
        try: first.listen(); return 'listening; the first listens too'
        except OSError as e: return "listening; the first's listen(): " + name(e)
    finally:
        first.close(); second.close()
print(json.dumps([trial(t) for t in json.loads(sys.argv[1])]))
`;

const A = LAB_HOST;
const B = SECOND_LOOPBACK;
const ANY = WILDCARD;
const NEITHER: [boolean, boolean] = [false, false];
const BOTH: [boolean, boolean] = [true, true];
const SECOND_ONLY: [boolean, boolean] = [false, true];
const ONE_LISTENER_ONLY = "listening; the first's listen(): EADDRINUSE";

const TCP_LISTENING: Trial[] = [
  { id: 'tcp-other-address-without', kind: 'tcp', first: A, second: B, reuse: NEITHER, firstListens: true, linux: 'listening' },
  { id: 'tcp-other-address-with', kind: 'tcp', first: A, second: B, reuse: BOTH, firstListens: true, linux: 'listening' },
  { id: 'tcp-wildcard-after-without', kind: 'tcp', first: A, second: ANY, reuse: NEITHER, firstListens: true, linux: 'bind: EADDRINUSE' },
  { id: 'tcp-wildcard-after-with', kind: 'tcp', first: A, second: ANY, reuse: BOTH, firstListens: true, linux: 'bind: EADDRINUSE', bsd: "listening: the new socket's SO_REUSEADDR is enough" },
  { id: 'tcp-specific-after-without', kind: 'tcp', first: ANY, second: A, reuse: NEITHER, firstListens: true, linux: 'bind: EADDRINUSE' },
  { id: 'tcp-specific-after-with', kind: 'tcp', first: ANY, second: A, reuse: BOTH, firstListens: true, linux: 'bind: EADDRINUSE', bsd: "listening: the new socket's SO_REUSEADDR is enough" },
  { id: 'tcp-same-without', kind: 'tcp', first: A, second: A, reuse: NEITHER, firstListens: true, linux: 'bind: EADDRINUSE' },
  { id: 'tcp-same-with', kind: 'tcp', first: A, second: A, reuse: BOTH, firstListens: true, linux: 'bind: EADDRINUSE' },
];

const TCP_NOT_LISTENING: Trial[] = [
  { id: 'tcp-idle-same-without', kind: 'tcp', first: A, second: A, reuse: NEITHER, firstListens: false, linux: 'bind: EADDRINUSE' },
  { id: 'tcp-idle-same-with', kind: 'tcp', first: A, second: A, reuse: BOTH, firstListens: false, linux: ONE_LISTENER_ONLY, bsd: 'bind: EADDRINUSE: a complete duplicate needs SO_REUSEPORT' },
  { id: 'tcp-idle-wildcard-after-with', kind: 'tcp', first: A, second: ANY, reuse: BOTH, firstListens: false, linux: ONE_LISTENER_ONLY, bsd: 'listening; the first listens too: listen() does not check again' },
  { id: 'tcp-idle-wildcard-after-second-only', kind: 'tcp', first: A, second: ANY, reuse: SECOND_ONLY, firstListens: false, linux: 'bind: EADDRINUSE', bsd: "listening; the first listens too: only the new socket's option counts" },
];

const UDP: Trial[] = [
  { id: 'udp-other-address-without', kind: 'udp', first: A, second: B, reuse: NEITHER, firstListens: false, linux: 'bound' },
  { id: 'udp-other-address-with', kind: 'udp', first: A, second: B, reuse: BOTH, firstListens: false, linux: 'bound' },
  { id: 'udp-wildcard-after-without', kind: 'udp', first: A, second: ANY, reuse: NEITHER, firstListens: false, linux: 'bind: EADDRINUSE' },
  { id: 'udp-wildcard-after-with', kind: 'udp', first: A, second: ANY, reuse: BOTH, firstListens: false, linux: 'bound' },
  { id: 'udp-wildcard-after-second-only', kind: 'udp', first: A, second: ANY, reuse: SECOND_ONLY, firstListens: false, linux: 'bind: EADDRINUSE', bsd: "bound: only the new socket's option counts" },
  { id: 'udp-specific-after-without', kind: 'udp', first: ANY, second: A, reuse: NEITHER, firstListens: false, linux: 'bind: EADDRINUSE' },
  { id: 'udp-specific-after-with', kind: 'udp', first: ANY, second: A, reuse: BOTH, firstListens: false, linux: 'bound' },
  { id: 'udp-same-without', kind: 'udp', first: A, second: A, reuse: NEITHER, firstListens: false, linux: 'bind: EADDRINUSE' },
  { id: 'udp-same-with', kind: 'udp', first: A, second: A, reuse: BOTH, firstListens: false, linux: 'bound', bsd: 'bind: EADDRINUSE: a complete duplicate needs SO_REUSEPORT (or a multicast address)' },
];

const OPTION = (reuse: [boolean, boolean]): string =>
  reuse[0] && reuse[1] ? 'SO_REUSEADDR on both' : reuse[1] ? 'SO_REUSEADDR on the 2nd' : 'no SO_REUSEADDR';

/** Runs one group of trials and checks each outcome against Linux's rule; false if python3 is missing. */
async function runMatrix(ctx: LabContext, id: string, trials: readonly Trial[]): Promise<boolean> {
  const result = await runPythonJson<string[]>(ctx, MATRIX, [JSON.stringify(trials)]);
  if (!result.ran) {
    reportSkipped(ctx, id, 'binding without SO_REUSEADDR', result.why);
    return false;
  }
  for (const [i, trial] of trials.entries()) {
    const shown = (address: string): string => (address === ANY ? '*' : address);
    ctx.expectFact(trial.id, `${shown(trial.second)} after ${shown(trial.first)}, ${OPTION(trial.reuse)}`, trial.linux, result.value[i] ?? 'no outcome');
    if (trial.bsd !== undefined) ctx.say(`  4.4BSD: ${trial.bsd}`);
  }
  return true;
}

export const duplicateBind: Lab = {
  name: 'duplicate-bind',
  summary: 'one port, two sockets: which binds Linux allows with and without SO_REUSEADDR (TCP and UDP), and where BSD differs',
  concept:
    'Textbook (Stevens UNP §7.5, on BSD): SO_REUSEADDR lets servers share a port on different local addresses, with a ' +
    'wildcard bind catching the rest, and TCP never allows two listeners on the same address and port. Linux ' +
    '(socket(7)): different addresses need no option at all; overlapping binds need SO_REUSEADDR on both sockets, and ' +
    'for TCP none of them listening; for UDP the option on both allows even the very same address and port.',
  async run(ctx) {
    ctx.step(`Node's listeners, which always set SO_REUSEADDR: ${LAB_HOST} on a port the kernel picks, then the same again, then ${SECOND_LOOPBACK}.`);
    const first = await tryListen(ctx, LAB_HOST, 0);
    const port = first.port;
    await ctx.expectState({ id: 'first', end: 'server', local: { address: LAB_HOST, port }, remote: NO_PEER, predicted: 'LISTEN' });
    const second = await tryListen(ctx, LAB_HOST, port);
    ctx.expectFact('same-address', `second listener on ${LAB_HOST}:${port}`, 'EADDRINUSE', second.outcome);
    const other = await tryListen(ctx, SECOND_LOOPBACK, port);
    ctx.expectFact('other-address', `listener on ${SECOND_LOOPBACK}:${port}`, 'listening', other.outcome);
    if (other.outcome === 'listening') {
      await ctx.expectState({ id: 'other-listener', end: 'server', local: { address: SECOND_LOOPBACK, port }, remote: NO_PEER, predicted: 'LISTEN' });
    }
    ctx.say('Two listeners share the port, one per local address; a second one on the same address is refused.');

    ctx.step('TCP servers, with and without SO_REUSEADDR (python3): the first socket listens, then a second binds its port and listens.');
    ctx.say(`* is the wildcard, ${WILDCARD}. Each row is a fresh port; "${OPTION(BOTH)}" means both sockets set it before bind().`);
    if (!(await runMatrix(ctx, 'tcp-listening', TCP_LISTENING))) return;
    ctx.say('Linux: different addresses need no option; an overlap with a listener is refused, SO_REUSEADDR or not.');

    ctx.step('The same with a first socket that is bound but not listening, as a TIME_WAIT connection is not.');
    await runMatrix(ctx, 'tcp-not-listening', TCP_NOT_LISTENING);
    ctx.say('Linux: with the option on both, the overlapping bind succeeds, but listen() checks again: only one of the two can listen.');

    ctx.step('UDP, which has no listen(): a first socket bound, then a second on its port.');
    await runMatrix(ctx, 'udp', UDP);
    ctx.say('Linux: SO_REUSEADDR on both allows any overlap, even the same address and port twice.');
  },
};
