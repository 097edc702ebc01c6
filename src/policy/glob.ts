/**
 * A tiny glob for rule matching on container names and image references: `*` matches any run of
 * characters (including `/` and `:`, so `postgres:*` and `docker.io/library/*` work), `?` matches
 * exactly one, everything else is literal. Anchored at both ends. No character classes, no braces:
 * rules stay readable and a rule can never fail to compile.
 *
 * Matched with the two-pointer wildcard algorithm rather than a RegExp: a glob such as
 * `*a*a*a*a*b` compiled to a backtracking regex takes exponential time on a long name that almost
 * matches, and names come from whoever can start a container. This runs in O(glob x text).
 */
export function globMatches(glob: string, text: string): boolean {
  // Indexed by UTF-16 code unit: names and image references are ASCII, and not allocating arrays
  // matters when every container is matched against every rule each second.
  const pattern = glob;
  const input = text;
  let patternIndex = 0;
  let inputIndex = 0;
  // Where the last `*` was seen, and the input position it currently absorbs up to.
  let starIndex = -1;
  let starInputIndex = 0;
  while (inputIndex < input.length) {
    const token = pattern[patternIndex];
    if (token === '*') {
      starIndex = patternIndex;
      starInputIndex = inputIndex;
      patternIndex += 1;
    } else if (token !== undefined && (token === '?' || token === input[inputIndex])) {
      patternIndex += 1;
      inputIndex += 1;
    } else if (starIndex >= 0) {
      // Let the last `*` absorb one more character and retry from just after it.
      patternIndex = starIndex + 1;
      starInputIndex += 1;
      inputIndex = starInputIndex;
    } else {
      return false;
    }
  }
  while (pattern[patternIndex] === '*') patternIndex += 1;
  return patternIndex === pattern.length;
}
