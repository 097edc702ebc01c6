/**
 * One fresh VM per storage environment the harness offers, each running the guest smoke test
 * (test/guest/harness-smoke.test.ts) on the real kernel: a live thin pool (`dmsetup status`), Docker's
 * devicemapper driver in direct-lvm and loop-lvm mode (`docker info`), overlay2 on XFS with pquota
 * enforcing a per-container limit. The host checks the guest's verdict AND the real output it printed.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { describeWith } from '../support/prereqs.js';
import {
  assertVmRunPassed,
  ensureVmImage,
  runInVm,
  vmPrereqs,
  type VmEnvironment,
  type VmRunResult,
} from './harness/index.js';

const GUEST_SMOKE = 'test/guest/harness-smoke.test.ts';
// a real thin-pool status line, e.g. `0 4194304 thin-pool 1 198/16384 1/32768 - rw discard_passdown ...`
const POOL_STATUS_LINE = /^0 \d+ thin-pool \d+ \d+\/\d+ \d+\/\d+ \S+ rw /m;

async function smoke(environment: VmEnvironment): Promise<VmRunResult> {
  const result = await runInVm({
    environment,
    label: `smoke-${environment}`,
    vitestFiles: [GUEST_SMOKE],
    timeoutMs: 10 * 60_000,
  });
  console.log(
    `smoke ${environment}: exit ${result.exitCode} in ${Math.round(result.durationMs / 1000)} s (${result.runDir})`,
  );
  assertVmRunPassed(result);
  // Exactly the one check for this environment ran and passed (the others are skipped by design):
  // a guest run that skipped everything must not count as a pass.
  const junit = readFileSync(path.join(result.artifactsDir, 'junit.xml'), 'utf8');
  const testcases = junit.match(/<testcase [^>]*>[\s\S]*?<\/testcase>|<testcase [^>]*\/>/g) ?? [];
  const passed = testcases.filter((testcase) => !/<skipped|<failure|<error/.test(testcase));
  expect(passed).toHaveLength(1);
  expect(passed[0]).toContain(`classname="${GUEST_SMOKE}"`);
  return result;
}

describeWith(vmPrereqs, 'VM environments (smoke)', () => {
  beforeAll(async () => {
    const image = await ensureVmImage();
    console.log(`VM image ${image.dir}: ${image.built ? 'built' : 'reused'} in ${image.durationMs} ms`);
  });

  it('dm-thin-raw: a dmsetup thin pool on the scratch disk provisions blocks', async () => {
    const result = await smoke('dm-thin-raw');
    expect(result.consoleLog).toMatch(POOL_STATUS_LINE);
    expect(result.consoleLog).toMatch(/^0 2097152 thin \d+ \d+/m);
  });

  it('docker-dm-lvm: Docker devicemapper on an LVM thin pool', async () => {
    const result = await smoke('docker-dm-lvm');
    expect(result.consoleLog).toContain('Storage Driver: devicemapper');
    expect(result.consoleLog).toContain('Pool Name: docker-thinpool');
    expect(result.consoleLog).toMatch(POOL_STATUS_LINE);
  });

  it("docker-dm-loop: Docker devicemapper on Docker's loop files", async () => {
    const result = await smoke('docker-dm-loop');
    expect(result.consoleLog).toContain('Storage Driver: devicemapper');
    expect(result.consoleLog).toContain('Data loop file: /var/lib/docker/devicemapper/devicemapper/data');
    expect(result.consoleLog).toMatch(POOL_STATUS_LINE);
  });

  it('overlay2-xfs: Docker overlay2 on XFS with project quotas', async () => {
    const result = await smoke('overlay2-xfs');
    expect(result.consoleLog).toContain('Storage Driver: overlay2');
    expect(result.consoleLog).toContain('Backing Filesystem: xfs');
    expect(result.consoleLog).toContain('No space left on device');
  });
});
