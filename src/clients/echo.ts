/**
 * The echo client (RFC 862), like telnet or `nc` against an echo server, that also checks
 * the echo: every byte that comes back must equal the byte sent at the same position.
 *
 * It shows the half-close: when our input ends we call shutdown(SHUT_WR) (socket.end()),
 * which sends FIN but keeps reading, so the echo of our last bytes still arrives. The server
 * answers with its own FIN once it has sent everything back, and then we are done.
 */
import type { Readable, Writable } from 'node:stream';
import { LabError } from '../errors.js';
import { connectToFirst, failedError, resetError, type ConnectOptions } from './connect.js';

export interface EchoClientOptions extends ConnectOptions {
  input: Readable;
  output: Writable;
}

export interface EchoResult {
  sentBytes: number;
  /** Bytes echoed back, all equal to what was sent. */
  echoedBytes: number;
}

/**
 * Compares the echoed stream with the sent one, holding only the bytes still in flight
 * (sent but not yet echoed), so memory stays bounded however much passes through.
 */
export class EchoCheck {
  private inFlight: Buffer[] = [];
  sentBytes = 0;
  echoedBytes = 0;

  sent(chunk: Buffer): void {
    this.inFlight.push(chunk);
    this.sentBytes += chunk.length;
  }

  /** Returns the offset of the first wrong byte in the whole stream, or undefined if all match. */
  echoed(chunk: Buffer): number | undefined {
    let at = 0;
    while (at < chunk.length) {
      const expected = this.inFlight[0];
      if (expected === undefined) return this.echoedBytes; // more came back than was sent
      const length = Math.min(expected.length, chunk.length - at);
      if (expected.compare(chunk, at, at + length, 0, length) !== 0) {
        let i = 0;
        while (expected[i] === chunk[at + i]) i++;
        return this.echoedBytes + i;
      }
      this.echoedBytes += length;
      at += length;
      if (length === expected.length) this.inFlight.shift();
      else this.inFlight[0] = expected.subarray(length);
    }
    return undefined;
  }

  get complete(): boolean {
    return this.echoedBytes === this.sentBytes;
  }
}

export async function runEchoClient(options: EchoClientOptions): Promise<EchoResult> {
  const { input, output } = options;
  const conn = await connectToFirst(options);
  const { socket } = conn;
  const check = new EchoCheck();
  let halfClosed = false;

  return new Promise<EchoResult>((resolve, reject) => {
    const finish = (error?: LabError): void => {
      input.off('data', send).off('end', halfClose);
      input.pause();
      socket.destroy();
      if (error) reject(error);
      else resolve({ sentBytes: check.sentBytes, echoedBytes: check.echoedBytes });
    };

    // Our side: input → socket, pausing the input while the socket's send queue is full.
    const send = (chunk: Buffer): void => {
      check.sent(chunk);
      if (!socket.write(chunk)) input.pause();
    };
    const halfClose = (): void => {
      halfClosed = true;
      socket.end();
    };
    input.on('data', send).once('end', halfClose);
    socket.on('drain', () => input.resume());

    // The echo: socket → output, checked byte for byte. Only the bytes that match what was sent
    // are written: what a server sends instead (a terminal escape, say) is reported, not obeyed.
    socket.on('data', (chunk: Buffer) => {
      const checkedBefore = check.echoedBytes;
      const wrongAt = check.echoed(chunk);
      if (!output.write(wrongAt === undefined ? chunk : chunk.subarray(0, wrongAt - checkedBefore))) {
        socket.pause();
        output.once('drain', () => socket.resume());
      }
      if (wrongAt !== undefined) {
        finish(new LabError('ERR_ECHO_MISMATCH', `the echo differs from what was sent at byte ${wrongAt}`));
      }
    });
    // The server's FIN (it has sent everything it will send), its RST, or another failure.
    void conn.ended.then(() => {
      const traffic = `we sent ${check.sentBytes} bytes and ${check.echoedBytes} came back`;
      if (conn.serverClose === 'rst') return finish(resetError(conn, { sent: check.sentBytes, received: check.echoedBytes }));
      if (conn.serverClose !== 'fin') return finish(failedError(conn));
      // An echo server closes after the client does; one that closes first ended the session
      // itself (--idle-timeout, a shutdown), like telnet's "Connection closed by foreign host."
      if (!halfClosed) return finish(new LabError('ERR_SERVER_CLOSED', `the server closed the connection (FIN) before our input ended; ${traffic}`));
      if (check.complete) return finish();
      finish(new LabError('ERR_ECHO_INCOMPLETE', `the server closed the connection (FIN) after echoing ${check.echoedBytes} of ${check.sentBytes} bytes`));
    });
  });
}
