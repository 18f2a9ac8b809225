/**
 * Capturing real packets with tcpdump, the capture tool every Unix has.
 *
 * Capturing needs a raw packet socket (AF_PACKET on Linux), which only a process with
 * CAP_NET_RAW may open: root, or a tcpdump given the capability once with setcap (as Wireshark's
 * dumpcap is, for the users in its group). So we do not capture in Node (that would need a native
 * addon and root for the whole server): we run tcpdump, which writes the packets to its stdout in
 * the pcap format, and parse that stream (pcap.ts, decode.ts).
 *
 *   tcpdump -i lo -w - -U --immediate-mode -n FILTER
 *
 * `-w -` writes pcap to stdout; `-U` flushes after each packet instead of when a buffer fills;
 * `--immediate-mode` makes the kernel hand over each packet at once instead of batching them for
 * up to a second (TPACKET_V3's block timeout). tcpdump says "listening on lo" on stderr once its
 * filter is installed: from then on, no packet is missed.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { escapeText } from '../framework/escape.js';
import { checkLinkType } from './decode.js';
import { PcapReader, type PcapRecord } from './pcap.js';

/** The loopback interface: every lab's traffic crosses it. */
export const LOOPBACK_INTERFACE = process.platform === 'linux' ? 'lo' : 'lo0';
/** How long tcpdump may take to open the interface and install its filter. */
const READY_DEADLINE_MS = 5000;
/** How long tcpdump may take to flush and exit after SIGINT before it is killed. */
const EXIT_DEADLINE_MS = 2000;

export const CAPTURE_RIGHTS_ADVICE =
  'run with sudo, or let tcpdump capture for everyone once: sudo setcap cap_net_raw,cap_net_admin=eip "$(command -v tcpdump)"';

export interface CaptureOptions {
  /** A BPF filter, as tcpdump takes it: `tcp`, `tcp port 1313`. */
  filter: string;
  interfaceName?: string;
  /** Called with each packet, in capture order, with the file's link type (1: Ethernet, on Linux's lo). */
  onPacket: (record: PcapRecord, linkType: number) => void;
  /** tcpdump's path (tests point it elsewhere); found on PATH by default. */
  program?: string;
}

/** Why a capture could not start. */
export type CaptureProblem = 'not-installed' | 'no-permission' | 'failed';

/** A running capture, or why there is none (`unavailable`: one line that says what to do). */
export type CaptureStart =
  | { capture: PacketCapture; unavailable?: undefined; problem?: undefined }
  | { capture?: undefined; unavailable: string; problem: CaptureProblem };

/** Starts tcpdump and resolves once it is capturing, or with the reason it cannot. Never throws. */
export function startCapture(options: CaptureOptions): Promise<CaptureStart> {
  const { filter, interfaceName = LOOPBACK_INTERFACE, program = 'tcpdump' } = options;
  return new Promise((resolve) => {
    let child: ChildProcessByStdio<null, Readable, Readable>;
    try {
      child = spawn(program, ['-i', interfaceName, '-w', '-', '-U', '--immediate-mode', '-n', filter], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      resolve({ unavailable: `tcpdump could not start: ${(error as Error).message}`, problem: 'failed' });
      return;
    }
    let stderr = '';
    let settled = false;
    const settle = (result: CaptureStart): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      resolve(result);
    };
    const deadline = setTimeout(() => {
      child.kill('SIGKILL');
      settle({ unavailable: `tcpdump did not start capturing within ${READY_DEADLINE_MS / 1000} s`, problem: 'failed' });
    }, READY_DEADLINE_MS);
    child.on('error', (error: NodeJS.ErrnoException) => {
      settle(
        error.code === 'ENOENT'
          ? { unavailable: 'tcpdump is not installed (Debian and Ubuntu: sudo apt install tcpdump)', problem: 'not-installed' }
          : { unavailable: `tcpdump could not start: ${error.message}`, problem: 'failed' },
      );
    });
    child.on('exit', () => settle(whyTcpdumpFailed(stderr, interfaceName)));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      if (stderr.length < 4096) stderr += text;
      if (!settled && /listening on/.test(stderr)) settle({ capture: new PacketCapture(child, options.onPacket) });
    });
  });
}

/** tcpdump's complaint, turned into what the user can do about it. */
function whyTcpdumpFailed(stderr: string, interfaceName: string): CaptureStart {
  if (/permission|not permitted/i.test(stderr)) return { unavailable: `this user may not capture packets on ${interfaceName}: ${CAPTURE_RIGHTS_ADVICE}`, problem: 'no-permission' };
  const said = stderr.split('\n').find((line) => line.trim() !== '');
  return { unavailable: said === undefined ? 'tcpdump exited before capturing' : `tcpdump said: ${escapeText(said.trim())}`, problem: 'failed' };
}

/** A running tcpdump, its packets parsed as they arrive. */
export class PacketCapture {
  private readonly reader = new PcapReader("tcpdump's output");
  /** Resolves when tcpdump has exited, stopped or not. */
  readonly exited: Promise<void>;
  /** Set when the capture broke off early: tcpdump died, or wrote something that is not pcap. */
  failure: string | undefined;
  packets = 0;
  private stopping = false;

  constructor(
    private readonly child: ChildProcessByStdio<null, Readable, Readable>,
    onPacket: CaptureOptions['onPacket'],
  ) {
    child.stdout.on('data', (chunk: Buffer) => {
      if (this.failure !== undefined) return;
      try {
        const records = this.reader.push(chunk);
        const { linkType } = this.reader.header ?? { linkType: 0 };
        if (records.length > 0) checkLinkType(linkType, "tcpdump's output");
        for (const record of records) {
          this.packets += 1;
          onPacket(record, linkType);
        }
      } catch (error) {
        this.failure = (error as Error).message;
        child.kill();
      }
    });
    this.exited = new Promise((resolve) => child.once('close', () => resolve()));
    child.once('exit', (code, signal) => {
      // Ctrl-C in a terminal reaches tcpdump too (it is in our process group), and it exits 0 after
      // flushing: that is the user stopping us, not the capture failing.
      if (!this.stopping && this.failure === undefined && code !== 0) this.failure = `tcpdump stopped early (${signal ?? `exit status ${code}`})`;
    });
  }

  /** Stops tcpdump (SIGINT: it flushes what it holds and exits) and waits for its last packets. */
  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.child.kill('SIGINT');
      const killer = setTimeout(() => this.child.kill('SIGKILL'), EXIT_DEADLINE_MS);
      await this.exited;
      clearTimeout(killer);
    }
    await this.exited;
  }
}
