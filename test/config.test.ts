/**
 * End to end: `lab-server serve --config FILE` serves the services of a TOML file, SIGHUP applies
 * an edit of it without touching what did not change, and a mistake in the file is one line that
 * names the file, the table and the key (exit 78), or, on a reload, a logged line that changes nothing.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { ExitCode } from '../src/errors.js';
import { assertOneLineError, jsonLines, LAB_SERVER, run, scratchFolder, start, type StartedProcess } from './helpers/cli.js';
import { connect, echoRoundTrip, freePort, readAll } from './helpers/servers.js';

/**
 * The server runs in Kathmandu's time zone (UTC+05:45), so that daytime's local time and UTC
 * differ by an amount no other zone's rounding could produce.
 */
const ZONE = ['env', 'TZ=Asia/Kathmandu'];
const KATHMANDU_OFFSET_MINUTES = 5 * 60 + 45;

/** How far daytime's clock reading is from UTC now, in minutes (0 for UTC, 345 for Kathmandu). */
function minutesFromUtc(daytimeLine: string): number {
  const [, hours, minutes] = /(\d\d):(\d\d):\d\d \d{4}/.exec(daytimeLine) ?? [];
  assert.ok(hours !== undefined, `an asctime line: ${JSON.stringify(daytimeLine)}`);
  const now = new Date();
  const difference = Number(hours) * 60 + Number(minutes) - (now.getUTCHours() * 60 + now.getUTCMinutes());
  return (difference + 24 * 60) % (24 * 60);
}

/** Within two minutes of `expected` (the reading and the check straddle a minute, on a loaded machine). */
function assertNear(actual: number, expected: number, what: string): void {
  const distance = Math.min(Math.abs(actual - expected), 24 * 60 - Math.abs(actual - expected));
  assert.ok(distance <= 2, `${what}: ${actual} minutes from UTC, expected about ${expected}`);
}

async function daytime(port: number): Promise<string> {
  return (await readAll(await connect(port))).toString();
}

async function udpEcho(port: number, text: string): Promise<string> {
  const socket = dgram.createSocket('udp4');
  try {
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    const reply = once(socket, 'message', { signal: AbortSignal.timeout(10_000) }) as Promise<[Buffer]>;
    socket.send(text, port, '127.0.0.1');
    return (await reply)[0].toString();
  } finally {
    socket.close();
  }
}

/** One line sent on an open echo connection, and what comes back. */
async function echoLine(socket: net.Socket, line: string): Promise<string> {
  const reply = once(socket, 'data', { signal: AbortSignal.timeout(10_000) }) as Promise<[Buffer]>;
  socket.write(line);
  return (await reply)[0].toString();
}

interface Ports {
  echo: number;
  daytime: number;
  qotd: number;
}

function configText(ports: Ports, quotes: string, { utc }: { utc: boolean }): string {
  return [
    '[defaults]',
    'log-format = "json"',
    'shutdown-timeout = 2',
    '',
    '[echo]',
    `port = ${ports.echo}`,
    'udp = true',
    '',
    '[daytime]',
    `port = ${ports.daytime}`,
    `utc = ${utc}`,
    '',
    '[qotd]',
    `port = ${ports.qotd}`,
    `quotes = ${JSON.stringify(quotes)}`,
    '',
  ].join('\n');
}

/** Sends SIGHUP and waits for the log line matching `pattern` that says how the reload went. */
async function reload(server: StartedProcess, pattern: RegExp): Promise<Record<string, unknown>> {
  server.child.kill('SIGHUP');
  return JSON.parse(await server.stdoutLine(pattern)) as Record<string, unknown>;
}

test('serve --config: three services from one file; SIGHUP restarts the changed one, keeps the others and their connections, and a broken edit changes nothing', async (t) => {
  const dir = scratchFolder(t);
  const quotes = join(dir, 'quotes.txt');
  writeFileSync(quotes, 'The only quote of this file.\n');
  const ports = { echo: await freePort(), daytime: await freePort(), qotd: await freePort() };
  const file = join(dir, 'lab-server.toml');
  writeFileSync(file, configText(ports, quotes, { utc: true }));
  const server = start(LAB_SERVER, ['serve', '--config', file], { prefix: ZONE });
  await server.stdoutLine(/"service":"qotd","event":"listening"/);

  // All three serve, as the file says: echo over TCP and UDP, daytime in UTC, qotd from its file.
  assert.equal((await echoRoundTrip(ports.echo, Buffer.from('over tcp\n'))).toString(), 'over tcp\n');
  assert.equal(await udpEcho(ports.echo, 'over udp'), 'over udp');
  assertNear(minutesFromUtc(await daytime(ports.daytime)), 0, 'daytime with utc = true');
  assert.equal((await readAll(await connect(ports.qotd))).toString(), 'The only quote of this file.\r\n');

  // A connection open across the reloads, on a service whose settings stay the same.
  const held = await connect(ports.echo);
  assert.equal(await echoLine(held, 'before\n'), 'before\n');

  writeFileSync(file, configText(ports, quotes, { utc: false }));
  const reloaded = await reload(server, /"event":"reloaded"/);
  assert.deepEqual([reloaded.restarted, reloaded.unchanged, reloaded.started, reloaded.stopped], [['daytime'], ['echo', 'qotd'], [], []]);
  assertNear(minutesFromUtc(await daytime(ports.daytime)), KATHMANDU_OFFSET_MINUTES, 'daytime in local time after the reload');
  assert.equal(await echoLine(held, 'after the reload\n'), 'after the reload\n');

  // A mistake in the file: logged, and every service goes on as it was.
  writeFileSync(file, configText(ports, quotes, { utc: true }).replace('[daytime]', '[daytime]\nmax-connections = 0'));
  const failed = await reload(server, /"event":"reload-failed"/);
  assert.match(String(failed.error), /\[daytime\] max-connections: invalid --max-connections "0"/);
  assertNear(minutesFromUtc(await daytime(ports.daytime)), KATHMANDU_OFFSET_MINUTES, 'daytime unchanged by the broken edit');
  assert.equal(await echoLine(held, 'after the broken edit\n'), 'after the broken edit\n');
  assert.equal(await udpEcho(ports.echo, 'still udp'), 'still udp');

  held.end();
  await once(held, 'end');
  server.child.kill('SIGTERM');
  const { code, stdout } = await server.finished;
  assert.equal(code, 0);
  const summaries = jsonLines(stdout).filter((line) => line.event === 'summary');
  // echo (TCP and UDP), qotd, the daytime the reload stopped and the one that replaced it.
  assert.equal(summaries.length, 5, stdout);
  assert.equal(summaries.filter((line) => line.service === 'echo' && line.transport === undefined)[0]?.connections, 2);
});

