/**
 * A UDP socket on descriptor 0, where inetd puts the socket of a UDP service (`wait` mode).
 *
 * Node's dgram adopts a descriptor with bind({ fd }), but not descriptor 0: it takes 0 for "no
 * descriptor" and quietly binds a new socket on a random port instead. (net.Server and net.Socket
 * accept 0, so TCP needs none of this.) A C server would dup(2) the socket to another number; Node
 * has no dup. What Node has is descriptor passing, the way sockets travel between processes: a
 * child process, started with our descriptor 0 among its own, adopts the socket there and sends it
 * back over its IPC channel, and the kernel (sendmsg(2) with SCM_RIGHTS) installs the same socket
 * in this process under a new number. It costs one short-lived Node process, once, at startup.
 */
import { spawn } from 'node:child_process';
import type dgram from 'node:dgram';
import { once } from 'node:events';

/** Where the child finds the socket: its descriptors 0 to 2 are unused, and 3 is the IPC channel. */
const CHILD_FD = 4;
/** Ample for starting Node on a loaded machine; a child that takes longer is stuck. */
const DEADLINE_MS = 15_000;

/**
 * The child: adopt the socket, send it, and close its own copy in the send's callback. That callback
 * comes before the child's event loop first polls the socket, so the child never reads a datagram,
 * not even the one waiting since inetd started us for it.
 */
const CHILD = `
const socket = require('node:dgram').createSocket(process.argv[1]);
socket.bind({ fd: ${CHILD_FD} }, () => process.send('socket', socket, () => { socket.close(); process.disconnect(); }));`;

/** The UDP socket on descriptor 0 as a dgram.Socket of `type` (which must match its address family). */
export async function adoptUdpDescriptorZero(type: dgram.SocketType): Promise<dgram.Socket> {
  const child = spawn(process.execPath, ['-e', CHILD, type], { stdio: ['ignore', 'ignore', 'ignore', 'ipc', 0] });
  // 'close' comes after the IPC channel is drained, so never before a message the child sent.
  const exited = once(child, 'close').then(([code, signal]) => {
    throw new Error(`the helper process exited with ${code ?? signal} before sending the socket`);
  });
  const deadline = AbortSignal.timeout(DEADLINE_MS);
  try {
    // Node turns the handle back into a dgram.Socket, bound and reading, before it emits 'message'.
    const [, socket] = (await Promise.race([once(child, 'message', { signal: deadline }), exited])) as [unknown, dgram.Socket];
    return socket;
  } finally {
    if (child.exitCode === null) child.kill();
    exited.catch(() => {}); // it will exit, after sending or when killed: that is no longer a failure
  }
}
