/** The VM harness keeps .vm-artifacts/ bounded: the newest runs stay, older ones go. */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { pruneArtifactRuns } from '../vm/harness/run.js';

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

it('deletes all but the newest run directories and nothing that is not a run', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'agvm-prune-'));
  roots.push(root);
  const runs = [
    '20261127T213639-exit-code-1475-zn04',
    '20261128T001500-overlay-xfs-7095-zl86',
    '20261127T222631-dm-lifecycle-27115-r8sf',
  ];
  for (const run of runs) {
    mkdirSync(path.join(root, run, 'artifacts'), { recursive: true });
    writeFileSync(path.join(root, run, 'console.log'), 'boot\n');
  }
  mkdirSync(path.join(root, 'keep-me'));

  expect(pruneArtifactRuns(root, 1)).toEqual([
    '20261127T213639-exit-code-1475-zn04',
    '20261127T222631-dm-lifecycle-27115-r8sf',
  ]);
  expect(readdirSync(root).sort()).toEqual(['20261128T001500-overlay-xfs-7095-zl86', 'keep-me']);
  expect(pruneArtifactRuns(root, 1)).toEqual([]);
  expect(pruneArtifactRuns(path.join(root, 'missing'), 1)).toEqual([]);
});
