/**
 * A UDP client: send one datagram, wait for one reply. No connection, no handshake:
 * if nothing answers (no server, or a server that chose not to), only a timeout tells.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { LabError } from '../errors.js';
import { resolveAll } from './connect.js';

export interface DatagramRequest {
  host: string;
  port: number;
  payload: Buffer;
  timeoutMs: number;
}

/** A UDP socket connect(2)ed to the first address of `host`: it then hears only that peer. */
async function socketTo(host: string, port: number): Promise<dgram.Socket> {
  const [address] = await resolveAll(host);
  if (address === undefined) throw new LabError('ERR_UNKNOWN_HOST', `cannot resolve ${JSON.stringify(host)}`);
  const socket = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
  await new Promise<void>((resolve) => socket.connect(port, address, resolve));
  return socket;
}

/** Sends one datagram and expects nothing back (discard). */
export async function sendDatagram({ host, port, payload }: Omit<DatagramRequest, 'timeoutMs'>): Promise<void> {
  const socket = await socketTo(host, port);
  try {
    await new Promise<void>((resolve, reject) => socket.send(payload, (error) => (error ? reject(error) : resolve())));
  } finally {
    socket.close();
  }
}

/** The reply, or undefined when none came within the timeout. */
export async function askOverUdp({ host, port, payload, timeoutMs }: DatagramRequest): Promise<Buffer | undefined> {
  const socket = await socketTo(host, port);
  try {
    return await new Promise<Buffer | undefined>((resolve, reject) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      socket.once('message', (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      // An ICMP "port unreachable" for our datagram surfaces as ECONNREFUSED on Linux.
      socket.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new LabError('ERR_UDP_FAILED', `udp to ${host} port ${port}: ${error.code === 'ECONNREFUSED' ? 'port unreachable (nothing listening)' : error.message}`));
      });
      socket.send(payload);
    });
  } finally {
    socket.close();
  }
}
