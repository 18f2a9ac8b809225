/** Which of the real programs some tests drive (python3, tcpdump) this machine has. */
import { spawnSync } from 'node:child_process';

/** True when `program args...` runs and exits 0. */
export const runs = (program: string, ...args: string[]): boolean => spawnSync(program, args, { stdio: 'ignore' }).status === 0;

/** python3, with its socket module: the lab steps and tests that make system calls Node does not. */
export const hasPython3 = runs('python3', '-c', 'import socket');
