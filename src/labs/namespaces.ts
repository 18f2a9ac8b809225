/**
 * Two "hosts" on one machine, for the labs where a host crashes, reboots or goes silent: two
 * network namespaces, each plugged into a switch (a bridge in a third namespace) with a veth pair,
 * a virtual cable. The switch is there so that unplugging the server's cable leaves the client's
 * link up, as on a LAN: with one veth pair straight between the hosts, the client's interface
 * would lose its carrier too, and its kernel would count its segments as dropped locally, not
 * retransmitted into silence. A network namespace is a whole
 * network stack of its own: interfaces, routes, a TCP table (its /proc/net/tcp), counters (its
 * /proc/net/snmp) and most net.ipv4 sysctls, so a lab can lower a timer inside one without
 * touching the machine's. On loopback, the other labs cannot make a peer vanish: the kernel on
 * both ends is the same, and it always answers.
 *
 * The commands are iproute2's, as a student would type them (`ip netns add`, `ip link add ... type
 * veth`, `ip netns exec NS sysctl -w ...`); making namespaces needs root (CAP_NET_ADMIN, and
 * CAP_SYS_ADMIN for the bind mount under /run/netns that names one). Every namespace is named
 * `labsrv-<pid>-<n>` and deleted when the lab ends, also when it fails or is interrupted; one left by
 * a lab that was killed outright (SIGKILL) is deleted by the next lab that makes namespaces.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Endpoint } from '../framework/endpoint.js';
import { findConnection, type TcpSocketEntry } from '../tcp-states/parse.js';
import { readTcpSockets } from '../tcp-states/read.js';
import { POLL_INTERVAL_MS } from '../tcp-states/wait.js';
import { LabError } from '../errors.js';
import { lastLine, type LabContext, type RunningProcess } from './context.js';

/**
 * The two hosts' addresses, from 198.18.0.0/15, which RFC 2544 sets aside for testing network
 * devices: no real network uses it, so an address in a transcript cannot be mistaken for a host on
 * the reader's LAN (10/8, 172.16/12 and 192.168/16 often are), and inside the namespaces nothing
 * else is reachable anyway. A /30 holds exactly these two hosts.
 */
export const CLIENT_ADDRESS = '198.18.0.1';
export const SERVER_ADDRESS = '198.18.0.2';
const PREFIX_LENGTH = 30;
/** Each host's network card, at one end of its cable. */
const HOST_INTERFACE = 'eth0';
/**
 * The server's card keeps its hardware address when its host reboots, as a real one does: the
 * client's ARP cache stays right. 02: a locally administered address (IEEE 802), no vendor's.
 */
const SERVER_MAC = '02:00:c6:12:00:02';
/** The switch (a bridge) and its ports, at the other end of each cable. */
const SWITCH = 'switch';
const PORT_OF = { client: 'port-client', server: 'port-server' } as const;
/** Every namespace a lab makes has this prefix, then the lab's PID: `labsrv-4242-1`. */
const NAME_PREFIX = 'labsrv-';

/** The program that holds each end's sockets inside its namespace. */
const PEER = fileURLToPath(new URL('./netns-peer.js', import.meta.url));

/** CAP_NET_ADMIN (12): interfaces and namespaces; CAP_SYS_ADMIN (21): ip netns add's bind mount (capability.h). */
const NEEDED_CAPABILITIES = [12n, 21n];

/** The tools, each with the package a user would install. */
const TOOLS = [
  { command: 'ip', args: ['-V'], name: "iproute2's ip" },
  { command: 'sysctl', args: ['-n', 'kernel.ostype'], name: "procps' sysctl" },
] as const;

/** What the peer program prints: an event, the wall clock, and the event's details. */
export interface PeerEvent {
  event: 'listening' | 'accepted' | 'connected' | 'data' | 'end' | 'error' | 'done';
  at: number;
  code?: string;
  /** `listening`: the port it listens on. */
  port?: number;
  local?: Endpoint;
  remote?: Endpoint;
}

