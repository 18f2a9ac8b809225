import assert from 'node:assert/strict';
import { test } from 'node:test';
import { colourMarks, displayWidth, truncateToWidth, wantsColour, wrapText } from '../src/cli/terminal.js';

test('wraps between words at the width, continuing under an indent; a short line is untouched', () => {
  assert.equal(wrapText('short', 20, '  '), 'short');
  assert.equal(wrapText('the server closed first so the kernel keeps the pair', 20, '  '), 'the server closed\n  first so the\n  kernel keeps the\n  pair');
  for (const line of wrapText('a b c d e f g h i j k l m n o p', 9, '    ').split('\n')) assert.ok(line.length <= 9, line);
  assert.equal(wrapText('x supercalifragilistic y', 10, ''), 'x\nsupercalifragilistic\ny', 'a long word is never cut');
  assert.equal(wrapText('   ✓ an indented line goes on', 16, '     '), '   ✓ an indented\n     line goes\n     on', 'its own indent is kept');
});

test('colour only on a terminal, and never when NO_COLOR is set', () => {
  assert.equal(wantsColour({ isTTY: true }, {}), true);
  assert.equal(wantsColour({ isTTY: false }, {}), false);
  assert.equal(wantsColour({ isTTY: true }, { NO_COLOR: '1' }), false);
  assert.equal(wantsColour({ isTTY: true }, { NO_COLOR: '' }), true, 'an empty NO_COLOR does not count (no-color.org)');
  assert.equal(colourMarks('   ✓ ok'), '   \x1b[32m✓\x1b[0m ok');
  assert.equal(colourMarks('   ✗ no'), '   \x1b[31m✗\x1b[0m no');
});

test('display width counts the columns a terminal draws: two for 日本語 and emoji, none for a combining mark', () => {
  assert.equal(displayWidth('SYN_SENT'), 8);
  assert.equal(displayWidth('日本語'), 6);
  assert.equal(displayWidth('e\u0301'), 1);
  assert.equal(displayWidth('─▶'), 2);
  assert.equal(truncateToWidth('short', 10), 'short');
  assert.equal(truncateToWidth('ESTABLISHED', 6), 'ESTAB…');
  assert.equal(truncateToWidth('日本語のテキスト', 7), '日本語…', 'a wide character is never half shown');
  assert.equal(truncateToWidth('anything', 0), '');
});
