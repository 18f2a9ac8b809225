import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TokenBucket } from '../src/framework/token-bucket.js';
import { heldBackNote, LogBudget } from '../src/observers/log-budget.js';

test('a token bucket allows a burst, then refills at its rate, never beyond the burst', () => {
  const bucket = new TokenBucket(10, 3);
  assert.deepEqual([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(0)], [true, true, true, false]);
  assert.equal(bucket.take(50), false, 'half a token after 50 ms at 10 per second');
  assert.equal(bucket.take(100), true, 'one token after 100 ms');
  assert.deepEqual([bucket.take(10_000), bucket.take(10_000), bucket.take(10_000), bucket.take(10_000)], [true, true, true, false]);
});

test('a log budget counts the lines it held back and tells the next line it lets through', () => {
  const budget = new LogBudget(10, 2);
  assert.deepEqual([budget.admit(0), budget.admit(0), budget.admit(0), budget.admit(0)], [0, 0, undefined, undefined]);
  assert.equal(budget.admit(100), 2, 'two lines were held back before this one');
  assert.equal(budget.admit(200), 0);
  assert.equal(heldBackNote(2, 'refusals'), ' (2 earlier refusals not logged)');
  assert.equal(heldBackNote(0, 'refusals'), '');
});

test('a log budget of 0 a second lets every line through', () => {
  const unlimited = new LogBudget(0, 0);
  assert.deepEqual(Array.from({ length: 1000 }, () => unlimited.admit(0)).filter((n) => n !== 0), []);
});
