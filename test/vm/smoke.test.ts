/**
 * A fresh VM with a live thin pool built by dmsetup on the scratch disk (dm-thin-raw), running
 * test/vm/guest/smoke.sh on the real kernel: the pool provisions blocks (`dmsetup status`). The
 * run also runs a guest vitest file whose assertion holds, so the passing path of guest vitest is
 * covered too (harness.test.ts covers the failing ones). The Docker environments (docker-dm-lvm,
 * docker-dm-loop, overlay2-xfs) run the same smoke.sh before their own suites, in their own boots
 * (devicemapper-lifecycle.test.ts, overlay-xfs.test.ts): a boot per environment just for the smoke
 * cost CI about 8 minutes under TCG.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { describeWith } from '../support/prereqs.js';
import { assertVmRunPassed, ensureVmImage, runInVm, vmPrereqs } from './harness/index.js';
import { SMOKE_SCRIPT, expectSmokePassed } from './smoke-checks.js';

describeWith(vmPrereqs, 'VM environments (smoke)', () => {
  beforeAll(async () => {
    const image = await ensureVmImage();
    console.log(`VM image ${image.dir}: ${image.built ? 'built' : 'reused'} in ${image.durationMs} ms`);
  });

  it('dm-thin-raw: a dmsetup thin pool on the scratch disk provisions blocks; guest vitest passes', async () => {
    const result = await runInVm({
      environment: 'dm-thin-raw',
      label: 'smoke-dm-thin-raw',
      script: SMOKE_SCRIPT,
      vitestFiles: ['test/guest/harness-probe.test.ts'],
      env: { AUTOGROW_PROBE_EXPECTED: 'grown', AUTOGROW_PROBE_ACTUAL: 'grown' },
      timeoutMs: 20 * 60_000,
    });
    console.log(
      `smoke dm-thin-raw: exit ${result.exitCode} in ${Math.round(result.durationMs / 1000)} s (${result.runDir})`,
    );
    assertVmRunPassed(result);
    expectSmokePassed(result, 'dm-thin-raw');
    const junit = readFileSync(path.join(result.artifactsDir, 'junit.xml'), 'utf8');
    expect(junit).toMatch(/<testsuites [^>]*tests="1" failures="0" errors="0"/);
  });
});
