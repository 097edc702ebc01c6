/**
 * Boots one VM per devicemapper pool kind and runs test/guest/devicemapper-lifecycle.test.ts there:
 * direct-lvm with live-restore on, loop-lvm with live-restore off (so the dockerd restart is
 * covered both ways). First the environment's smoke check (test/vm/guest/smoke.sh: Docker really
 * runs devicemapper on that pool, containers get thin devices). The host checks the guest's
 * verdict, that every guest test passed (none skipped), and prints the measurements the guest wrote.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { guestRunProblems, readJunit } from '../support/junit.js';
import { describeWith } from '../support/prereqs.js';
import { assertVmRunPassed, runInVm, vmPrereqs, type VmEnvironment } from './harness/index.js';
import { SMOKE_SCRIPT, expectSmokePassed } from './smoke-checks.js';

const GUEST_FILE = 'test/guest/devicemapper-lifecycle.test.ts';

async function lifecycle(environment: VmEnvironment, liveRestore: boolean): Promise<void> {
  const result = await runInVm({
    environment,
    label: `dm-lifecycle-${environment}`,
    script: SMOKE_SCRIPT,
    vitestFiles: [GUEST_FILE],
    env: { AUTOGROW_VM_LIVE_RESTORE: liveRestore ? '1' : '0' },
    // Under TCG a run takes ~6-8 min alone; on a loaded 2-core host, much longer.
    timeoutMs: Number(process.env.AUTOGROW_DM_VM_TIMEOUT_MS ?? 25 * 60_000),
  });
  console.log(
    `${environment}: exit ${result.exitCode} in ${Math.round(result.durationMs / 1000)} s (${result.runDir})`,
  );
  for (const line of result.consoleLog.split('\n')) if (line.includes('DM-MEASURE')) console.log(line.trim());
  assertVmRunPassed(result);
  expectSmokePassed(result, environment);
  // every test the guest file declares ran and passed (a skipped or missing one fails)
  expect(guestRunProblems(readJunit(path.join(result.artifactsDir, 'junit.xml')), GUEST_FILE)).toEqual([]);
  const measurements = path.join(result.artifactsDir, `devicemapper-${environment}.json`);
  expect(existsSync(measurements)).toBe(true);
}

describeWith(vmPrereqs, 'devicemapper backend in the VM', () => {
  beforeAll(() => {
    // The guest runs the compiled CLI (dist/) for the policy pass. AUTOGROW_SKIP_BUILD=1 when
    // dist/ is known to be fresh (npm test builds first).
    if (process.env.AUTOGROW_SKIP_BUILD !== '1')
      execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });
  });

  it('direct-lvm (live-restore on): grow, stop/start, docker restart, dockerd restart, rm, lvextend', async () => {
    await lifecycle('docker-dm-lvm', true);
  });

  it('loop-lvm (live-restore off): grow, stop/start, docker restart, dockerd restart, rm, loop file pool grow', async () => {
    await lifecycle('docker-dm-loop', false);
  });
});
