import { readFileSync } from 'node:fs';

let cached: string | null = null;

/**
 * This package's version, found by walking up from this file to docker-autogrow's package.json:
 * works from src/ (tests) and dist/src/ (the built CLI) alike. 'unknown' when not found.
 */
export function packageVersion(): string {
  if (cached !== null) return cached;
  let dir = new URL('.', import.meta.url);
  for (let depth = 0; depth < 6; depth += 1) {
    try {
      const parsed = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (parsed.name === 'docker-autogrow' && parsed.version) return (cached = parsed.version);
    } catch {
      // not here: go one level up
    }
    dir = new URL('..', dir);
  }
  return (cached = 'unknown');
}
