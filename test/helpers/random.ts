/**
 * Seeded randomness for fuzz and stress tests. The same seed gives the same inputs, so a
 * failure can be replayed: every test that uses it prints its seed, and FUZZ_SEED=<seed>
 * runs it again with exactly those inputs.
 *
 * The generator is mulberry32: 32 bits of state, fast, and good enough to vary test inputs
 * (not for anything secret). Node's Math.random cannot be seeded, hence this.
 */

/** mulberry32: returns a function giving the next 32-bit unsigned integer. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** The seed from `FUZZ_SEED` (decimal), or a fresh one. */
export function seedFromEnvironment(variable = 'FUZZ_SEED'): number {
  const given = process.env[variable];
  if (given !== undefined && given !== '') {
    const seed = Number(given);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`${variable} must be a whole number from 0 to 4294967295, got ${given}`);
    return seed;
  }
  return Math.floor(Math.random() * 0x100000000);
}

export class Random {
  private readonly nextUint32: () => number;

  constructor(readonly seed: number) {
    this.nextUint32 = mulberry32(seed);
  }

  /** A number in [0, 1). */
  next(): number {
    return this.nextUint32() / 0x100000000;
  }

  /** A whole number from `min` to `max`, both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /**
   * A whole number from `min` to `max`, spread evenly over orders of magnitude: as many
   * values near 10 as near 10,000. Good for sizes, where the small cases find different bugs.
   */
  logInt(min: number, max: number): number {
    const low = Math.log(min + 1);
    const high = Math.log(max + 1);
    return Math.min(max, Math.max(min, Math.floor(Math.exp(low + this.next() * (high - low))) - 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** `length` random bytes. */
  bytes(length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    let at = 0;
    for (; at + 4 <= length; at += 4) out.writeUInt32LE(this.nextUint32(), at);
    for (; at < length; at++) out[at] = this.nextUint32() & 0xff;
    return out;
  }

  /** A seed for an independent generator, e.g. one per test case, so each case replays alone. */
  fork(): Random {
    return new Random(this.nextUint32());
  }
}
