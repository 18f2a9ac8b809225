/**
 * `--dashboard`: the classroom page, served by lab-server itself with node:http. An observer: it
 * reads the event stream (through DashboardState) and has no way to change the server. It answers
 * GET (and HEAD) only:
 *
 *   /            the page (HTML), /page.css, /page.js: fixed text, embedded in this module
 *   /events      Server-Sent Events: a snapshot, then an update at most every UPDATE_INTERVAL_MS
 *   /ladder?key=#3   one connection's ladder, as JSON, when the page selects it
 *
 * Updates are batched: a server busy with thousands of connections a second sends the page four
 * updates a second, each with what changed (state.ts bounds what that can be), rather than one
 * message per event. Each message is kept for a while, so that a browser that reconnects with
 * Last-Event-ID gets the ones it missed; one that missed more gets a fresh snapshot.
 *
 * Safe by default: it binds 127.0.0.1 unless told otherwise, and there answers only requests that
 * name it by an address or as localhost (DNS rebinding); the page is built with textContent only
 * (no HTML from data) and a Content-Security-Policy forbids any script but /page.js.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import { isIP, type AddressInfo } from 'node:net';
import { LabError } from '../../errors.js';
import { formatEndpoint, isLoopback, type Endpoint } from '../../framework/endpoint.js';
import type { Clock } from '../../framework/events.js';
import { describeListenError } from '../../framework/listen.js';
import { DashboardState } from './state.js';
import { DEFAULT_MAX_BUFFERED_BYTES, formatSseMessage, lastEventId, SSE_KEEPALIVE, SseClient } from './sse.js';
import { PAGE_CSS } from './page-css.js';
import { PAGE_HTML } from './page-html.js';
import { PAGE_SCRIPT } from './page-script.js';

/** How often the page is updated: fast enough to look live, slow enough to cost nothing. */
export const UPDATE_INTERVAL_MS = 250;
/** A comment every so often, so that a proxy keeps the stream open and a vanished browser is noticed. */
const KEEPALIVE_INTERVAL_MS = 15_000;
/** Messages kept for browsers that reconnect (Last-Event-ID): about a minute of updates. */
const MESSAGES_KEPT = 240;
/** Browsers at once: a classroom's worth, and a bound on what the page can cost. */
const MAX_CLIENTS = 64;

/**
 * Headers of every answer. The policy allows only this server's own script and style sheet: even
 * if some text did get into the page as markup, no inline script or handler would run.
 */
const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
} as const;

const STATIC_FILES: Record<string, { type: string; body: string }> = {
  '/': { type: 'text/html; charset=utf-8', body: PAGE_HTML },
  '/page.css': { type: 'text/css; charset=utf-8', body: PAGE_CSS },
  '/page.js': { type: 'text/javascript; charset=utf-8', body: PAGE_SCRIPT },
};

export interface DashboardOptions {
  /** Where to listen (--dashboard's value, cli/arguments.ts); port 0 lets the kernel choose. */
  listen: Endpoint;
  updateIntervalMs?: number;
  maxBufferedBytes?: number;
  clock?: Clock;
}

export class Dashboard {
  readonly state: DashboardState;
  private readonly http: Server;
  private readonly clients = new Set<SseClient>();
  /** Recent messages, oldest first, for Last-Event-ID. */
  private readonly kept: { id: number; framed: string }[] = [];
  private lastId = 0;
  private droppedClients = 0;
  private readonly ticker: NodeJS.Timeout;
  private readonly keepalive: NodeJS.Timeout;
  private readonly maxBufferedBytes: number;

  private constructor(options: DashboardOptions) {
    this.state = new DashboardState(options.clock);
    this.maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.http = createHttpServer((request, response) => this.answer(request, response));
    this.ticker = setInterval(() => this.publish(), options.updateIntervalMs ?? UPDATE_INTERVAL_MS);
    this.keepalive = setInterval(() => this.broadcast(SSE_KEEPALIVE), KEEPALIVE_INTERVAL_MS);
    // The page must not keep a stopping server's process alive.
    this.ticker.unref();
    this.keepalive.unref();
  }

  /** Starts listening; a port in use is the usual one-line error (ERR_PORT_IN_USE). */
  static async start(options: DashboardOptions): Promise<Dashboard> {
    const dashboard = new Dashboard(options);
    const { address, port } = options.listen;
    dashboard.http.listen({ host: address, port });
    try {
      await once(dashboard.http, 'listening');
    } catch (error) {
      dashboard.stopTimers();
      const described = describeListenError(error, address, port);
      if (described instanceof LabError && described.code === 'ERR_PORT_IN_USE') {
        throw new LabError('ERR_PORT_IN_USE', `--dashboard: cannot listen on ${formatEndpoint({ address, port })}: the address is already in use; stop that server or give another port (--dashboard ${formatEndpoint({ address, port: 0 })} lets the kernel choose)`);
      }
      throw described;
    }
    return dashboard;
  }

