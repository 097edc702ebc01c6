/**
 * A tiny glob for rule matching on container names and image references: `*` matches any run of
 * characters (including `/` and `:`, so `postgres:*` and `docker.io/library/*` work), `?` matches exactly one,
 * everything else is literal. Anchored at both ends. No character classes, no braces: rules stay
 * readable and a rule can never fail to compile.
 */
export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (const char of glob) {
    if (char === '*') source += '.*';
    else if (char === '?') source += '.';
    else source += char.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 's');
}

/** True when `text` matches `glob` (see {@link globToRegExp}). */
export function globMatches(glob: string, text: string): boolean {
  return globToRegExp(glob).test(text);
}
