/**
 * Temporary directories for tests: `tempDir(prefix)` makes `autogrow-<prefix>-XXXXXX` under the
 * system temp dir and removes it after the current test, or after the test file when made outside
 * a test (a describe body, beforeAll), so no test keeps its own list of directories to clean up.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach } from 'vitest';

const perTest: string[] = [];
const perFile: string[] = [];
let inTest = false;

function removeAll(dirs: string[]): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

// Registered on the root suite of each test file that imports this module.
beforeEach(() => {
  inTest = true;
});
afterEach(() => {
  inTest = false;
  removeAll(perTest);
});
afterAll(() => removeAll(perFile));

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `autogrow-${prefix}-`));
  (inTest ? perTest : perFile).push(dir);
  return dir;
}
