/**
 * Host launcher: boots one overlay2-xfs VM (real kernel with XFS project quotas), switches the
 * guest to dockerd 28.5 (the sid engine root, shared read-only) with the containerd image store on
 * the pquota XFS, and runs test/guest/containerd-xfs.test.ts there: the agent's opt-in limits
 * (label autogrow.size) set, biting, grown online and persisting. The guest's measurements and the
 * real outputs it saw are in the run's artifacts (containerd-xfs/), printed here for the lead.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { guestRunProblems, readJunit } from '../support/junit.js';
import { describeWith } from '../support/prereqs.js';
import { assertVmRunPassed, ensureVmImage, runInVm, vmPrereqs } from './harness/index.js';

const GUEST_TEST = 'test/guest/containerd-xfs.test.ts';

describeWith(vmPrereqs, 'containerd image store opt-in limits on XFS pquota in the VM (dockerd 28.5)', () => {
  beforeAll(async () => {
    await ensureVmImage();
  });

  it('a labelled container is limited, filled past its threshold, grown online, and keeps its limit over restarts', async () => {
    const result = await runInVm({
      environment: 'overlay2-xfs',
      label: 'containerd-xfs',
      engines: ['sid'],
      vitestFiles: [GUEST_TEST],
      timeoutMs: 25 * 60_000,
    });
    console.log(
      `containerd-xfs VM run: exit ${result.exitCode} in ${Math.round(result.durationMs / 1000)} s (${result.runDir})`,
    );
    assertVmRunPassed(result);
    // every guest test really ran and passed (a guest run that skipped must not count)
    expect(guestRunProblems(readJunit(path.join(result.artifactsDir, 'junit.xml')), GUEST_TEST)).toEqual([]);
    const measurements = path.join(result.artifactsDir, 'containerd-xfs', 'measurements.json');
    expect(existsSync(measurements)).toBe(true);
    console.log(`containerd-xfs guest measurements: ${readFileSync(measurements, 'utf8')}`);
    const report = readFileSync(
      path.join(result.artifactsDir, 'containerd-xfs', 'report-after-dockerd-restart.txt'),
      'utf8',
    );
    // the grown limit (128 MiB = 131072 KiB) is what the kernel holds after the dockerd restart
    expect(report).toMatch(/^#\d+\s+\d+\s+0\s+131072\s/m);
  });
});
