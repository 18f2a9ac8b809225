/** --metrics: the counters match what happened, the text parses as Prometheus', and the endpoint is read-only. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { AccessControl } from '../src/framework/access-control.js';
import { EventStream } from '../src/framework/events.js';
import { MetricsObserver } from '../src/observers/metrics.js';
import { daytime } from '../src/protocols/daytime.js';
import { echo } from '../src/protocols/echo.js';
import type { TcpSocketEntry } from '../src/tcp-states/parse.js';
import { assertOneLineError, LAB_CLIENT, LAB_SERVER, run, startServerProcess } from './helpers/cli.js';
import { echoRoundTrip, startServer, waitFor } from './helpers/servers.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict reader of the Prometheus text format (0.0.4): every sample's family is declared by a
 * `# TYPE` line before it, names and labels are well formed, values are numbers.
 */
function parseExposition(text: string): Sample[] {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.slice(0, -1).split('\n')) {
    const declared = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line);
    if (declared !== null) {
      assert.ok(!types.has(declared[1]!), `${declared[1]} declared twice`);
      types.set(declared[1]!, declared[2]!);
      continue;
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* \S/.test(line)) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(sample !== null, `not a sample line: ${JSON.stringify(line)}`);
    const [, name, labelText = '', value] = sample;
    const labels: Record<string, string> = {};
    const rest = labelText.replace(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g, (_all, label: string, labelValue: string) => ((labels[label] = labelValue), ''));
    assert.equal(rest, '', `malformed labels in ${line}`);
    const family = types.has(name!) ? name! : name!.replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(family), `${name} comes before its # TYPE line`);
    assert.ok(!Number.isNaN(Number(value)), `${line}: not a number`);
    samples.push({ name: name!, labels, value: Number(value) });
  }
  return samples;
}

const valueOf = (samples: Sample[], name: string, labels: Record<string, string>): number | undefined =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

test('the counters follow the events: accepted, open, refused by reason, closes by who and how, bytes, durations', async (t) => {
  const events = new EventStream();
  const fakeTable: TcpSocketEntry[] = [];
  const metrics = new MetricsObserver(events, async () => fakeTable);
  t.after(() => metrics.stop());
  const { server, port } = await startServer(echo, { events, access: new AccessControl([], ['127.0.0.9']) });
  t.after(() => server.close(0));
  await echoRoundTrip(port, Buffer.from('hello\n'));
  await echoRoundTrip(port, Buffer.from('again, longer\n'));
  const refused = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.9' }).on('error', () => {});
  await waitFor('the refusal and both closes', async () => {
    const text = await metrics.render();
    return /connections_refused_total\{[^}]*\} 1/.test(text) && /connections_closed_total\{[^}]*\} 2/.test(text) ? true : undefined;
  });
  refused.destroy();
  const samples = parseExposition(await metrics.render());
  const tcp = { protocol: 'echo', transport: 'tcp' };
  assert.equal(valueOf(samples, 'lab_server_connections_accepted_total', tcp), 2);
  assert.equal(valueOf(samples, 'lab_server_connections_open', tcp), 0);
  assert.equal(valueOf(samples, 'lab_server_connections_refused_total', { ...tcp, reason: 'denied' }), 1);
  assert.equal(valueOf(samples, 'lab_server_connections_closed_total', { ...tcp, closed_by: 'client', how: 'fin' }), 2);
  assert.equal(valueOf(samples, 'lab_server_received_bytes_total', tcp), 20);
  assert.equal(valueOf(samples, 'lab_server_sent_bytes_total', tcp), 20);
  assert.equal(valueOf(samples, 'lab_server_connection_duration_seconds_count', tcp), 2);
  const buckets = samples.filter((s) => s.name === 'lab_server_connection_duration_seconds_bucket').map((s) => s.value);
  assert.deepEqual(buckets, [...buckets].sort((a, b) => a - b), 'buckets are cumulative');
  assert.equal(buckets.at(-1), 2, 'the +Inf bucket holds every connection');
  assert.ok(samples.every((s) => !Object.values(s.labels).some((v) => v.includes('127.0.0'))), 'never a label per client address');
});

