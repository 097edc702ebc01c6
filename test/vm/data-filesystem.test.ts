/**
 * Host launcher: ONE `none` VM runs test/vm/guest/data-filesystem.sh, which builds LVM on the scratch
 * disk and, for overlay2 on ext4 on LVM, overlay2 on XFS on LVM and the btrfs driver on btrfs on LVM,
 * shows the control (ENOSPC without the agent), an online LV + filesystem grow under a writer with
 * `df` = metrics, and a clear VG-exhausted reason with nothing changed; for ext4 also a real kill -9
 * between lvextend and the filesystem grow finished by the restarted agent (recovery is the same code
 * for every filesystem; each agent start costs minutes under TCG). One boot for every case, 512 MiB
 * LVs: the run fits CI. The guest runs the compiled agent (dist/), built here first.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { describeWith } from '../support/prereqs.js';
import { CHECKOUT_DIR } from './harness/image.js';
import { assertVmRunPassed, ensureVmImage, runInVm, vmPrereqs } from './harness/index.js';

/**
 * While iterating, AUTOGROW_DATAFS_FILESYSTEMS=none (or a subset) and AUTOGROW_DATAFS_UNDERNEATH
 * (`whole-disk`, `pv`, `none`) on the host run fewer cases; CI sets neither and runs every case.
 */
const only = (variable: string, all: string[]) => {
  const value = process.env[variable]?.trim();
  return value ? value.split(/\s+/).filter((name) => name !== 'none') : all;
};
const FILESYSTEMS = only('AUTOGROW_DATAFS_FILESYSTEMS', ['ext4', 'xfs', 'btrfs']);
const KILL_FILESYSTEMS = ['ext4'].filter((fs) => FILESYSTEMS.includes(fs));
/** Disks grown underneath (truncate + losetup -c): ext4 on the whole loop device, and loop -> PV -> VG -> LV -> XFS. */
const UNDERNEATH = only('AUTOGROW_DATAFS_UNDERNEATH', ['whole-disk', 'pv']);
const CHECKS = ['control', 'grow', 'vg-exhausted'];
const KILL_CHECKS = ['killed', 'recovered'];
const UNDERNEATH_CHECKS = ['control', 'grown-underneath'];

describeWith(vmPrereqs, 'data filesystem growth on LVM in the VM', () => {
  beforeAll(async () => {
    execFileSync(
      process.execPath,
      [path.join(CHECKOUT_DIR, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'],
      {
        cwd: CHECKOUT_DIR,
        stdio: 'inherit',
      },
    );
    await ensureVmImage();
  });

  it('grows LV + ext4 / XFS / btrfs online under a writer, reports VG exhaustion, recovers a kill after lvextend, grows into disks grown underneath', async () => {
    const result = await runInVm({
      environment: 'none',
      label: 'data-filesystem',
      script: 'test/vm/guest/data-filesystem.sh',
      env: {
        AUTOGROW_DATAFS_FILESYSTEMS: FILESYSTEMS.join(' ') || 'none',
        AUTOGROW_DATAFS_KILL_FILESYSTEMS: KILL_FILESYSTEMS.join(' '),
        AUTOGROW_DATAFS_UNDERNEATH: UNDERNEATH.join(' ') || 'none',
      },
      timeoutMs: 30 * 60_000,
    });
    console.log(
      `data-filesystem VM run: exit ${result.exitCode} in ${Math.round(result.durationMs / 1000)} s (${result.runDir})`,
    );
    for (const line of result.consoleLog.split('\n')) if (line.startsWith('DATAFS')) console.log(line);
    assertVmRunPassed(result);
    for (const fs of FILESYSTEMS) {
      for (const check of CHECKS) expect(result.consoleLog).toContain(`DATAFS ${fs} ${check}: ok`);
    }
    for (const fs of KILL_FILESYSTEMS) {
      for (const check of KILL_CHECKS) expect(result.consoleLog).toContain(`DATAFS ${fs} ${check}: ok`);
    }
    for (const name of UNDERNEATH) {
      for (const check of UNDERNEATH_CHECKS)
        expect(result.consoleLog).toContain(`DATAFS ${name} ${check}: ok`);
    }
    expect(result.consoleLog).toContain('DATAFS PASSED');
    const out = path.join(result.artifactsDir, 'data-filesystem');
    for (const fs of FILESYSTEMS) {
      // the agent's metrics after the grow name the filesystem the guest made
      const metrics = readFileSync(path.join(out, `metrics-${fs}-after.txt`), 'utf8');
      expect(metrics).toContain(
        `docker_autogrow_data_filesystem_size_bytes{mountpoint="/var/lib/docker",fstype="${fs}"}`,
      );
    }
    for (const fs of KILL_FILESYSTEMS) {
      // the journal at the kill ends with the LV extended and the filesystem grow not recorded
      const killed = readFileSync(path.join(out, `journal-${fs}-killed.jsonl`), 'utf8')
        .trim()
        .split('\n');
      expect(JSON.parse(killed.at(-1) ?? '{}')).toMatchObject({ step: 'lv-extended' });
      const recovered = readFileSync(path.join(out, `journal-${fs}-recovered.jsonl`), 'utf8');
      expect(recovered).toContain('"step":"done"');
    }
    for (const name of UNDERNEATH) {
      // the grown-underneath journal: intent to done, by the action of the case
      const journal = readFileSync(path.join(out, `journal-${name}.jsonl`), 'utf8');
      expect(journal).toContain(name === 'pv' ? '"kind":"pv-resize"' : '"kind":"device-fs"');
      expect(journal).toContain('"step":"done"');
      const metrics = readFileSync(path.join(out, `metrics-${name}-after.txt`), 'utf8');
      expect(metrics).toContain('docker_autogrow_data_filesystem_device_unused_bytes');
    }
    console.log(`data-filesystem artifacts: ${readdirSync(out).join(' ')}`);
  });
});
