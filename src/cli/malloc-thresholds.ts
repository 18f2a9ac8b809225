/**
 * Keep glibc's malloc from giving freed socket buffers back to the kernel between garbage
 * collections.
 *
 * Node reads every chunk from a socket into a fresh 64 KiB malloc() block, and V8 frees those
 * blocks in batches, when it collects the Buffers around them. When a batch lies at the top of the
 * heap, free() returns it to the kernel with brk(2), because it is more than M_TRIM_THRESHOLD
 * (128 KiB to start with). The next reads then fault the same memory back in, one 4 KiB page at a
 * time. Measured on a bulk echo: 300,000 page faults and 7,000 brk() calls every 2 seconds, and a
 * fifth less data moved.
 *
 * A C server would call mallopt(M_TRIM_THRESHOLD, ...), which Node cannot do. But glibc raises the
 * thresholds on its own (mallopt(3), under M_MMAP_THRESHOLD): when a block it had to mmap() is
 * freed, the mmap threshold becomes that block's size and the trim threshold twice that. So we
 * allocate one untouched 16 MiB block and drop it. The next garbage collection frees it, and from
 * then on the heap keeps up to 32 MiB of freed memory for reuse. The price: after a burst of
 * traffic, that much may stay in the server's resident size.
 *
 * Explicit settings win: with GLIBC_TUNABLES=glibc.malloc.trim_threshold=N (or mmap_threshold),
 * glibc stops adjusting the thresholds. Elsewhere (musl, macOS) the block is allocated and freed
 * to no effect; since nothing ever writes to it, it never takes up memory either.
 */

/** Twice this stays free at the top of the heap. At most 32 MiB: glibc adjusts no higher on 64-bit. */
const THRESHOLD_BLOCK_BYTES = 16 * 1024 * 1024;

export function raiseMallocThresholds(): void {
  // allocUnsafeSlow: a block of its own, straight from malloc, neither pooled nor zero-filled.
  Buffer.allocUnsafeSlow(THRESHOLD_BLOCK_BYTES);
}
