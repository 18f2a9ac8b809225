/**
 * RFC 862 Echo: "any data received is sent back". Port 7 in the RFC; we default to the
 * tutorial's 5000, which needs no root.
 *
 * What it teaches:
 * - TCP carries a byte stream, not messages: a 'data' chunk is whatever the kernel had ready,
 *   so lines are split and joined freely. We send back bytes, not lines.
 * - Flow control (backpressure): when the client stops reading, its receive window and our
 *   send buffer fill, write() starts returning false, and we stop reading until 'drain'.
 *   The client's own writes then block. Memory stays bounded for everyone.
 * - The passive close: the server never closes first. When the client sends FIN (we read EOF),
 *   we finish sending and close our side: the client, which closed first, gets TIME_WAIT.
 */
import { defineProtocol } from '../framework/protocol.js';

export const echo = defineProtocol({
  name: 'echo',
  rfc: 862,
  summary: 'sends back every byte it receives; closes only after the client does',
  wellKnownPort: 7,
  defaultPort: 5000,
  closesFirst: false,
  options: {},
  createHandlers: () => ({
    tcp: (conn) => {
      const { socket } = conn;
      // Like the tutorial's Perl server, which prints "message: ..." for each line it reads.
      const lines = conn.lines();
      socket.on('data', (chunk: Buffer) => {
        lines.push(chunk);
        // write() queues the chunk either way; false means the queue is past its high-water mark.
        if (!socket.write(chunk)) socket.pause();
      });
      socket.on('drain', () => socket.resume());
      // The client's FIN. end() sends ours after everything still queued: the passive close.
      socket.on('end', () => {
        lines.end();
        socket.end();
      });
    },
    // Over UDP, the reply to a datagram is the datagram itself.
    udp: (request) => request,
  }),
});
