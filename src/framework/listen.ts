/**
 * Opening the sockets a service listens on, for TCP (net.Server) and UDP (dgram.Socket) alike.
 * Listening is kept apart from serving, as in Go (`Serve(listener)` beside `ListenAndServe`) and
 * mini-redis (`run(listener, shutdown)`): a server may bind an address itself, or be handed a
 * socket that is already open, as systemd socket activation and worker processes do.
 *
 * Three ways to say where (ListenOn):
 * - `{ host, port }`: socket() + bind() + listen() here. Without a host, both loopback addresses,
 *   127.0.0.1 and ::1, on the same port: only this machine can connect, which is the safe default
 *   for a student's laptop; `--host ::` serves every interface. `::` accepts IPv4 clients too (as
 *   IPv4-mapped addresses) and falls back to 0.0.0.0 where the kernel has no IPv6.
 * - `{ fd }`: a descriptor this process inherited, already bound (and, for TCP, listening), as
 *   systemd and inetd hand them over (socket-probe.ts finds out which kind a descriptor is).
 * - `{ handle }`: a net.Server or dgram.Socket already listening in this process.
 *
 * bind(2) and listen(2) failures become one line that says what to do (describeListenError).
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { LabError } from '../errors.js';
import { adoptUdpDescriptorZero } from './descriptor-zero.js';
import { type Endpoint } from './endpoint.js';
import { probeSocket } from './socket-probe.js';

/** `family`, for a UDP descriptor: its address family, when the caller knows it already (see openUdpSockets). */
export type ListenOn<Handle> = { host?: string; port: number } | { fd: number; family?: 4 | 6 } | { handle: Handle };

/** One open socket, and where it listens. */
export interface Bound<Handle> {
  handle: Handle;
  local: Endpoint;
  /** True when it came open from elsewhere (a descriptor or a handle), not from our own bind(). */
  inherited: boolean;
}

/** The addresses tried when no host is given: this machine only, over IPv4 and IPv6. */
export const LOOPBACK_ADDRESSES = ['127.0.0.1', '::1'] as const;
const DUAL_STACK_WILDCARD = '::';
const IPV4_WILDCARD = '0.0.0.0';
/**
 * Port 0 on two addresses: the kernel picks a port free on 127.0.0.1, which may be taken on ::1.
 * Then we start over with another pick; three tries make a clash all but impossible.
 */
const SAME_PORT_TRIES = 3;

/** How to open, adopt and close one kind of socket: the part that differs between TCP and UDP. */
interface SocketKind<Handle> {
  bind(host: string, port: number): Promise<Handle>;
  fromDescriptor(fd: number, family?: 4 | 6): Promise<Handle>;
  address(handle: Handle): Endpoint;
  close(handle: Handle): Promise<void>;
}

/** The kernel has no IPv6, or IPv6 is switched off for this address. */
const ipv6Unavailable = (error: unknown): boolean => ['EAFNOSUPPORT', 'EADDRNOTAVAIL'].includes((error as NodeJS.ErrnoException).code ?? '');

async function open<Handle>(on: ListenOn<Handle>, kind: SocketKind<Handle>): Promise<Bound<Handle>[]> {
  const bound = (handle: Handle, inherited: boolean): Bound<Handle> => ({ handle, local: kind.address(handle), inherited });
  if ('handle' in on) return [bound(on.handle, true)];
  if ('fd' in on) return [bound(await kind.fromDescriptor(on.fd, on.family), true)];
  const { host, port } = on;
  const bindOrExplain = (address: string, shownHost = host): Promise<Handle> =>
    kind.bind(address, port).catch((error: unknown) => {
      throw describeListenError(error, shownHost, port);
    });
  if (host === DUAL_STACK_WILDCARD) {
    const handle = await kind.bind(host, port).catch((error: unknown) => {
      if (ipv6Unavailable(error)) return bindOrExplain(IPV4_WILDCARD, IPV4_WILDCARD);
      throw describeListenError(error, host, port);
    });
    return [bound(handle, false)];
  }
  if (host !== undefined) return [bound(await bindOrExplain(host), false)];
  // Loopback: 127.0.0.1 first, then ::1 on the port it got.
  for (let attempt = 1; ; attempt++) {
    const [ipv4, ipv6] = LOOPBACK_ADDRESSES;
    const first = await bindOrExplain(ipv4);
    const samePort = kind.address(first).port;
    try {
      return [bound(first, false), bound(await kind.bind(ipv6, samePort), false)];
    } catch (error) {
      if (ipv6Unavailable(error)) return [bound(first, false)];
      await kind.close(first);
      const clash = (error as NodeJS.ErrnoException).code === 'EADDRINUSE' && port === 0;
      if (!clash || attempt === SAME_PORT_TRIES) throw describeListenError(error, ipv6, samePort);
    }
  }
}

