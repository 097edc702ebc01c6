/**
 * Host launcher: boots one overlay2-xfs VM (real kernel with XFS project quotas, real dockerd) and
 * runs test/guest/overlay-xfs.test.ts inside it. The guest leaves the real outputs it saw and its
 * timings in the run's artifacts (overlay-xfs/), printed here for the lead.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { guestRunProblems, readJunit } from '../support/junit.js';
import { describeWith } from '../support/prereqs.js';
import { assertVmRunPassed, ensureVmImage, runInVm, vmPrereqs } from './harness/index.js';

const GUEST_TEST = 'test/guest/overlay-xfs.test.ts';

describeWith(vmPrereqs, 'overlay2 on XFS pquota backend in the VM', () => {
  beforeAll(async () => {
    await ensureVmImage();
  });

  it('grows online, the grown limit persists over docker restart and dockerd restart, live usage tracks the report', async () => {
    const result = await runInVm({
      environment: 'overlay2-xfs',
      label: 'overlay-xfs',
      vitestFiles: [GUEST_TEST],
      timeoutMs: 25 * 60_000,
    });
    console.log(
      `overlay-xfs VM run: exit ${result.exitCode} in ${Math.round(result.durationMs / 1000)} s (${result.runDir})`,
    );
    assertVmRunPassed(result);
    // every guest test really ran and passed (a guest run that skipped must not count)
    expect(guestRunProblems(readJunit(path.join(result.artifactsDir, 'junit.xml')), GUEST_TEST)).toEqual([]);
    const measurements = path.join(result.artifactsDir, 'overlay-xfs', 'measurements.json');
    expect(existsSync(measurements)).toBe(true);
    console.log(`overlay-xfs guest measurements: ${readFileSync(measurements, 'utf8')}`);
    // readLiveUsage (statfs of the layer dir) next to the xfs_quota report, sampled in the guest
    const liveUsage = path.join(result.artifactsDir, 'overlay-xfs', 'live-usage.json');
    expect(existsSync(liveUsage)).toBe(true);
    console.log(`overlay-xfs live usage vs report: ${readFileSync(liveUsage, 'utf8')}`);
    const report = readFileSync(
      path.join(result.artifactsDir, 'overlay-xfs', 'report-after-dockerd-restart.txt'),
      'utf8',
    );
    // the grown limit (128 MiB = 131072 KiB) is what the kernel holds after the dockerd restart
    expect(report).toMatch(/^#\d+\s+\d+\s+0\s+131072\s/m);
  });
});
