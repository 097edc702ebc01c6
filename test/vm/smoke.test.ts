/**
 * One fresh VM per storage environment the harness offers, each running test/vm/guest/smoke.sh on the
 * real kernel: a live thin pool (`dmsetup status`), Docker's devicemapper driver in direct-lvm and
 * loop-lvm mode (`docker info`), overlay2 on XFS with pquota enforcing a per-container limit. The host
 * checks the guest's verdict AND the real output it printed. The dm-thin-raw run also runs a guest
 * vitest file whose assertion holds, so the passing path of guest vitest is covered too.
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
  type VmRunOptions,
  type VmRunResult,
} from './harness/index.js';

// a real thin-pool status line, e.g. `0 4194304 thin-pool 1 198/16384 1/32768 - rw discard_passdown ...`
const POOL_STATUS_LINE = /^0 \d+ thin-pool \d+ \d+\/\d+ \d+\/\d+ \S+ rw (no_)?discard_passdown /m;

async function smoke(environment: VmEnvironment, extra: Partial<VmRunOptions> = {}): Promise<VmRunResult> {
  const result = await runInVm({
    environment,
    label: `smoke-${environment}`,
    script: 'test/vm/guest/smoke.sh',
    // generous: on a loaded 2-core machine a devicemapper guest has needed 10+ minutes
    timeoutMs: 20 * 60_000,
    ...extra,
  });
  console.log(
    `smoke ${environment}: exit ${result.exitCode} in ${Math.round(result.durationMs / 1000)} s (${result.runDir})`,
  );
  assertVmRunPassed(result);
  expect(result.consoleLog).toContain(`SMOKE PASSED: ${environment}`);
  return result;
}

describeWith(vmPrereqs, 'VM environments (smoke)', () => {
  beforeAll(async () => {
    const image = await ensureVmImage();
    console.log(`VM image ${image.dir}: ${image.built ? 'built' : 'reused'} in ${image.durationMs} ms`);
  });

  it('dm-thin-raw: a dmsetup thin pool on the scratch disk provisions blocks; guest vitest passes', async () => {
    const result = await smoke('dm-thin-raw', {
      vitestFiles: ['test/guest/harness-probe.test.ts'],
      env: { AUTOGROW_PROBE_EXPECTED: 'grown', AUTOGROW_PROBE_ACTUAL: 'grown' },
    });
    expect(result.consoleLog).toContain('$ dmsetup status agvm-pool');
    expect(result.consoleLog).toMatch(POOL_STATUS_LINE);
    expect(result.consoleLog).toMatch(/^0 2097152 thin \d+ \d+/m);
    const junit = readFileSync(path.join(result.artifactsDir, 'junit.xml'), 'utf8');
    expect(junit).toMatch(/<testsuites [^>]*tests="1" failures="0" errors="0"/);
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
