/**
 * Hostile variants of recorded /proc/self/mountinfo files (the one parser every backend uses):
 * a ToolOutputError or exactly the real mounts, never a NaN mount id.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'vitest';
import { parseMountInfo } from '../../src/storage/filesystem.js';
import { REPO_ROOT } from '../support/repo-root.js';
import { expectHostileSafe, withoutRecordingHeader } from './hostile-inputs.js';

const fixture = (name: string) =>
  withoutRecordingHeader(readFileSync(path.join(REPO_ROOT, 'test/fixtures', name), 'utf8'));

describe('hostile mountinfo', () => {
  for (const name of ['data-filesystem/proc/mountinfo.txt', 'docker/containerd/mountinfo-container.txt']) {
    it(name, () => {
      expectHostileSafe(parseMountInfo, fixture(name), { crIsData: true });
    });
  }
});
