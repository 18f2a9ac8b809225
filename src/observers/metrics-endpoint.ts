/**
 * The HTTP side of --metrics: `GET /metrics` answers with the exposition (metrics.ts), as
 * Prometheus scrapes it. Read-only: any other method is 405, any other path 404. node:http, no
 * framework: there is one route.
 */
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeListenError } from '../framework/listen.js';
import type { Endpoint } from '../framework/endpoint.js';
import type { MetricsObserver } from './metrics.js';

/** The content type of the Prometheus text format. */
const EXPOSITION_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface MetricsEndpoint {
  local: Endpoint;
  close(): Promise<void>;
}

export async function serveMetrics(metrics: MetricsObserver, { host, port }: { host: string; port: number }): Promise<MetricsEndpoint> {
  const server = http.createServer((request, response) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('only GET: the metrics are read-only\n');
      return;
    }
    if (request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    metrics.render().then(
      (text) => response.writeHead(200, { 'content-type': EXPOSITION_TYPE }).end(request.method === 'HEAD' ? undefined : text),
      (error: Error) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
    );
  });
  // A scraper that connects and says nothing must not hold a descriptor for long.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.listen(port, host);
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => Promise.reject(error))]);
  } catch (error) {
    throw describeListenError(error, host, port, '--metrics');
  }
  const { address, port: boundPort } = server.address() as AddressInfo;
  return {
    local: { address, port: boundPort },
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
