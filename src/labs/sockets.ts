/**
 * Plain node:net sockets, for the labs that drive a connection by hand: a server with no protocol
 * and no framework, whose accepted socket the lab reads, writes and closes itself, and how a socket's
 * connection ended, as its program learns it.
 */
import net from 'node:net';
import { LAB_HOST, type LabContext } from './context.js';

/**
 * A node:net server on 127.0.0.1, port 0, closed when the lab ends. Its port is the lab's, so its
 * packets are captured for the ladder.
 */
export async function listenPlain(ctx: LabContext, options: net.ServerOpts = {}): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer(options);
  ctx.defer(() => new Promise((resolve) => server.close(resolve)));
  server.listen({ host: LAB_HOST, port: 0 });
  await ctx.until(server, 'listening', 'the server to listen');
  const { port } = server.address() as net.AddressInfo;
  ctx.watchPort(port);
  return { server, port };
}

/**
 * The next connection `server` accepts, its socket destroyed when the lab ends. Ask before the
 * client connects: a connection accepted before anyone listens for it is missed.
 */
export function nextConnection(ctx: LabContext, server: net.Server, what = 'the client to connect'): Promise<net.Socket> {
  return ctx.until<[net.Socket]>(server, 'connection', what).then(([socket]) => {
    ctx.defer(() => socket.destroy());
    return socket;
  });
}

/**
 * How the connection of a reading socket ends, as its program learns it: `end of file (FIN)`, or
 * the code of the error that ended it (ECONNRESET: a reset). Ask before the end can come.
 */
export function howItEnds(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    socket.once('end', () => resolve('end of file (FIN)'));
  });
}
