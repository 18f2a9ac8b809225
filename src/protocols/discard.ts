/**
 * RFC 863 Discard: read everything, answer nothing (over UDP, not even a datagram).
 *
 * What it teaches: a sink. With no replies in the way, it shows how fast one TCP
 * connection can carry bytes into a server, and that reading is what opens the
 * receive window: a server that stopped reading would stop its client too.
 * The server never closes first; when the client sends FIN, it closes (passive close).
 */
import { defineProtocol } from '../framework/protocol.js';

export const discard = defineProtocol({
  name: 'discard',
  rfc: 863,
  summary: 'reads and throws away everything; never replies',
  wellKnownPort: 9,
  defaultPort: 9,
  closesFirst: false,
  options: {},
  createHandlers: () => ({
    tcp: ({ socket }) => {
      socket.resume(); // read and drop: no 'data' listener keeps anything
      socket.on('end', () => socket.end());
    },
    udp: () => undefined,
  }),
});
