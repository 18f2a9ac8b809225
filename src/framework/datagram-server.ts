/**
 * The UDP side of the framework, for protocols whose RFC defines a UDP service.
 *
 * UDP has no connection: each datagram arrives alone, with the sender's address and port,
 * and the reply is one datagram sent back to them. That makes a naive UDP server dangerous:
 * - Reflection and amplification: the source address of a datagram is not checked by anyone,
 *   so an attacker can forge a victim's address and make us send the victim our replies.
 * - Loops (CVE-1999-0103, CVE-2024-2169): a forged datagram "from" another echo or chargen
 *   server makes two servers answer each other forever.
 * So, before answering, we drop datagrams from ports below 1024 (where the classic services
 * live) and from this process's own ports, answer each peer address only within a small
 * budget and then go quiet for it, and never send more than 512 bytes per reply.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import type { Logger } from 'pino';
import type { AccessControl } from './access-control.js';
import { formatEndpoint, formatListeningEndpoint, unmapIPv4, type Endpoint } from './endpoint.js';
import { usageError } from '../errors.js';
import { describeListenError } from './listen.js';
import type { DatagramHandler } from './protocol.js';
import { RateLimiter } from './token-bucket.js';
import type { ServiceOptions } from './server.js';

/** Replies per peer address: a burst, then a steady rate. Small, so a loop dies out quickly. */
export interface DatagramBudget {
  burst: number;
  perSecond: number;
}

export const DEFAULT_DATAGRAM_BUDGET: DatagramBudget = { burst: 10, perSecond: 2 };

/** Never answer with more than this many bytes: no amplification beyond the old RFCs' limit. */
export const MAX_REPLY_BYTES = 512;
/** Ports below this are the well-known services (echo 7, chargen 19, ...): never answer them. */
const FIRST_UNPRIVILEGED_PORT = 1024;
/** Peers remembered for their budgets; the oldest is forgotten beyond this. */
const MAX_TRACKED_PEERS = 10_000;
const DROP_LOGS_PER_SECOND = 5;
const DROP_LOG_BURST = 20;

export type DropReason = 'denied' | 'privileged-source-port' | 'own-port' | 'over-budget' | 'oversized-reply';

export interface DatagramServerOptions extends ServiceOptions {
  /** This process's own service ports: a datagram from one of them would start a loop. */
  ownPorts: ReadonlySet<number>;
  budget?: DatagramBudget;
  /** Which peer addresses may be answered (--allow/--deny); everyone when absent. */
  access?: AccessControl;
}

export interface DatagramSummary {
  received: number;
  answered: number;
  dropped: number;
}

export class DatagramServer {
  private readonly socket: dgram.Socket;
  private readonly handler: DatagramHandler;
  private readonly log: Logger;
  private readonly budget: DatagramBudget;
  private readonly peers = new Map<string, RateLimiter>();
  private readonly logBudget = new RateLimiter(DROP_LOGS_PER_SECOND, DROP_LOG_BURST);
  private readonly totals: DatagramSummary = { received: 0, answered: 0, dropped: 0 };

  constructor(private readonly options: DatagramServerOptions) {
    const { protocol } = options;
    const handler = protocol.createHandlers(options.settings ?? {}, { now: options.now ?? (() => new Date()) }).udp;
    if (handler === undefined) throw usageError('ERR_NO_UDP', `${protocol.name} has no UDP service (RFC ${protocol.rfc} defines TCP only)`);
    this.handler = handler;
    this.log = options.logger;
    this.budget = options.budget ?? DEFAULT_DATAGRAM_BUDGET;
    // An IPv6 socket with ipv6Only off receives IPv4 datagrams too, as a `::` TCP listener does.
    const type = options.host === undefined || net.isIPv6(options.host) ? 'udp6' : 'udp4';
    this.socket = dgram.createSocket({ type, ipv6Only: false });
    this.socket.on('message', (datagram, sender) => this.receive(datagram, { address: sender.address, port: sender.port }));
  }

  async listen(): Promise<Endpoint> {
    const { host, port } = this.options;
    const bind = (address: string): Promise<void> =>
      new Promise((resolve, reject) => {
        this.socket.once('error', reject);
        this.socket.bind(port, address, () => {
          this.socket.off('error', reject);
          resolve();
        });
      });
    await bind(host ?? '::').catch((error: unknown) => {
      throw describeListenError(error, host, port);
    });
    // After bind, errors concern one send (e.g. the peer's port was unreachable): log, go on.
    this.socket.on('error', (error) => this.log.debug({ event: 'udp-error', err: error }, `udp: ${error.message}`));
    const local = this.address();
    const name = `${formatListeningEndpoint(local)}/udp`;
    this.log.info(
      { event: 'listening', protocol: this.options.protocol.name, transport: 'udp', address: local.address, port: local.port, socket: name },
      `${this.options.protocol.name} (RFC ${this.options.protocol.rfc}) listening on ${name}`,
    );
    return local;
  }

  address(): Endpoint {
    const { address, port } = this.socket.address();
    return { address, port };
  }

  /** Datagrams received, answered and dropped so far. */
  summary(): DatagramSummary {
    return { ...this.totals };
  }

  async close(): Promise<DatagramSummary> {
    this.socket.close();
    await once(this.socket, 'close');
    return { ...this.totals };
  }

  private receive(datagram: Buffer, sender: Endpoint): void {
    this.totals.received += 1;
    const refusal = this.check(sender);
    if (refusal !== undefined) return this.drop(sender, refusal);
    const reply = this.handler(datagram);
    if (reply === undefined) return; // discard: no reply, so no budget spent either
    if (reply.length > MAX_REPLY_BYTES) return this.drop(sender, 'oversized-reply');
    if (this.peerBudget(unmapIPv4(sender.address)).take() === undefined) return this.drop(sender, 'over-budget');
    this.totals.answered += 1;
    this.socket.send(reply, sender.port, sender.address);
    this.log.debug({ event: 'datagram', from: formatEndpoint(sender), bytesIn: datagram.length, bytesOut: reply.length }, `udp ${formatEndpoint(sender)}: ${datagram.length} bytes in, ${reply.length} out`);
  }

  /** Why a datagram from `sender` must not be answered whatever it holds, if it must not. */
  private check(sender: Endpoint): DropReason | undefined {
    if (this.options.access !== undefined && !this.options.access.permits(sender.address)) return 'denied';
    if (sender.port < FIRST_UNPRIVILEGED_PORT) return 'privileged-source-port';
    if (this.options.ownPorts.has(sender.port)) return 'own-port';
    return undefined;
  }

  private peerBudget(peer: string): RateLimiter {
    let budget = this.peers.get(peer);
    if (budget === undefined) {
      if (this.peers.size >= MAX_TRACKED_PEERS) this.peers.delete(this.peers.keys().next().value!);
      budget = new RateLimiter(this.budget.perSecond, this.budget.burst);
      this.peers.set(peer, budget);
    }
    return budget;
  }

  private drop(sender: Endpoint, reason: DropReason): void {
    this.totals.dropped += 1;
    const skipped = this.logBudget.take();
    if (skipped === undefined) return;
    this.log.warn(
      { event: 'udp-dropped', reason, from: formatEndpoint(sender), ...(skipped > 0 && { skipped }) },
      `udp: not answering ${formatEndpoint(sender)} (${reason})${skipped > 0 ? ` (${skipped} earlier drops not logged)` : ''}`,
    );
  }
}