/** A netns-peer.ts program running inside a namespace. */
export type Peer = RunningProcess<PeerEvent>;

/** A client's peer program, and its connection's socket pair as the client sees it. */
export interface ConnectedPeer {
  peer: Peer;
  local: Endpoint;
  remote: Endpoint;
}

/** The next thing that happens to a peer's connection (an error, an end of file), past the commands it has done. */
export async function nextOutcome(peer: Peer, what: string, deadlineMs?: number): Promise<PeerEvent> {
  for (;;) {
    const event = await peer.next<PeerEvent>(what, deadlineMs);
    if (event.event !== 'done') return event;
  }
}

/**
 * Why this process cannot make network namespaces, as the end of "lab NAME needs ...", or
 * undefined when it can: it checks the effective capabilities (root has them) and the tools.
 */
export async function namespacesUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'Linux network namespaces (ip netns): run it on Linux';
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '');
  const effective = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0'}`);
  const privileged = NEEDED_CAPABILITIES.every((bit) => ((effective >> bit) & 1n) === 1n);
  const missingTools = (await Promise.all(TOOLS.map(async (tool) => ((await succeeds(tool.command, tool.args)) ? [] : [tool.name])))).flat();
  if (privileged && missingTools.length === 0) return undefined;
  // Root in a container may lack them: docker drops CAP_NET_ADMIN and CAP_SYS_ADMIN unless given back.
  const getPrivileges = process.geteuid?.() === 0 ? 'give root CAP_NET_ADMIN and CAP_SYS_ADMIN (a container: docker run --cap-add NET_ADMIN --cap-add SYS_ADMIN)' : 'run it with sudo';
  const advice = [...(missingTools.length > 0 ? [`install ${missingTools.join(' and ')}`] : []), ...(privileged ? [] : [getPrivileges])];
  return `root to create network namespaces (CAP_NET_ADMIN) and iproute2's ip: ${advice.join(', then ')}`;
}

/** One network namespace: a host of its own, with its own TCP stack. */
export class Namespace {
  constructor(readonly name: string) {}

  /** Runs a command inside it: `ip netns exec NAME command...`. */
  exec(command: readonly string[]): Promise<string> {
    return ip(['netns', 'exec', this.name, ...command]);
  }

  /** Sets a sysctl for this namespace only (the net.ipv4.tcp_* ones are per namespace). */
  async sysctl(key: string, value: number | string): Promise<void> {
    await this.exec(['sysctl', '-q', '-w', `${key}=${value}`]);
  }

  /** A server inside (netns-peer.ts), listening on `address` (port 0: one the kernel picks); resolves with it and its port. */
  async listen(ctx: LabContext, address: string, port: number, label: string): Promise<{ peer: Peer; port: number }> {
    const peer = await this.startPeer(ctx, ['listen', address, String(port)], label);
    return { peer, port: peer.ready.port! };
  }

  /** A client inside (netns-peer.ts), connected to `address`:`port`; with `keepAliveMs`, setKeepAlive(true, keepAliveMs) on it. */
  async connect(ctx: LabContext, address: string, port: number, label: string, keepAliveMs?: number): Promise<ConnectedPeer> {
    const peer = await this.startPeer(ctx, ['connect', address, String(port), ...(keepAliveMs === undefined ? [] : [String(keepAliveMs)])], label);
    return { peer, local: peer.ready.local!, remote: peer.ready.remote! };
  }

  /** Starts a program inside (ctx.startProcess: it is ready once it prints a line of JSON, and stopped when the lab ends). */
  start<T>(ctx: LabContext, command: readonly string[], label: string): Promise<RunningProcess<T>> {
    return ctx.startProcess<T>('ip', ['netns', 'exec', this.name, ...command], label);
  }

  private startPeer(ctx: LabContext, args: readonly string[], label: string): Promise<Peer> {
    return this.start<PeerEvent>(ctx, [process.execPath, PEER, ...args], label);
  }
}

