/**
 * Reading another process's resource use from Linux's /proc, as `ps` and `top` do.
 * The load generator reads the server's figures, so the server runs no measuring code at all.
 */
import { readFileSync } from 'node:fs';

/** Clock ticks per second for /proc/<pid>/stat times: USER_HZ, 100 on every Linux build we know of. */
const USER_HZ = 100;

/** The fields of /proc/<pid>/stat after the command name, which is in parentheses and may hold spaces. */
function statFields(pid: number | 'self'): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU time (user + system) the process has used so far, in ms (10 ms resolution). */
export function cpuTimeMs(pid: number): number {
  const fields = statFields(pid);
  // After the name, utime and stime are fields 14 and 15 of the whole line: indexes 11 and 12 here.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
}

/**
 * CPU time (user + system) of this process's children that have exited and been waited for, in ms:
 * cutime and cstime, fields 16 and 17. Unlike wall-clock time, it hardly changes when other
 * processes compete for the CPUs.
 */
export function childrenCpuTimeMs(): number {
  const fields = statFields('self');
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / USER_HZ;
}

/** Resident set size (memory in RAM) of the process now, in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (match === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** Samples the server's CPU time and the wall-clock time around a measuring window. */
export class CpuWindow {
  private startCpu = 0;
  private startTime = 0;
  constructor(private readonly pid: number) {}
  begin(): void {
    this.startCpu = cpuTimeMs(this.pid);
    this.startTime = performance.now();
  }
  end(): { serverCpuMs: number; windowMs: number } {
    return { serverCpuMs: cpuTimeMs(this.pid) - this.startCpu, windowMs: performance.now() - this.startTime };
  }
}
