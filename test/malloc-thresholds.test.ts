/**
 * raiseMallocThresholds (src/cli/malloc-thresholds.ts): after it, glibc keeps freed read-sized
 * blocks for reuse instead of trimming the heap. Each case runs in a child Node that watches the
 * size of its [heap] mapping in /proc/self/maps (brk(2) moves its end) while it allocates:
 * - 8 MiB in 64 KiB blocks, as socket reads do, dropped together and allocated again. Without the
 *   change the heap is usually trimmed, but not always: a live block on top of the batch stops it.
 * - 1 MiB blocks: above the mmap threshold, each gets an mmap() of its own, outside the heap. This
 *   shows where the thresholds stand, whatever the heap's layout.
 * With --no-concurrent-array-buffer-sweeping, V8 frees the blocks inside gc(), not on another thread later.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test, type TestContext } from 'node:test';

const MODULE = new URL('../src/cli/malloc-thresholds.js', import.meta.url).href;

const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime;
const needsGlibc = process.platform === 'linux' && glibc !== undefined ? false : 'glibc (Linux) only: other C libraries ignore the thresholds';

const CHILD = `
import { readFileSync } from 'node:fs';
import { raiseMallocThresholds } from ${JSON.stringify(MODULE)};
const heapBytes = () => {
  const heap = readFileSync('/proc/self/maps', 'utf8').split('\\n').find((line) => line.endsWith('[heap]'));
  const [start, end] = heap.split(' ')[0].split('-').map((hex) => parseInt(hex, 16));
  return end - start;
};
const allocate = (count, bytes) => Array.from({ length: count }, () => Buffer.allocUnsafeSlow(bytes).fill(1));
if (process.argv[1] === 'raised') raiseMallocThresholds();
gc();
const start = heapBytes();
let blocks = allocate(128, 64 * 1024);
const grown = heapBytes();
blocks = undefined;
gc();
const afterFree = heapBytes();
blocks = allocate(128, 64 * 1024);
const reallocated = heapBytes();
// Module-level names keep the blocks alive: no collection can free them before they are measured.
const large = allocate(4, 1024 * 1024);
console.log(JSON.stringify({ start, grown, afterFree, reallocated, largeInHeap: heapBytes() - reallocated }));
`;

interface HeapSizes {
  start: number;
  grown: number;
  afterFree: number;
  reallocated: number;
  largeInHeap: number;
}

const MiB = 1024 * 1024;

/** The child's heap sizes; skips the test if its heap could not grow with brk() this time (a mapping in the way). */
function heapSizes(t: TestContext, mode: 'default' | 'raised'): HeapSizes | undefined {
  const flags = ['--expose-gc', '--no-concurrent-array-buffer-sweeping', '--input-type=module'];
  // Our own GLIBC_TUNABLES, if any, would switch glibc's adjustment off.
  const env = { ...process.env, GLIBC_TUNABLES: '' };
  const sizes = JSON.parse(execFileSync(process.execPath, [...flags, '-e', CHILD, mode], { env, encoding: 'utf8' })) as HeapSizes;
  if (sizes.grown - sizes.start >= 7 * MiB) return sizes;
  t.skip(`the 64 KiB blocks were not placed in [heap] (it grew by ${sizes.grown - sizes.start} bytes): malloc fell back to mmap()`);
  return undefined;
}

test('glibc starts with a 128 KiB mmap threshold: 1 MiB blocks are mapped outside the heap', { skip: needsGlibc }, (t) => {
  const sizes = heapSizes(t, 'default');
  if (sizes === undefined) return;
  assert.ok(sizes.largeInHeap < MiB, `the heap grew by ${sizes.largeInHeap} bytes for 4 MiB of 1 MiB blocks`);
});

test('raised thresholds: 1 MiB blocks come from the heap, and freed 64 KiB blocks stay in it for reuse', { skip: needsGlibc }, (t) => {
  const sizes = heapSizes(t, 'raised');
  if (sizes === undefined) return;
  const { grown, afterFree, reallocated, largeInHeap } = sizes;
  assert.ok(afterFree >= grown, `the heap shrank from ${grown} to ${afterFree} bytes: the freed blocks went back to the kernel`);
  assert.ok(reallocated < afterFree + MiB, `the heap grew from ${afterFree} to ${reallocated} bytes: the new blocks did not reuse the freed ones`);
  assert.ok(largeInHeap > 3 * MiB, `the heap grew by only ${largeInHeap} bytes for 4 MiB of 1 MiB blocks: the mmap threshold did not move`);
});
