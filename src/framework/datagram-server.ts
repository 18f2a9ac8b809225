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
 * budget and then go quiet for it, and never send more than 512 bytes per reply. Every
 * datagram becomes an event: `datagram` when answered, `udp-dropped` with the reason when not.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import type { AccessControl } from './access-control.js';
import { unmapIPv4, type Endpoint } from './endpoint.js';
import { usageError } from '../errors.js';
import { EventStream, type DropReason, type ServiceEvents } from './events.js';
import { openUdpSockets, type ListenOn } from './listen.js';
import type { DatagramHandler, Protocol } from './protocol.js';
import type { ServiceOptions } from './server.js';
import { TokenBucket } from './token-bucket.js';

/** Replies per peer address: a burst, then a steady rate. Small, so a loop dies out quickly. */
export interface DatagramBudget {
  burst: number;
  perSecond: number;
}

export const DEFAULT_DATAGRAM_BUDGET: DatagramBudget = { burst: 10, perSecond: 2 };

/**
 * Replies and reply bytes per second for the whole service, all peers together (after a burst of
 * twice as many). The per-peer budget alone does not stop reflection from many forged sources:
 * 20,000 of them each earn a burst. 200 replies a second still answers a class of 30 sending a
 * burst each, and 64 KiB a second caps what the service can ever be made to send to a victim.
 */
export interface ServiceReplyBudget {
  repliesPerSecond: number;
  bytesPerSecond: number;
}

export const DEFAULT_SERVICE_REPLY_BUDGET: ServiceReplyBudget = { repliesPerSecond: 200, bytesPerSecond: 64 * 1024 };

/** Never answer with more than this many bytes: no amplification beyond the old RFCs' limit. */
export const MAX_REPLY_BYTES = 512;
/** Ports below this are the well-known services (echo 7, chargen 19, ...): never answer them. */
const FIRST_UNPRIVILEGED_PORT = 1024;
/** Peers remembered for their budgets; the oldest is forgotten beyond this. */
const MAX_TRACKED_PEERS = 10_000;
/**
 * Replies a peer first seen while the table is full starts with, instead of a full burst: when
 * peers are being forgotten, churning through forged sources must not buy a fresh burst each.
 */
const NEW_PEER_TOKENS_WHEN_FULL = 1;

export interface DatagramServerOptions extends ServiceOptions {
  /** This process's own service ports: a datagram from one of them would start a loop. */
  ownPorts: ReadonlySet<number>;
  budget?: DatagramBudget;
  /** The whole service's replies and bytes per second, all peers together. */
  serviceBudget?: ServiceReplyBudget;
  /** Peers remembered for their budgets (default 10,000); a test makes it small to see it fill. */
  maxTrackedPeers?: number;
  /** Which peer addresses may be answered (--allow/--deny); everyone when absent. */
  access?: AccessControl;
}

export interface DatagramSummary {
  received: number;
  answered: number;
  dropped: number;
}

export class DatagramServer {
  readonly protocol: Protocol;
  readonly events: ServiceEvents;
  private readonly sockets: dgram.Socket[] = [];
  private readonly handler: DatagramHandler;
  private readonly budget: DatagramBudget;
  private readonly peers = new Map<string, TokenBucket>();
  private readonly serviceReplies: TokenBucket;
  private readonly serviceBytes: TokenBucket;
  private readonly totals: DatagramSummary = { received: 0, answered: 0, dropped: 0 };
  private readonly shutdown = new AbortController();

  constructor(private readonly options: DatagramServerOptions) {
    const { protocol } = options;
    this.protocol = protocol;
    this.events = (options.events ?? new EventStream()).forService(protocol.name, 'udp');
    const context = { now: options.now ?? (() => new Date()), shutdown: this.shutdown.signal };
    const handler = protocol.createHandlers(options.settings ?? {}, context).udp;
    if (handler === undefined) throw usageError('ERR_NO_UDP', `${protocol.name} has no UDP service (RFC ${protocol.rfc} defines TCP only)`);
    this.handler = handler;
    this.budget = options.budget ?? DEFAULT_DATAGRAM_BUDGET;
    const { repliesPerSecond, bytesPerSecond } = options.serviceBudget ?? DEFAULT_SERVICE_REPLY_BUDGET;
    this.serviceReplies = new TokenBucket(repliesPerSecond, 2 * repliesPerSecond);
    this.serviceBytes = new TokenBucket(bytesPerSecond, Math.max(2 * bytesPerSecond, MAX_REPLY_BYTES));
  }