  /** The page's address, e.g. http://127.0.0.1:8080/ */
  get url(): string {
    const { address, port } = this.http.address() as AddressInfo;
    return `http://${formatEndpoint({ address, port })}/`;
  }

  /** Browsers dropped for not reading their stream. */
  get dropped(): number {
    return this.droppedClients;
  }

  /** Ends every page's stream and stops listening. */
  async close(): Promise<void> {
    this.stopTimers();
    this.publish();
    for (const client of this.clients) client.end();
    this.clients.clear();
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeAllConnections();
    await closed;
  }

  private stopTimers(): void {
    clearInterval(this.ticker);
    clearInterval(this.keepalive);
  }

  private answer(request: IncomingMessage, response: ServerResponse): void {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) response.setHeader(name, value);
    // Read-only: nothing on this server changes anything, and it says so to any other method.
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' });
      response.end('read-only: only GET and HEAD\n');
      return;
    }
    if (!this.answersTo(request.headers.host)) {
      response.writeHead(403, { 'Content-Type': 'text/plain; charset=utf-8' });
      response.end('open this page by its address (http://127.0.0.1:PORT/) or as localhost\n');
      return;
    }
    const url = new URL(request.url ?? '/', 'http://dashboard');
    const file = STATIC_FILES[url.pathname];
    if (file !== undefined) return this.sendText(request, response, 200, file.type, file.body);
    if (url.pathname === '/events') return this.openStream(request, response);
    // Browsers ask for an icon by themselves; there is none, and that is not an error.
    if (url.pathname === '/favicon.ico') return void response.writeHead(204).end();
    if (url.pathname === '/ladder') {
      const ladder = this.state.ladder(url.searchParams.get('key') ?? '');
      if (ladder === undefined) return this.sendText(request, response, 404, 'text/plain; charset=utf-8', 'no such connection (it may have left the table)\n');
      return this.sendText(request, response, 200, 'application/json', JSON.stringify(ladder));
    }
    this.sendText(request, response, 404, 'text/plain; charset=utf-8', 'not found\n');
  }

  /**
   * DNS rebinding: a page on another site can point a name of its own at 127.0.0.1 and then read a
   * loopback page through the visitor's browser, which sends that name as Host. A page only this
   * machine can reach is opened by an address or as `localhost`, so on loopback any other name is
   * refused. Bound to a network address for a class, the page is open to the network anyway.
   */
  private answersTo(host: string | undefined): boolean {
    const bound = (this.http.address() as AddressInfo).address;
    if (!isLoopback(bound) || host === undefined) return true;
    const name = host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    return isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost');
  }

  private sendText(request: IncomingMessage, response: ServerResponse, status: number, type: string, body: string): void {
    response.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
    response.end(request.method === 'HEAD' ? undefined : body);
  }

  private openStream(request: IncomingMessage, response: ServerResponse): void {
    if (this.clients.size >= MAX_CLIENTS) {
      return this.sendText(request, response, 503, 'text/plain; charset=utf-8', `at most ${MAX_CLIENTS} pages at once\n`);
    }
    // Pending changes go to the pages already open first: the snapshot below includes them.
    this.publish();
    const client = new SseClient(response, this.maxBufferedBytes, () => (this.droppedClients += 1));
    this.clients.add(client);
    response.once('close', () => this.clients.delete(client));
    if (request.method === 'HEAD') return void response.end();
    // Tell EventSource to wait a second before reconnecting.
    client.write('retry: 1000\n\n');
    const since = lastEventId(request.headers['last-event-id']);
    const oldest = this.kept[0]?.id;
    if (since !== undefined && oldest !== undefined && since >= oldest - 1 && since <= this.lastId) {
      for (const message of this.kept) if (message.id > since) client.write(message.framed);
      return;
    }
    // A first visit, or one that missed too much: everything, as of the last message.
    client.send({ id: this.lastId, event: 'update', data: JSON.stringify(this.state.snapshot()) });
  }

  /** Sends what changed to every page, and keeps it for those that reconnect. */
  private publish(): void {
    const update = this.state.takeUpdate();
    if (update === undefined) return;
    if (this.clients.size === 0) {
      // Nobody to send it to: the kept messages no longer lead up to now, so a page that comes
      // back must start from a snapshot.
      this.kept.length = 0;
      return;
    }
    this.lastId += 1;
    const framed = formatSseMessage({ id: this.lastId, event: 'update', data: JSON.stringify(update) });
    this.kept.push({ id: this.lastId, framed });
    if (this.kept.length > MESSAGES_KEPT) this.kept.shift();
    this.broadcast(framed);
  }

  private broadcast(framed: string): void {
    for (const client of this.clients) {
      if (!client.write(framed)) this.clients.delete(client);
    }
  }
}
