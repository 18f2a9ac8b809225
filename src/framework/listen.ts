/**
 * bind(2) and listen(2) failures, turned into one line that says what to do.
 * Shared by the TCP listener and the UDP service.
 */
import { readFileSync } from 'node:fs';
import { ExitCode, LabError } from '../errors.js';

/** The lowest port an ordinary user may bind (Linux lets root lower it with a sysctl). */
function unprivilegedPortStart(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8')) || 1024;
  } catch {
    return 1024;
  }
}

/** Turns a bind(2)/listen(2) failure into one line that says what to do. */
export function describeListenError(error: unknown, host: string | undefined, port: number): LabError | unknown {
  const code = (error as NodeJS.ErrnoException).code;
  const where = host === undefined ? `port ${port}` : `${host} port ${port}`;
  switch (code) {
    case 'EACCES':
      return new LabError(
        'ERR_PRIVILEGED_PORT',
        `cannot listen on ${where}: ports below ${unprivilegedPortStart()} need root; try --port ${port + 1300}`,
        ExitCode.noPermission,
      );
    case 'EADDRINUSE':
      return new LabError(
        'ERR_PORT_IN_USE',
        `cannot listen on ${where}: the address is already in use by another socket; stop that server or pick another port (--port 0 lets the kernel choose)`,
        ExitCode.unavailable,
      );
    case 'EADDRNOTAVAIL':
      return new LabError('ERR_ADDRESS_NOT_AVAILABLE', `cannot listen on ${where}: ${host} is not an address of this machine; try --host 127.0.0.1`, ExitCode.unavailable);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new LabError('ERR_UNKNOWN_HOST', `cannot listen on ${where}: no such host; give an IP address such as 127.0.0.1 or ::1`, ExitCode.noHost);
    default:
      return error;
  }
}
