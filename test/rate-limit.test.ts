import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimiter } from '../src/framework/token-bucket.js';

test('allows a burst, then refills at the given rate and reports what it dropped', () => {
  let now = 0;
  const limiter = new RateLimiter(10, 3, () => now);
  assert.deepEqual([limiter.take(), limiter.take(), limiter.take()], [0, 0, 0]);
  assert.equal(limiter.take(), undefined);
  assert.equal(limiter.take(), undefined);
  assert.equal(limiter.pending, 2);
  now += 100; // one token at 10 per second
  assert.equal(limiter.take(), 2, 'the next allowed event reports the two dropped');
  assert.equal(limiter.take(), undefined);
  now += 10_000;
  assert.deepEqual([limiter.take(), limiter.take(), limiter.take(), limiter.take()], [1, 0, 0, undefined], 'never more than the burst');
});
