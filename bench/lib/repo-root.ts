/**
 * The repository root, found from this file upwards (bench/lib/ in sources, dist/bench/lib/
 * when the benchmarks are built), so the same code finds it from both.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

function findRoot(start: string): string {
  let dir = start;
  for (let depth = 0; depth < 8; depth += 1) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'docker-autogrow')
          return dir;
      } catch {
        // not ours: keep going up
      }
    }
    dir = path.dirname(dir);
  }
  throw new Error(`repository root not found above ${start}`);
}

export const REPO_ROOT = findRoot(import.meta.dirname);