/**
 * Where to read a namespace's tables: the /proc of a process inside it. /proc/PID/net shows the
 * network namespace of process PID (`ip netns exec` execs the program, so the PID is the peer's).
 */
export const procRootOf = (process: RunningProcess<unknown>): string => `/proc/${process.pid}`;

/** A value read from a socket's row, and when, in ms after the lab's reference moment. */
export interface Sample<T> {
  value: T;
  atMs: number;
}

/**
 * Each new value `pick` finds in the row of {local, remote} in the table under `procRoot` (a count
 * that rises: retransmissions, probes), with its time after `since`, until `until` settles. Read every
 * POLL_INTERVAL_MS; a value that lasts a timer's period (200 ms or more) is not missed on a quiet machine.
 * It never fails: it ends early, with what it saw, if the table can no longer be read.
 */
export async function watchRow<T>(procRoot: string, local: Endpoint, remote: Endpoint, pick: (entry: TcpSocketEntry) => T, since: number, until: Promise<unknown>): Promise<Array<Sample<T>>> {
  let done = false;
  void until.catch(() => undefined).finally(() => (done = true));
  const seen: Array<Sample<T>> = [];
  while (!done) {
    // The process whose /proc this is may end first (the lab failed, or was interrupted): then so does the watch.
    const table = await readTcpSockets({ procRoot, port: local.port, peerPorts: [remote.port] }).catch(() => undefined);
    if (table === undefined) break;
    const entry = findConnection(table, local, remote);
    const value = entry === undefined ? undefined : pick(entry);
    if (value !== undefined && value !== seen.at(-1)?.value) seen.push({ value, atMs: Date.now() - since });
    await sleep(POLL_INTERVAL_MS);
  }
  return seen;
}

/** The client and server hosts, and what can happen to the server. */
export interface TwoHosts {
  client: Namespace;
  server: Namespace;
  /** The server's cable comes out of the switch (its port goes down). No FIN, no RST: nothing more from it. */
  unplugServer(): Promise<void>;
  /**
   * The server host crashes and boots again: its program is killed, its namespace deleted (and with
   * it every socket and the cable), then made again with the same address: a fresh TCP stack that
   * has never heard of any connection.
   */
  rebootServer(program: RunningProcess<unknown>): Promise<void>;
}

/** A server listening in the server host (on a port the kernel picks), and a client connected to it from the client host, once accepted. */
export async function connectAcross(ctx: LabContext, hosts: TwoHosts): Promise<{ server: Peer; port: number; client: ConnectedPeer }> {
  const { peer: server, port } = await hosts.server.listen(ctx, SERVER_ADDRESS, 0, 'the server');
  const accepted = server.next<PeerEvent>('the server to accept');
  const client = await hosts.client.connect(ctx, SERVER_ADDRESS, port, 'the client');
  await accepted;
  return { server, port, client };
}

/** The per-namespace sysctls each host starts with, e.g. `{ 'net.ipv4.tcp_retries2': 3 }`. */
export interface HostSettings {
  client?: Record<string, number | string>;
  server?: Record<string, number | string>;
}

let namespacesMade = 0;

/**
 * Makes the two hosts, each cabled to the switch (client 198.18.0.1, server 198.18.0.2), with
 * their sysctls set, and says what it made. All three namespaces are deleted when the lab ends.
 */