/** Calls `start(done)` on a socket and resolves once it calls `done`, or rejects with the socket's first error. */
function started<Handle extends net.Server | dgram.Socket>(handle: Handle, start: (done: () => void) => void): Promise<Handle> {
  return new Promise((resolve, reject) => {
    handle.once('error', reject);
    start(() => {
      handle.off('error', reject);
      resolve(handle);
    });
  });
}

/** The TCP listening sockets for `on`. `create` makes a net.Server set up the way the caller serves. */
export function openTcpListeners(on: ListenOn<net.Server>, create: () => net.Server): Promise<Bound<net.Server>[]> {
  const listen = (server: net.Server, options: net.ListenOptions): Promise<net.Server> => started(server, (done) => server.listen(options, done));
  return open(on, {
    bind: (host, port) => listen(create(), { host, port }),
    fromDescriptor: (fd) =>
      listen(create(), { fd } as net.ListenOptions).catch((error: unknown) => {
        throw badDescriptor(fd, 'a listening TCP socket', error);
      }),
    address: (server) => {
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('not a TCP listener');
      return { address: address.address, port: address.port };
    },
    close: (server) => new Promise((resolve) => server.close(() => resolve())),
  });
}

/** The UDP sockets for `on`. `create` makes a dgram.Socket of the right family. */
export function openUdpSockets(on: ListenOn<dgram.Socket>, create: (type: dgram.SocketType) => dgram.Socket): Promise<Bound<dgram.Socket>[]> {
  const bind = (socket: dgram.Socket, options: dgram.BindOptions): Promise<dgram.Socket> => started(socket, (done) => socket.bind(options, done));
  return open(on, {
    // An IPv6 socket (ipv6Only off) receives IPv4 datagrams too, as a `::` TCP listener does.
    bind: (host, port) => bind(create(net.isIPv6(host) ? 'udp6' : 'udp4'), { address: host, port }),
    // sendto(2) takes an address of the socket's own family, and a dgram.Socket sends with the
    // family it was created with: adopted as udp6, an IPv4 socket could read datagrams but every
    // reply would fail (EINVAL). So the descriptor is adopted with its own family, asked of the
    // kernel when the caller does not know it (IPv6 where the kernel's tables cannot say).
    fromDescriptor: async (fd, known) => {
      const family = known ?? (await probeSocket(fd).then(({ family }) => family, () => 6));
      const type = family === 4 ? 'udp4' : 'udp6';
      try {
        // dgram will not adopt descriptor 0, where inetd puts the socket: see descriptor-zero.ts.
        return fd === 0 ? await adoptUdpDescriptorZero(type) : await bind(create(type), { fd });
      } catch (error) {
        throw badDescriptor(fd, 'a bound UDP socket', error);
      }
    },
    address: (socket) => {
      const { address, port } = socket.address();
      return { address, port };
    },
    close: (socket) => new Promise((resolve) => socket.close(() => resolve())),
  });
}

function badDescriptor(fd: number, expected: string, error: unknown): LabError {
  const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  return new LabError('ERR_BAD_DESCRIPTOR', `descriptor ${fd} is not ${expected} (${why})`);
}

/** The lowest port an ordinary user may bind (Linux lets root lower it with a sysctl). */
function unprivilegedPortStart(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8')) || 1024;
  } catch {
    return 1024;
  }
}

/** Turns a bind(2)/listen(2) failure into one line that says what to do; `flag` is the option that gave the port. */
export function describeListenError(error: unknown, host: string | undefined, port: number, flag = '--port'): LabError | unknown {
  const code = (error as NodeJS.ErrnoException).code;
  const where = host === undefined ? `port ${port}` : `${host} port ${port}`;
  // A side server's port (--metrics) says which one it was: the services' ports are --port's.
  const cannot = flag === '--port' ? 'cannot listen on' : `${flag}: cannot listen on`;
  switch (code) {
    case 'EACCES':
      return new LabError('ERR_PRIVILEGED_PORT', `${cannot} ${where}: ports below ${unprivilegedPortStart()} need root; try ${flag} ${port + 1300}`);
    case 'EADDRINUSE':
      return new LabError(
        'ERR_PORT_IN_USE',
        `${cannot} ${where}: the address is already in use by another socket; stop that server or pick another port (${flag} 0 lets the kernel choose)`,
      );
    case 'EADDRNOTAVAIL':
      return new LabError('ERR_ADDRESS_NOT_AVAILABLE', `${cannot} ${where}: ${host} is not an address of this machine; try --host 127.0.0.1`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new LabError('ERR_UNKNOWN_HOST', `${cannot} ${where}: no such host; give an IP address such as 127.0.0.1 or ::1`);
    default:
      return error;
  }
}
