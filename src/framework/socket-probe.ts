/**
 * What an inherited descriptor is. A supervisor (systemd, inetd) opens the socket itself and hands
 * it to the server already open, at a descriptor number agreed in advance (3 and up for systemd, 0
 * for inetd). Before serving it, the server must find out what it got: a listening TCP socket
 * (accept connections from it), a TCP connection the supervisor accepted (serve that one), or a
 * UDP socket (read datagrams from it).
 *
 * A C server asks the socket, as systemd's sd_is_socket_inet(3) does: fstat(2) for "is it a
 * socket", getsockopt(SO_TYPE) for stream or datagram, getsockopt(SO_ACCEPTCONN) for listening,
 * getsockname(2) for the address family. Node offers none of these for a bare descriptor, and
 * trying instead is not harmless: net.Server's listen({ fd }) on a connected socket fails in
 * listen(2) with EINVAL, and Node then closes the descriptor, so the probe would lose the very
 * connection it was looking at.
 *
 * So we ask the kernel's tables, which look without touching. fstat(2) says whether the
 * descriptor is a socket and gives its inode number, the `socket:[inode]` of `ls -l /proc/self/fd`;
 * /proc/net/tcp, tcp6, udp and udp6 list every TCP and UDP socket with its inode, its state (LISTEN,
 * or a connection's) and its addresses: the files `ss` and `netstat` read, parsed by src/tcp-states/.
 * That is Linux only, like systemd; elsewhere the probe says so. The files show the reading
 * process's network namespace only, so a socket made in another one (the host's, for a unit with
 * PrivateNetwork=yes) is not in them; the probe's error says that too.
 */
import { fstatSync, type Stats } from 'node:fs';
import { LabError } from '../errors.js';
import { findSocketByInode, isTcpStateReadingSupported } from '../tcp-states/read.js';
import type { Endpoint } from './endpoint.js';

/** What a socket is for: accept connections, be one connection, or exchange datagrams. */
export type SocketRole = 'listening' | 'connected' | 'datagram';

export interface ProbedSocket {
  fd: number;
  role: SocketRole;
  /** AF_INET or AF_INET6: a dgram.Socket must be created with its descriptor's family. */
  family: 4 | 6;
  local: Endpoint;
  /** A connection's peer. */
  remote?: Endpoint;
}

/** fstat(2) of a descriptor that must be open; EBADF becomes one line. */
function statOpen(fd: number): Stats {
  try {
    return fstatSync(fd);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new LabError('ERR_BAD_DESCRIPTOR', `descriptor ${fd} is not open (${code}): nothing was handed over there`);
  }
}

/** What kind of file `fd` is, in words (`a socket`, `a pipe`, ...): what fstat(2) can tell on any Unix. */
export function describeDescriptor(fd: number): string {
  try {
    return fileKind(fstatSync(fd));
  } catch {
    return 'not open';
  }
}

/**
 * Whether two descriptors are the same open socket: dup(2) and dup2(2) give one socket several
 * numbers (inetd puts it on 0, 1 and 2), and fstat(2) then reports the same device and inode for each.
 */
export function sameSocket(a: number, b: number): boolean {
  try {
    const [one, other] = [fstatSync(a), fstatSync(b)];
    return one.isSocket() && one.dev === other.dev && one.ino === other.ino;
  } catch {
    return false; // one of them is not open: then they are not the same socket
  }
}

/** Finds out what kind of TCP or UDP socket `fd` is, without touching it; a LabError says why it cannot be served. */
export async function probeSocket(fd: number): Promise<ProbedSocket> {
  const stat = statOpen(fd);
  if (!stat.isSocket()) throw new LabError('ERR_BAD_DESCRIPTOR', `descriptor ${fd} is ${fileKind(stat)}, not a socket: nothing handed a socket over there`);
  if (!isTcpStateReadingSupported()) {
    throw new LabError('ERR_BAD_DESCRIPTOR', `cannot tell what kind of socket descriptor ${fd} is: that takes the kernel's socket tables in /proc/net, which only Linux has`);
  }
  const listed = await findSocketByInode(stat.ino);
  if (listed === undefined) {
    throw new LabError(
      'ERR_BAD_DESCRIPTOR',
      `descriptor ${fd} is a socket, but not a TCP or UDP socket of this network namespace (a UNIX-domain socket? PrivateNetwork=yes?): /proc/net lists no socket inode ${stat.ino}`,
    );
  }
  const { transport, entry } = listed;
  const ends = { fd, family: entry.family, local: entry.local };
  if (transport === 'udp') return { ...ends, role: 'datagram' };
  if (entry.state === 'LISTEN') return { ...ends, role: 'listening' };
  return { ...ends, role: 'connected', remote: entry.remote };
}

function fileKind(stat: Stats): string {
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice()) return 'a character device (a terminal, or /dev/null)';
  if (stat.isFIFO()) return 'a pipe';
  if (stat.isFile()) return 'a regular file';
  if (stat.isDirectory()) return 'a directory';
  return 'another kind of file';
}
