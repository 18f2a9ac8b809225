/**
 * The docs stand on their own: every relative link in README.md and docs/ leads to a file or
 * directory of this repository, every #fragment to a heading of the page it names, and nothing
 * cites material outside the repository.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

// The compiled test runs from dist/test/, hence the ../../.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Every file under `dir` (relative to the repository root) whose name ends with one of `extensions`. */
function filesUnder(dir: string, extensions: readonly string[]): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...filesUnder(path, extensions));
    else if (extensions.some((extension) => entry.name.endsWith(extension))) found.push(path);
  }
  return found.sort();
}

const MARKDOWN_FILES = ['README.md', ...filesUnder('docs', ['.md'])];

/** The lines of a Markdown file that are prose: fenced code blocks (``` or ~~~) become empty lines. */
function proseLines(markdown: string): string[] {
  let fence: string | undefined;
  return markdown.split('\n').map((line) => {
    const marker = /^ {0,3}(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence === undefined && marker !== undefined) {
      fence = marker;
      return '';
    }
    if (fence !== undefined) {
      if (marker !== undefined && marker[0] === fence[0] && marker.length >= fence.length && line.trim() === marker) fence = undefined;
      return '';
    }
    return line;
  });
}

/**
 * The anchor GitHub gives a heading: its text as rendered (no Markdown marks), lowercased, with
 * every character but letters, digits, spaces, hyphens and underscores removed, and each space
 * turned into a hyphen.
 */
function githubSlug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link or image: its text
    .replace(/<[^>]+>/g, '') // HTML tags
    .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')
    .replace(/[`*]/g, '');
  return text.trim().toLowerCase().replace(/[^\p{L}\p{M}\p{N}_ -]/gu, '').replace(/ /g, '-');
}

/** The anchors of every ATX heading (`# ...` to `###### ...`) outside code blocks; a repeated one gets -1, -2, ... */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of proseLines(markdown)) {
    const heading = /^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const slug = githubSlug(heading);
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}

interface Link {
  line: number;
  target: string;
}

/** Inline links and images, `[text](target "title")`, and reference definitions, `[id]: target`. */
function linksOf(markdown: string): Link[] {
  const links: Link[] = [];
  proseLines(markdown).forEach((line, index) => {
    const prose = line.replace(/(`+)[^`][\s\S]*?\1/g, ''); // code spans are not links
    for (const match of prose.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g)) {
      links.push({ line: index + 1, target: match[1]! });
    }
    const definition = /^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)/.exec(prose);
    if (definition) links.push({ line: index + 1, target: definition[1]! });
  });
  return links;
}

/** Why `target`, linked from `file`, is broken; undefined when it resolves. */
function brokenBecause(file: string, target: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return undefined; // http:, https:, mailto:
  const hash = target.indexOf('#');
  const path = decodeURIComponent(hash === -1 ? target : target.slice(0, hash));
  const fragment = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1));
  if (path.startsWith('/')) return 'an absolute path: it breaks outside this checkout';
  const resolved = path === '' ? join(ROOT, file) : resolve(ROOT, dirname(file), path);
  if (relative(ROOT, resolved).startsWith('..')) return 'leads outside the repository';
  if (!existsSync(resolved)) return 'no such file or directory';
  if (fragment !== undefined && resolved.endsWith('.md') && statSync(resolved).isFile()) {
    if (!anchorsOf(readFileSync(resolved, 'utf8')).has(fragment)) return `no heading with the anchor #${fragment}`;
  }
  return undefined;
}

test('anchors are made the way GitHub makes them', () => {
  assert.equal(githubSlug('7. One client at a time: `--iterative`'), '7-one-client-at-a-time---iterative');
  assert.equal(githubSlug('Lab `time-wait`: TIME_WAIT on the side that closed first'), 'lab-time-wait-time_wait-on-the-side-that-closed-first');
  assert.equal(githubSlug('lab-server &lt;protocol&gt;'), 'lab-server-protocol');
  assert.equal(githubSlug('Port 13, and why you need root for it'), 'port-13-and-why-you-need-root-for-it');
  assert.deepEqual([...anchorsOf('# A\n## Next\n```sh\n# not a heading\n```\n## Next\n### Next')], ['a', 'next', 'next-1', 'next-2']);
});

test('the link checker finds a broken link, a missing anchor, and a link in code is not one', () => {
  const sample = '[ok](docs/README.md) [gone](docs/no-such-page.md) [anchor](docs/README.md#no-such-heading)\n`[code](nowhere.md)`\n```\n[code](nowhere.md)\n```\n[web](https://example.org/x.md)';
  const broken = linksOf(sample).filter((link) => brokenBecause('README.md', link.target) !== undefined);
  assert.deepEqual(broken.map((link) => link.target), ['docs/no-such-page.md', 'docs/README.md#no-such-heading']);
});

test('every relative link in README.md and docs/ resolves, with its #anchor', () => {
  const broken: string[] = [];
  let checked = 0;
  for (const file of MARKDOWN_FILES) {
    for (const link of linksOf(readFileSync(join(ROOT, file), 'utf8'))) {
      checked += 1;
      const reason = brokenBecause(file, link.target);
      if (reason !== undefined) broken.push(`${file}:${link.line}: (${link.target}): ${reason}`);
    }
  }
  assert.ok(checked > 100, `found only ${checked} links: is the link pattern still right?`);
  assert.deepEqual(broken, [], 'broken links');
});

test('README.md, docs/ and src/ cite nothing outside the repository', () => {
  const files = [...MARKDOWN_FILES, ...filesUnder('src', ['.ts'])];
  const citing = files.filter((file) => /\.\.\/shared\/|shared\/SEEDS|\bSEEDS\b/.test(readFileSync(join(ROOT, file), 'utf8')));
  assert.deepEqual(citing, [], 'these files cite ../shared/ or SEEDS, which users never get');
});
