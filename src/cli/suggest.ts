/**
 * "Did you mean ...?" for a mistyped command or option: the known name closest to what was typed.
 *
 * Closeness is the edit distance (optimal string alignment, a Damerau-Levenshtein variant): the
 * fewest single-character insertions, deletions, substitutions or swaps of two neighbours that turn
 * one word into the other. A swap counts once, since `--prot` for `--port` is the commonest typo.
 * yargs has recommendCommands() for commands, but its message replaces "Unknown command: ecoh" with
 * a bare "Did you mean echo?", and it has nothing for options; this serves both.
 */

/** The edit distance between two words (see the comment at the top of this file). */
export function editDistance(a: string, b: string): number {
  // d[i][j]: the distance between the first i characters of a and the first j of b.
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate most likely meant by `word`, or undefined when none is close enough: at most one
 * edit in three characters (one for a short word), or the start of exactly one candidate
 * (`--max-conn` for `--max-connections`). Short words allow few edits: `tme` is one from `time`,
 * but `qotd` is four from `echo`, and a word that far from every name gets no suggestion.
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const allowed = Math.max(1, Math.floor(word.length / 3));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance <= allowed && distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  if (best !== undefined) return best;
  const extended = candidates.filter((candidate) => word.length >= 3 && candidate.startsWith(word));
  return extended.length === 1 ? extended[0] : undefined;
}
