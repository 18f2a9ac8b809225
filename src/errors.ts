/**
 * Errors a user can cause and fix: a bad flag, a port in use, a host that does not answer.
 *
 * Each has a stable `code` (for tests and scripts) and an exit status from BSD's sysexits.h, so a
 * shell script can tell "you typed it wrong" from "the network said no". ERROR_CODES below is the one
 * table of them: code → exit status → what it means. The CLI prints a LabError's `message` as one
 * line, with no stack trace: these are not bugs.
 */
import { escapeMessage } from './framework/escape.js';

/** Exit statuses, from sysexits(3). */
export const ExitCode = {
  ok: 0,
  /**
   * A lab ran, but the kernel did not do what the textbook predicts (not from sysexits,
   * which has no code for "the experiment disagreed"; 1 is the shell's plain "failed").
   */
  labFailed: 1,
  /** The command was used incorrectly: a bad flag, port or protocol name. */
  usage: 64,
  /** Input data was incorrect: the echo that came back differs from what was sent, or a capture file is not pcap. */
  dataError: 65,
  /** An input file the user named does not exist or cannot be read: `serve --config`. */
  noInput: 66,
  /** A host name could not be resolved. */
  noHost: 68,
  /** A service is unavailable: the port is in use, or nothing answered. */
  unavailable: 69,
  /** An internal error: a bug in lab-server. Please report it. */
  software: 70,
  /** The operating system refused a resource: too few file descriptors (`ulimit -n`) to start. */
  osError: 71,
  /** An output file the user named cannot be created or written: `--pcap`, `--log-file`. */
  cantCreate: 73,
  /**
   * Permission denied: a privileged port without root; a lab that needs root (network namespaces)
   * run without it, which is also automake's "skipped test" status: `npm test` and CI count it as
   * skipped, never as passed.
   */
  noPermission: 77,
  /** A configuration error (sysexits' EX_CONFIG): a --config file that is not valid. */
  config: 78,
  /** Interrupted by Ctrl-C: 128 + SIGINT's number, as a shell reports a program that SIGINT killed. */
  interrupted: 130,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** Every error code, with its exit status and what it means. docs/reference/cli.md lists the same. */
export const ERROR_CODES = {
  ERR_USAGE: { exitCode: ExitCode.usage, meaning: 'a missing or unknown command, or a flag yargs could not parse' },
  ERR_UNKNOWN_PROTOCOL: { exitCode: ExitCode.usage, meaning: 'lab-server <name>: no such protocol' },
  ERR_UNKNOWN_LAB: { exitCode: ExitCode.usage, meaning: 'lab-server lab <name>: no such lab' },
  ERR_INVALID_PORT: { exitCode: ExitCode.usage, meaning: 'a port that is not a whole number from 0 to 65535' },
  ERR_INVALID_DURATION: { exitCode: ExitCode.usage, meaning: 'a number of seconds not written as plain decimal digits (30, 0.5), or over 2147483 (what Node timers can count)' },
  ERR_INVALID_NUMBER: { exitCode: ExitCode.usage, meaning: 'a count that is not a whole number in range' },
  ERR_INVALID_CLOSE: { exitCode: ExitCode.usage, meaning: '--close other than fin or rst' },
  ERR_INVALID_ADDRESS: { exitCode: ExitCode.usage, meaning: '--metrics, --dashboard: not a port, an IP address and port, or [IPv6]:port' },
  ERR_INVALID_CIDR: { exitCode: ExitCode.usage, meaning: '--allow/--deny: not an IP address or subnet' },
  ERR_QUOTES_FILE: { exitCode: ExitCode.usage, meaning: 'qotd --quotes: not a regular file of at most 1 MiB, cannot be read, or breaks RFC 865' },
  ERR_INVALID_HOST: { exitCode: ExitCode.usage, meaning: 'a host that cannot be an address or name: lab-client [::1, lab-server --host \'\'' },
  ERR_PORT_CONFLICT: { exitCode: ExitCode.usage, meaning: 'lab-client: two different ports given (in the host, as a second word, with --port)' },
  ERR_NO_UDP: { exitCode: ExitCode.usage, meaning: '--udp for a protocol whose RFC defines no UDP service' },
  ERR_PRIVILEGED_PORT: { exitCode: ExitCode.noPermission, meaning: 'bind() said EACCES: a port below 1024 without root' },
  ERR_PORT_IN_USE: { exitCode: ExitCode.unavailable, meaning: 'bind() said EADDRINUSE' },
  ERR_ADDRESS_NOT_AVAILABLE: { exitCode: ExitCode.unavailable, meaning: 'bind() said EADDRNOTAVAIL: not an address of this machine' },
  ERR_BAD_DESCRIPTOR: { exitCode: ExitCode.unavailable, meaning: 'an inherited descriptor (from systemd or inetd) is not a TCP or UDP socket of the expected kind, or cannot be told apart' },
  ERR_NOT_ACTIVATED: { exitCode: ExitCode.unavailable, meaning: '--systemd without sockets from systemd (LISTEN_PID/LISTEN_FDS), or --inetd without a socket on descriptor 0' },
  ERR_TOO_FEW_DESCRIPTORS: { exitCode: ExitCode.osError, meaning: 'ulimit -n is below what the program needs to load (lab-server 64, lab-client 48)' },
  ERR_CONFIG_UNREADABLE: { exitCode: ExitCode.noInput, meaning: 'serve --config: the file does not exist or cannot be read' },
  ERR_CONFIG_FILE: { exitCode: ExitCode.config, meaning: 'serve --config: the file is not valid TOML, has an unknown table or key, or a value its command-line flag would refuse' },
  ERR_LOG_FILE: { exitCode: ExitCode.cantCreate, meaning: '--log-file: the file cannot be opened for appending, or is a FIFO or a socket' },
  ERR_UNKNOWN_HOST: { exitCode: ExitCode.noHost, meaning: '--host, or a client\'s host, does not resolve' },
  ERR_CONNECT_FAILED: { exitCode: ExitCode.unavailable, meaning: 'client: no address of the host accepted the connection' },
  ERR_CONNECTION_LOST: { exitCode: ExitCode.unavailable, meaning: 'client: the connection was reset or failed' },
  ERR_CONNECTION_RESET: { exitCode: ExitCode.unavailable, meaning: 'client: the server reset the connection (RST) before the reply was whole, or right after the handshake' },
  ERR_SERVER_CLOSED: { exitCode: ExitCode.unavailable, meaning: 'lab-client echo: the server closed (FIN) while our input was still open' },
  ERR_NO_DATA: { exitCode: ExitCode.unavailable, meaning: 'client: the server closed without sending a line' },
  ERR_TIMEOUT: { exitCode: ExitCode.unavailable, meaning: 'client: no data from the server in time' },
  ERR_NO_REPLY: { exitCode: ExitCode.unavailable, meaning: 'client --udp: no reply datagram in time' },
  ERR_UDP_FAILED: { exitCode: ExitCode.unavailable, meaning: 'client --udp: ICMP port unreachable, or another socket error' },
  ERR_TCP_STATES_UNAVAILABLE: { exitCode: ExitCode.unavailable, meaning: 'no /proc/net/tcp: kernel TCP states are Linux only' },
  ERR_ECHO_MISMATCH: { exitCode: ExitCode.dataError, meaning: 'lab-client echo: a byte came back different' },
  ERR_ECHO_INCOMPLETE: { exitCode: ExitCode.dataError, meaning: 'lab-client echo: the server closed before echoing everything' },
  ERR_BAD_REPLY: { exitCode: ExitCode.dataError, meaning: 'lab-client time: the reply was not 4 bytes' },
  ERR_BAD_PCAP: { exitCode: ExitCode.dataError, meaning: 'trace --read: not a regular file of at most 256 MiB, not a pcap file, a truncated or corrupt one, or one of a link type we cannot decode' },
  ERR_NO_CAPTURE: { exitCode: ExitCode.unavailable, meaning: 'trace --port: tcpdump is not installed, or could not capture' },
  ERR_CAPTURE_PERMISSION: { exitCode: ExitCode.noPermission, meaning: 'trace --port: this user may not capture packets (no CAP_NET_RAW)' },
  ERR_PCAP_WRITE: { exitCode: ExitCode.cantCreate, meaning: '--pcap: the file cannot be created or written, or is a FIFO or a socket' },
  ERR_LAB_FAILED: { exitCode: ExitCode.labFailed, meaning: 'a lab ran and the kernel disagreed with a prediction' },
  ERR_LAB_STUCK: { exitCode: ExitCode.labFailed, meaning: 'a lab step waited longer than its deadline' },
  ERR_LAB_RESET_EARLY: { exitCode: ExitCode.labFailed, meaning: 'lab rst: the reset came before the handshake was done, so the step could not be observed' },
  ERR_LAB_SCRIPT: { exitCode: ExitCode.software, meaning: "a lab's helper (a python3 script, a client process) failed: a bug in the lab" },
  ERR_LAB_NEEDS_PRIVILEGES: { exitCode: ExitCode.noPermission, meaning: 'a lab that needs root (to create network namespaces) or a missing tool (iproute2) could not run here: skipped, not failed' },
  ERR_LAB_NAMESPACE: { exitCode: ExitCode.unavailable, meaning: "ip could not create or change a lab's network namespaces, veth pair or sysctls (the message quotes ip)" },
  ERR_LAB_NO_PAIR: { exitCode: ExitCode.software, meaning: 'a lab could not learn the socket pair from the client it ran' },
  ERR_LAB_INTERRUPTED: { exitCode: ExitCode.interrupted, meaning: 'a lab was interrupted (SIGINT, SIGTERM); it stopped its servers and processes, and deleted its network namespaces, first' },
  ERR_ANSWERS_FILE: { exitCode: ExitCode.usage, meaning: 'lab --answers: the file cannot be read, or holds neither one answer a line nor a JSON object of answers' },
} as const satisfies Record<string, { exitCode: ExitCodeValue; meaning: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class LabError extends Error {
  override readonly name = 'LabError';
  readonly exitCode: ExitCodeValue;

  constructor(
    /** Stable identifier, e.g. `ERR_PORT_IN_USE`. */
    readonly code: ErrorCode,
    message: string,
  ) {
    // A message often quotes what the user typed or named (argv, a path, a host): escaped here,
    // once for every place a LabError is shown, so that `--quotes $'\e]0;title\a'` cannot retitle the terminal.
    super(escapeMessage(message));
    this.exitCode = ERROR_CODES[code].exitCode;
  }
}

/** A usage mistake (exit 64) with its code: shorthand, since they are the most common. */
export const usageError = (code: ErrorCode, message: string): LabError => new LabError(code, message);