test('the kernel\'s sockets of the service\'s port, by state, read at most once a second', async (t) => {
  const events = new EventStream();
  let reads = 0;
  const row = (state: TcpSocketEntry['state'], localPort: number): TcpSocketEntry => ({ local: { address: '127.0.0.1', port: localPort }, remote: { address: '127.0.0.1', port: 50000 }, state } as TcpSocketEntry);
  const metrics = new MetricsObserver(events, async (port) => {
    reads += 1;
    // The client's end of a connection to the port has it as its remote: not counted.
    return [row('LISTEN', port), row('TIME_WAIT', port), row('TIME_WAIT', port), row('ESTABLISHED', 50000)];
  });
  t.after(() => metrics.stop());
  const { server } = await startServer(daytime, { events });
  t.after(() => server.close(0));
  const samples = parseExposition(await metrics.render());
  const port = String(server.address().port);
  assert.equal(valueOf(samples, 'lab_server_kernel_tcp_sockets', { protocol: 'daytime', port, state: 'TIME_WAIT' }), 2);
  assert.equal(valueOf(samples, 'lab_server_kernel_tcp_sockets', { protocol: 'daytime', port, state: 'LISTEN' }), 1);
  assert.equal(valueOf(samples, 'lab_server_kernel_tcp_sockets', { state: 'ESTABLISHED' }), undefined);
  await metrics.render();
  assert.equal(reads, 1, 'a second scrape within the second reuses the reading');
});

test('lab-server --metrics: a real scrape after real clients, TIME_WAIT from the kernel; read-only; errors are one line', async (t) => {
  const server = await startServerProcess(['daytime', '--metrics', '0']);
  t.after(() => server.stop());
  const url = String((await server.event('metrics')).url);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  for (let i = 0; i < 2; i += 1) assert.equal((await run(LAB_CLIENT, ['daytime', `127.0.0.1:${server.port}`])).code, 0);
  const scrape = await fetch(url);
  assert.equal(scrape.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const samples = parseExposition(await scrape.text());
  const tcp = { protocol: 'daytime', transport: 'tcp' };
  assert.equal(valueOf(samples, 'lab_server_connections_accepted_total', tcp), 2);
  assert.equal(valueOf(samples, 'lab_server_connections_closed_total', { ...tcp, closed_by: 'server', how: 'fin' }), 2);
  if (process.platform === 'linux') assert.equal(valueOf(samples, 'lab_server_kernel_tcp_sockets', { state: 'TIME_WAIT', port: String(server.port) }), 2, 'the server closed first twice');
  assert.equal((await fetch(url, { method: 'POST' })).status, 405);
  assert.equal((await fetch(url.replace('/metrics', '/'))).status, 404);
  assertOneLineError(await run(LAB_SERVER, ['echo', '--port', '0', '--metrics', 'localhost:9913']), 64, /invalid --metrics "localhost:9913"/);
  const taken = new URL(url).port;
  assertOneLineError(await run(LAB_SERVER, ['echo', '--port', '0', '--metrics', taken]), 69, /--metrics: cannot listen on 127\.0\.0\.1 port \d+: the address is already in use/);
});

test('docs/reference/metrics.md lists every metric, and only those', async (t) => {
  const events = new EventStream();
  const metrics = new MetricsObserver(events, async () => []);
  t.after(() => metrics.stop());
  const served = [...(await metrics.render()).matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!);
  const documented = [...readFileSync(new URL('../../docs/reference/metrics.md', import.meta.url), 'utf8').matchAll(/^\| `(lab_server_\w+)` \|/gm)].map((m) => m[1]!);
  assert.deepEqual(documented.sort(), served.sort());
});
