/**
 * Plain echo clients for the labs that need several connections open at once: connect, send a
 * line, wait for it to come back. (src/clients/echo.ts runs one whole session from a stream;
 * these labs need to hold sockets open between steps.)
 */
import net from 'node:net';
import { socketEnds } from '../framework/endpoint.js';
import { bothEnds, LAB_HOST, type ConnectionEnds, type LabContext } from './context.js';

export interface EchoPeer {
  socket: net.Socket;
  ends: ConnectionEnds;
  /** Resolves with the next bytes the server sends back. */
  nextEcho(what: string): Promise<string>;
}

/** Connects to 127.0.0.1:port; the socket is destroyed when the lab ends. */
export async function connectEchoPeer(ctx: LabContext, port: number): Promise<EchoPeer> {
  const socket = net.connect({ host: LAB_HOST, port });
  ctx.defer(() => socket.destroy());
  await ctx.until(socket, 'connect', 'the client to connect');
  return {
    socket,
    ends: bothEnds(socketEnds(socket).local, { address: LAB_HOST, port }),
    nextEcho: async (what) => String((await ctx.until<[Buffer]>(socket, 'data', what))[0]),
  };
}
