/**
 * Sockets a supervisor hands over, instead of sockets this process binds. This is how a server
 * serves port 13 without running as root: the supervisor (systemd, or inetd before it) binds the
 * port with its own privilege and starts the server with the socket already open, so the server
 * never needs the privilege at all. It also starts the server only when the first client comes.
 *
 * Two conventions, both read here:
 * - systemd's socket activation, sd_listen_fds(3): the sockets are descriptors 3, 4, ...
 *   (SD_LISTEN_FDS_START: 0, 1 and 2 stay stdin, stdout and stderr), and the environment says how
 *   many and for whom: LISTEN_FDS=2, LISTEN_PID=<the process they are for>, and LISTEN_FDNAMES=
 *   daytime:echo, one name per descriptor (FileDescriptorName= in the .socket unit).
 * - inetd's: the socket is descriptor 0, and usually 1 and 2 as well. inetd dup2(2)s it there so
 *   that a program written for a terminal, reading stdin and printing to stdout, talks to the client.
 *
 * What kind of socket each descriptor is (listening, a connection, UDP) is not taken from the
 * names: socket-probe.ts asks the kernel, as sd_listen_fds(3) advises ("verify the correct socket
 * types before using them").
 */
import { LabError } from '../errors.js';
import type { Supervisor } from '../framework/events.js';
import { describeDescriptor, sameSocket } from '../framework/socket-probe.js';
import type { LogDestination } from './logger.js';

/** A descriptor a supervisor handed over, and the name systemd gave it, if any. */
export interface HandedOver {
  fd: number;
  by: Supervisor;
  name?: string;
}

/** The first descriptor systemd passes: the three before it are stdin, stdout and stderr. */
const SD_LISTEN_FDS_START = 3;
/** inetd's: standard input. */
const INETD_FD = 0;
/** LISTEN_PIDFDID names the process more surely than LISTEN_PID (newer systemd); Node cannot read a pidfd's inode to check it, so it is only removed. */
const LISTEN_VARIABLES = ['LISTEN_PID', 'LISTEN_PIDFDID', 'LISTEN_FDS', 'LISTEN_FDNAMES'] as const;

/**
 * The sockets systemd passed to this process, read as sd_listen_fds_with_names(3) reads them: none
 * when LISTEN_PID is missing or names another process (the variables were inherited through a
 * process that did not exec us directly, and the sockets are not ours to take). Like
 * sd_listen_fds(unset_environment=1), it removes the variables from `env` in every case, so that a
 * child this process starts does not inherit them.
 */
export function systemdSockets(env: NodeJS.ProcessEnv, pid: number): HandedOver[] {
  const [listenPid, count, names] = [env.LISTEN_PID, env.LISTEN_FDS, env.LISTEN_FDNAMES];
  for (const name of LISTEN_VARIABLES) delete env[name];
  if (listenPid === undefined || count === undefined || listenPid !== String(pid)) return [];
  if (!/^[1-9]\d{0,5}$/.test(count)) throw new LabError('ERR_NOT_ACTIVATED', `LISTEN_FDS=${JSON.stringify(count)} is not a number of descriptors: systemd sets it to 1 or more`);
  const fds = Array.from({ length: Number(count) }, (_, i) => SD_LISTEN_FDS_START + i);
  // Names are separated by colons; an empty one is a name too (an empty FileDescriptorName=).
  const named = names?.split(':');
  if (named !== undefined && named.length !== fds.length) {
    throw new LabError('ERR_NOT_ACTIVATED', `LISTEN_FDNAMES gives ${named.length} name(s) for LISTEN_FDS=${count} descriptor(s): systemd gives one name per descriptor`);
  }
  return fds.map((fd, i) => ({ fd, by: 'systemd', ...(named !== undefined && { name: named[i]! }) }));
}

/** --systemd: the sockets systemd passed, which must be there. */
export function requireSystemdSockets(env: NodeJS.ProcessEnv, pid: number): HandedOver[] {
  const listenPid = env.LISTEN_PID;
  const sockets = systemdSockets(env, pid);
  if (sockets.length > 0) return sockets;
  const why = listenPid === undefined ? 'LISTEN_PID and LISTEN_FDS are not set' : `LISTEN_PID=${JSON.stringify(listenPid)} is not this process (${pid})`;
  throw new LabError('ERR_NOT_ACTIVATED', `--systemd: no sockets from systemd (${why}); start it from a .socket unit (see docs/guides/running-as-a-daemon.md)`);
}

/** --inetd: the socket on descriptor 0, which must be one. */
export function inetdSocket(): HandedOver {
  const kind = describeDescriptor(INETD_FD);
  if (kind !== 'a socket') {
    throw new LabError('ERR_NOT_ACTIVATED', `--inetd: descriptor 0 (standard input) is ${kind}, not a socket: run it from inetd, xinetd or a systemd unit with StandardInput=socket`);
  }
  return { fd: INETD_FD, by: 'inetd' };
}

/**
 * Where the log may go. Not into a socket that was handed over: inetd and xinetd put the client's
 * connection on descriptors 1 and 2 as well as 0, and systemd does the same with
 * StandardInput=socket unless the unit sends stdout elsewhere. A log line written there would reach
 * the client in the middle of the protocol's bytes (and, on a UDP socket, fail: it has no peer to
 * write to). fstat(2) tells whether stdout is that socket (sameSocket). So: --log-file when given;
 * else stdout, or else stderr, whichever is not a handed-over socket; else nowhere.
 */
export function logDestination(logFile: string | undefined, handedOver: readonly HandedOver[]): LogDestination {
  if (logFile !== undefined) return { file: logFile };
  const isClientSocket = (fd: number): boolean => handedOver.some((socket) => sameSocket(fd, socket.fd));
  if (!isClientSocket(1)) return { fd: 1 };
  if (!isClientSocket(2)) return { fd: 2 };
  return 'nowhere';
}
