import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatAsctime } from '../src/protocols/asctime.js';

const utc = (iso: string): string => formatAsctime(new Date(iso), { utc: true });

test('pads a single-digit day with a space, as %e does', () => {
  assert.equal(utc('2026-11-01T09:05:03Z'), 'Sun Nov  1 09:05:03 2026');
  assert.equal(utc('2026-11-09T00:00:00Z'), 'Mon Nov  9 00:00:00 2026');
});

test('two-digit days, hours, minutes and seconds are not padded further', () => {
  assert.equal(utc('2026-11-22T23:59:59Z'), 'Sun Nov 22 23:59:59 2026');
});

test('month and year boundaries', () => {
  assert.equal(utc('2026-01-31T23:59:59Z'), 'Sat Jan 31 23:59:59 2026');
  assert.equal(utc('2026-02-01T00:00:00Z'), 'Sun Feb  1 00:00:00 2026');
  assert.equal(utc('2025-12-31T23:59:59Z'), 'Wed Dec 31 23:59:59 2025');
  assert.equal(utc('2026-01-01T00:00:00Z'), 'Thu Jan  1 00:00:00 2026');
  assert.equal(utc('2028-02-29T12:00:00Z'), 'Tue Feb 29 12:00:00 2028');
});

test('local time follows the TZ variable', (t) => {
  const saved = process.env.TZ;
  t.after(() => {
    if (saved === undefined) delete process.env.TZ;
    else process.env.TZ = saved;
  });
  const instant = new Date('2026-11-01T09:05:03Z');
  process.env.TZ = 'Asia/Tokyo'; // UTC+9, no daylight saving time
  assert.equal(formatAsctime(instant), 'Sun Nov  1 18:05:03 2026');
  process.env.TZ = 'America/New_York'; // on 1 Nov 2026 daylight saving time ends at 06:00 UTC: EST, UTC-5
  assert.equal(formatAsctime(instant), 'Sun Nov  1 04:05:03 2026');
  process.env.TZ = 'Pacific/Kiritimati'; // UTC+14: already the next day
  assert.equal(formatAsctime(new Date('2026-12-31T12:00:00Z')), 'Fri Jan  1 02:00:00 2027');
  process.env.TZ = 'UTC';
  assert.equal(formatAsctime(instant), 'Sun Nov  1 09:05:03 2026');
});
