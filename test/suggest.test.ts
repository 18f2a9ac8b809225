import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closest, editDistance } from '../src/cli/suggest.js';

test('edit distance: insertions, deletions, substitutions, and a swap of neighbours as one edit', () => {
  assert.equal(editDistance('port', 'port'), 0);
  assert.equal(editDistance('prot', 'port'), 1, 'a swap');
  assert.equal(editDistance('verbos', 'verbose'), 1);
  assert.equal(editDistance('tme', 'time'), 1);
  assert.equal(editDistance('qotd', 'echo'), 4);
  assert.equal(editDistance('', 'echo'), 4);
});

test('closest: a near name, a unique start, or nothing', () => {
  const commands = ['echo', 'discard', 'daytime', 'qotd', 'chargen', 'time', 'all', 'states', 'lab'];
  assert.equal(closest('ecoh', commands), 'echo');
  assert.equal(closest('stats', commands), 'states');
  assert.equal(closest('daytim', commands), 'daytime');
  assert.equal(closest('gopher', commands), undefined);
  assert.equal(closest('finger', commands), undefined);
  const options = ['port', 'host', 'max-connections', 'max-per-source', 'verbose'];
  assert.equal(closest('prot', options), 'port');
  assert.equal(closest('max-conn', options), 'max-connections', 'the start of one name');
  assert.equal(closest('max', options), undefined, 'the start of two names');
  assert.equal(closest('bogus', options), undefined);
});