  /** Binds where `on` says (both loopback addresses when no host is given), or adopts a socket. */
  async listen(on: ListenOn<dgram.Socket>): Promise<Endpoint[]> {
    const bound = await openUdpSockets(on, (type) => dgram.createSocket({ type, ipv6Only: false }));
    for (const { handle: socket, local, inherited } of bound) {
      this.sockets.push(socket);
      socket.on('message', (datagram, sender) => this.receive(socket, local, datagram, { address: sender.address, port: sender.port }));
      // After bind, errors concern one send (e.g. the peer's port was unreachable): say so, go on.
      socket.on('error', (error: NodeJS.ErrnoException) => this.events.emit('udp-error', { code: error.code ?? 'ERROR', message: error.message }));
      this.events.emit('listening', { local, inherited, rfc: this.options.protocol.rfc });
    }
    return bound.map(({ local }) => local);
  }

  /** The first socket's local end (the port is the same on every one). */
  address(): Endpoint {
    const { address, port } = this.sockets[0]!.address();
    return { address, port };
  }

  /** Datagrams received, answered and dropped so far. */
  summary(): DatagramSummary {
    return { ...this.totals };
  }

  async close(): Promise<DatagramSummary> {
    this.shutdown.abort();
    await Promise.all(
      this.sockets.map((socket) => {
        socket.close();
        return once(socket, 'close');
      }),
    );
    this.events.emit('summary', { transport: 'udp', ...this.totals });
    return this.summary();
  }

  private receive(socket: dgram.Socket, local: Endpoint, datagram: Buffer, remote: Endpoint): void {
    this.totals.received += 1;
    const drop = (reason: DropReason): void => {
      this.totals.dropped += 1;
      this.events.emit('udp-dropped', { local, remote, reason, bytesIn: datagram.length });
    };
    const refusal = this.check(remote);
    if (refusal !== undefined) return drop(refusal);
    let reply: Buffer | undefined;
    try {
      reply = this.handler(datagram);
    } catch (error) {
      // A protocol that throws loses this datagram, not the server.
      const { message, stack } = error instanceof Error ? error : { message: String(error), stack: undefined };
      this.events.emit('protocol-error', { local, remote, message, ...(stack === undefined ? {} : { stack }) });
      return drop('protocol-error');
    }
    if (reply !== undefined && reply.length > MAX_REPLY_BYTES) return drop('oversized-reply');
    // discard answers nothing, and so spends no budget either.
    if (reply !== undefined) {
      const over = this.overBudget(unmapIPv4(remote.address), reply.length);
      if (over !== undefined) return drop(over);
      this.totals.answered += 1;
      socket.send(reply, remote.port, remote.address);
    }
    this.events.emit('datagram', { local, remote, bytesIn: datagram.length, bytesOut: reply?.length ?? 0 });
  }

  /** Why a datagram from `sender` must not be answered whatever it holds, if it must not. */
  private check(sender: Endpoint): DropReason | undefined {
    if (this.options.access !== undefined && !this.options.access.permits(sender.address)) return 'denied';
    if (sender.port < FIRST_UNPRIVILEGED_PORT) return 'privileged-source-port';
    if (this.options.ownPorts.has(sender.port)) return 'own-port';
    return undefined;
  }

  /**
   * Spends the budgets a reply of `bytes` to `peer` needs, or says which one is spent: the
   * service's first (checked without taking, so a reply it refuses costs the peer nothing), then
   * the peer's.
   */
  private overBudget(peer: string, bytes: number): DropReason | undefined {
    const now = this.events.now();
    if (!this.serviceReplies.has(now) || !this.serviceBytes.has(now, bytes)) return 'service-over-budget';
    if (!this.peerBudget(peer).take(now)) return 'over-budget';
    this.serviceReplies.take(now);
    this.serviceBytes.take(now, bytes);
    return undefined;
  }

  private peerBudget(peer: string): TokenBucket {
    let budget = this.peers.get(peer);
    if (budget === undefined) {
      const full = this.peers.size >= (this.options.maxTrackedPeers ?? MAX_TRACKED_PEERS);
      if (full) this.peers.delete(this.peers.keys().next().value!);
      budget = new TokenBucket(this.budget.perSecond, this.budget.burst, full ? NEW_PEER_TOKENS_WHEN_FULL : this.budget.burst);
      this.peers.set(peer, budget);
    }
    return budget;
  }
}
