/**
 * What test/vm/guest/smoke.sh proves about a prepared environment, checked on the host from the
 * real outputs the guest printed. smoke.sh runs before the suite of every run that boots an
 * environment (dm-thin-raw in smoke.test.ts; docker-dm-lvm and docker-dm-loop in
 * devicemapper-lifecycle.test.ts; overlay2-xfs in overlay-xfs.test.ts), so each environment's rig
 * is shown to be real (and, for overlay2-xfs, to bite) without a boot of its own.
 */
import { expect } from 'vitest';
import type { VmEnvironment, VmRunResult } from './harness/index.js';

/** The script the harness runs before the guest's vitest files (`runInVm({ script })`). */
export const SMOKE_SCRIPT = 'test/vm/guest/smoke.sh';

// a real thin-pool status line, e.g. `0 4194304 thin-pool 1 198/16384 1/32768 - rw discard_passdown ...`
const POOL_STATUS_LINE = /^0 \d+ thin-pool \d+ \d+\/\d+ \d+\/\d+ \S+ rw (no_)?discard_passdown /m;

/** Asserts smoke.sh passed in `result` and printed what makes `environment` real. */
export function expectSmokePassed(result: VmRunResult, environment: VmEnvironment): void {
  const log = result.consoleLog;
  expect(log).toContain(`SMOKE PASSED: ${environment}`);
  switch (environment) {
    case 'dm-thin-raw':
      expect(log).toContain('$ dmsetup status agvm-pool');
      expect(log).toMatch(POOL_STATUS_LINE);
      expect(log).toMatch(/^0 2097152 thin \d+ \d+/m);
      return;
    case 'docker-dm-lvm':
      expect(log).toContain('Storage Driver: devicemapper');
      expect(log).toContain('Pool Name: docker-thinpool');
      expect(log).toMatch(POOL_STATUS_LINE);
      return;
    case 'docker-dm-loop':
      expect(log).toContain('Storage Driver: devicemapper');
      expect(log).toContain('Data loop file: /var/lib/docker/devicemapper/devicemapper/data');
      expect(log).toMatch(POOL_STATUS_LINE);
      return;
    case 'overlay2-xfs':
      expect(log).toContain('Storage Driver: overlay2');
      expect(log).toContain('Backing Filesystem: xfs');
      // the control: a 64 MiB limit stops a 100 MiB writer
      expect(log).toContain('No space left on device');
      return;
    default:
      throw new Error(`smoke.sh has no checks for environment '${environment}'`);
  }
}