test('serve --config: a reload that adds a service on a port in use changes nothing', async (t) => {
  const dir = scratchFolder(t);
  const file = join(dir, 'lab-server.toml');
  const echoPort = await freePort();
  writeFileSync(file, `[defaults]\nlog-format = "json"\n[echo]\nport = ${echoPort}\n`);
  const server = start(LAB_SERVER, ['serve', '--config', file]);
  await server.stdoutLine(/"event":"listening"/);
  // Another program holds the port the new daytime service asks for: bind(2) says EADDRINUSE.
  const other = net.createServer().listen(0, '127.0.0.1');
  await once(other, 'listening');
  t.after(() => other.close());
  const taken = (other.address() as net.AddressInfo).port;
  writeFileSync(file, `[defaults]\nlog-format = "json"\n[echo]\nport = ${echoPort}\nidle-timeout = 60\n[daytime]\nport = ${taken}\n`);
  const failed = await reload(server, /"event":"reload-failed"/);
  assert.match(String(failed.error), new RegExp(`cannot listen on port ${taken}: the address is already in use`));
  assert.equal((await echoRoundTrip(echoPort, Buffer.from('still here\n'))).toString(), 'still here\n');
  server.child.kill('SIGTERM');
  const { code, stdout } = await server.finished;
  assert.equal(code, 0);
  // The echo server that served all along (its idle-timeout edit was not applied either), and no other.
  assert.deepEqual(jsonLines(stdout).filter((line) => line.event === 'summary').map((line) => line.service), ['echo']);
});

test('serve --config: mistakes are one line naming the file, the table and the key, exit 78', async (t) => {
  const dir = scratchFolder(t);
  const file = join(dir, 'bad.toml');
  const cases: [string, RegExp][] = [
    ['[echo]\nport = 10007\nmax-conections = 5\n', /^lab-server: .*bad\.toml: \[echo\] max-conections: unknown key: did you mean max-connections\?$/],
    ['[echo]\nrate = "fast"\n', /^lab-server: .*bad\.toml: \[echo\] rate: invalid --rate "fast": give new connections a second, like 20 or 20\/s$/],
    ['[ecoh]\nport = 10007\n', /^lab-server: .*bad\.toml: \[ecoh\]: no such service: did you mean \[echo\]\?$/],
    ['[defaults]\nlog-level = "loud"\n[echo]\n', /^lab-server: .*bad\.toml: \[defaults\] log-level: give one of "trace", .*, not "loud"$/],
    ['[echo]\nlog-file = "echo.log"\n', /^lab-server: .*bad\.toml: \[echo\] log-file: it applies to the whole server, not one service: set it in \[defaults\]$/],
    ['[echo]\nudp = "yes"\n', /^lab-server: .*bad\.toml: \[echo\] udp: give true or false \(without quotes\), not "yes"$/],
    ['[echo\n', /^lab-server: .*bad\.toml:1:6: .*not valid TOML/],
    ['[echo]\nport = 10007\n[daytime]\nport = 10007\n', /^lab-server: .*bad\.toml: \[daytime\] port: \[echo\] has TCP port 10007 already; give each service a port of its own$/],
  ];
  for (const [text, message] of cases) {
    writeFileSync(file, text);
    assertOneLineError(await run(LAB_SERVER, ['serve', '--config', file]), ExitCode.config, message);
  }
  assertOneLineError(await run(LAB_SERVER, ['serve', '--config', join(dir, 'missing.toml')]), ExitCode.noInput, /^lab-server: cannot read --config ".*missing\.toml": no such file$/);
});

test('serve --config --check: says what the file would serve, binds nothing, exit 0', async (t) => {
  const file = join(scratchFolder(t), 'lab-server.toml');
  writeFileSync(file, '[echo]\nport = 10007\nudp = true\n\n[daytime]\nport = 10013\nutc = true\n');
  const { code, stdout } = await run(LAB_SERVER, ['serve', '--check', '--config', file]);
  assert.equal(code, 0);
  assert.match(stdout, /valid; it serves echo on port 10007 \(TCP and UDP\), daytime on port 10013 \(TCP\)\n$/);
});
