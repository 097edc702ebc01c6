/**
 * Hostile variants of the recorded XFS outputs (test/fixtures/overlay2-xfs, overlay-xfs):
 * `xfs_quota report` and `xfs_io stat` refuse with a ToolOutputError or read what the real output says.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'vitest';
import { parseProjectQuotaReport } from '../../src/storage/overlay-xfs/parse-quota-report.js';
import { parseXfsIoStatProjectIds } from '../../src/storage/overlay-xfs/parse-xfs-io-stat.js';
import { REPO_ROOT } from '../support/repo-root.js';
import { expectHostileSafe, withoutRecordingHeader } from './hostile-inputs.js';

const fixture = (name: string) =>
  withoutRecordingHeader(readFileSync(path.join(REPO_ROOT, 'test/fixtures', name), 'utf8'));

describe('hostile xfs outputs', () => {
  for (const name of [
    'overlay2-xfs/xfs/report-batch.txt',
    'overlay2-xfs/xfs/report-batch-at-limit.txt',
    'overlay2-xfs/xfs/report-with-header.txt',
    'overlay-xfs/vm-report-after-grow.txt',
  ]) {
    it(`xfs_quota report (${name})`, () => {
      expectHostileSafe(parseProjectQuotaReport, fixture(name));
    });
  }

  for (const name of ['overlay-xfs/host-xfs-io-stat-batch.txt', 'overlay-xfs/host-xfs-io-stat-one.txt']) {
    it(`xfs_io stat (${name})`, () => {
      expectHostileSafe(parseXfsIoStatProjectIds, fixture(name));
    });
  }
});