export async function twoHosts(ctx: LabContext, settings: HostSettings = {}): Promise<TwoHosts> {
  await deleteLeftovers();
  const network = await makeNamespace(ctx);
  await ip(['-n', network.name, 'link', 'add', SWITCH, 'type', 'bridge']);
  await ip(['-n', network.name, 'link', 'set', SWITCH, 'up']);
  /** A host with its sysctls, cabled to the switch, its card configured and up. */
  const host = async (role: 'client' | 'server', address: string, mac?: string): Promise<Namespace> => {
    const namespace = await makeNamespace(ctx);
    for (const [key, value] of Object.entries(settings[role] ?? {})) await namespace.sysctl(key, value);
    const card = ['link', 'add', HOST_INTERFACE, ...(mac === undefined ? [] : ['address', mac]), 'netns', namespace.name];
    await ip([...card, 'type', 'veth', 'peer', 'name', PORT_OF[role], 'netns', network.name]);
    await ip(['-n', network.name, 'link', 'set', PORT_OF[role], 'master', SWITCH, 'up']);
    await ip(['-n', namespace.name, 'addr', 'add', `${address}/${PREFIX_LENGTH}`, 'dev', HOST_INTERFACE]);
    await ip(['-n', namespace.name, 'link', 'set', HOST_INTERFACE, 'up']);
    return namespace;
  };
  const client = await host('client', CLIENT_ADDRESS);
  let server = await host('server', SERVER_ADDRESS, SERVER_MAC);
  const unplugServer = (): Promise<void> => ip(['-n', network.name, 'link', 'set', PORT_OF.server, 'down']).then(() => undefined);
  ctx.say(`two hosts, network namespaces ${client.name} (client, ${CLIENT_ADDRESS}) and ${server.name} (server, ${SERVER_ADDRESS}), cabled to a switch in ${network.name}`);
  return {
    client,
    get server() {
      return server;
    },
    unplugServer,
    async rebootServer(program) {
      // The crash: the cable first, so that not even the FIN of the program's death gets out; then the
      // program, since a namespace lives on while a process is inside it.
      await unplugServer();
      await program.kill('SIGKILL');
      // Deleting one end of a veth pair deletes both, now; a deleted namespace is dismantled later, in the background.
      await ip(['-n', network.name, 'link', 'del', PORT_OF.server]);
      await deleteNamespace(server.name);
      server = await host('server', SERVER_ADDRESS, SERVER_MAC);
    },
  };
}

/**
 * One host of its own: a namespace with only its loopback, and its sysctls set, for a lab that
 * changes a timer (tcp_fin_timeout) that the machine's own connections must keep. Deleted when the lab ends.
 */
export async function privateHost(ctx: LabContext, settings: Record<string, number | string>): Promise<Namespace> {
  await deleteLeftovers();
  const namespace = await makeNamespace(ctx);
  for (const [key, value] of Object.entries(settings)) await namespace.sysctl(key, value);
  return namespace;
}

/** A new, empty namespace with its loopback up, deleted when the lab ends. */
async function makeNamespace(ctx: LabContext): Promise<Namespace> {
  namespacesMade += 1;
  const namespace = new Namespace(`${NAME_PREFIX}${process.pid}-${namespacesMade}`);
  await ip(['netns', 'add', namespace.name]);
  ctx.defer(() => deleteNamespace(namespace.name));
  await ip(['-n', namespace.name, 'link', 'set', 'lo', 'up']);
  return namespace;
}

/** Deletes a namespace's name; the kernel frees it once no process is left inside. Gone already is fine. */
async function deleteNamespace(name: string): Promise<void> {
  await ip(['netns', 'del', name]).catch((error: unknown) => {
    if (!/No such file/.test((error as Error).message)) throw error;
  });
}

/** Namespaces of labs whose process is gone (killed with SIGKILL, which no cleanup survives). */
async function deleteLeftovers(): Promise<void> {
  const names = (await ip(['netns', 'list'])).split('\n').map((line) => line.split(' ')[0] ?? '');
  for (const name of names) {
    const pid = new RegExp(`^${NAME_PREFIX}(\\d+)-\\d+$`).exec(name)?.[1];
    if (pid !== undefined && !isAlive(Number(pid))) await deleteNamespace(name);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs ip; a failure is one line quoting what ip said. */
function ip(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error === null) resolve(stdout);
      else reject(new LabError('ERR_LAB_NAMESPACE', `ip ${args.join(' ')} failed: ${lastLine(stderr) || error.message}`));
    });
  });
}

function succeeds(command: string, args: readonly string[]): Promise<boolean> {
  return new Promise((resolve) => execFile(command, args, (error) => resolve(error === null)));
}
