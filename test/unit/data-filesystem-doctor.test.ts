/**
 * The data-filesystem doctor checks and status lines over one look: an LV whose VG is exhausted
 * (warn with the vgextend fix), a plain disk (warn: not LVM), a missing grow tool (error), an
 * unfinished grow.
 */
import { describe, expect, it } from 'vitest';
import { renderDataFilesystemLines, dataFilesystemJson } from '../../src/cli/render-data-filesystem.js';
import { dataFilesystemChecks } from '../../src/doctor/data-filesystem-checks.js';
import { sampleDataFsStatus } from './data-filesystem-sample-status.js';

const allTools = () => '/usr/sbin/tool';

describe('dataFilesystemChecks', () => {
  it('an exhausted VG: on LVM, tools there, cannot grow with the vgextend fix', () => {
    const checks = dataFilesystemChecks(sampleDataFsStatus(), allTools);
    expect(checks.map((check) => [check.name, check.ok, check.severity])).toEqual([
      ['data filesystem on LVM', true, 'warn'],
      ['data filesystem grow tools', true, 'error'],
      ['data filesystem can grow', false, 'warn'],
      ['data filesystem device grown underneath', true, 'warn'],
    ]);
    expect(checks[0]?.detail).toContain('LV agdata/docker (3GiB, linear)');
    expect(checks[3]?.detail).toContain('pvresize gives the VG the difference');
    expect(checks[2]?.detail).toContain('(vg-exhausted)');
    expect(checks[2]?.fix).toContain('vgextend');
  });

  it('a partition whose disk grew: the agent does nothing, doctor names growpart', () => {
    const status = sampleDataFsStatus();
    status.underneath = {
      ...status.underneath!,
      decision: {
        action: 'manual',
        why: 'PV /dev/vda3 is partition 3 of /dev/vda, which has 2GiB unpartitioned after it',
        fix: 'grow the partition (the agent never edits partition tables): growpart /dev/vda 3; then the agent runs pvresize and grows the LV by its policy',
        unusedBytes: 2 * 1024 ** 3,
      },
      outcome: null,
    };
    const check = dataFilesystemChecks(status, allTools).find(
      (candidate) => candidate.name === 'data filesystem device grown underneath',
    );
    expect(check).toMatchObject({ ok: false, severity: 'warn' });
    expect(check?.fix).toContain('growpart /dev/vda 3');
  });

  it('a plain disk says why and how; a missing resize2fs is an error', () => {
    const status = sampleDataFsStatus();
    const look = status.look!;
    const notLvm = {
      ...status,
      decision: { action: 'cannot-grow' as const, reason: 'not-lvm' as const, why: 'it is not on LVM' },
      look: {
        ...look,
        lv: null,
        observation: {
          ...look.observation,
          lvm: null,
          notLvmReason: '/dev/vda1 (254:1) is not a device-mapper device',
        },
      },
    };
    const checks = dataFilesystemChecks(notLvm, allTools);
    expect(checks[0]).toMatchObject({ name: 'data filesystem on LVM', ok: false });
    expect(checks[0]?.detail).toContain('/dev/vda1');
    expect(checks[0]?.fix).toContain('lvcreate');
    const missing = dataFilesystemChecks(sampleDataFsStatus(), (tool) =>
      tool === 'resize2fs' ? null : '/x',
    );
    expect(missing[1]).toMatchObject({ ok: false, severity: 'error', detail: 'missing: resize2fs' });
  });

  it('an unfinished grow and an unreadable look', () => {
    const pending = {
      ...sampleDataFsStatus(),
      pendingRecoveries: [
        { intentId: 'i', vg: 'agdata', lv: 'docker', outcome: 'pending' as const, detail: 'not mounted' },
      ],
    };
    expect(dataFilesystemChecks(pending, allTools).at(-1)).toMatchObject({
      name: 'data filesystem grows finished',
      ok: false,
    });
    const failed = { ...sampleDataFsStatus(), look: null, error: 'EACCES /proc/self/mountinfo' };
    expect(dataFilesystemChecks(failed, allTools)).toEqual([
      expect.objectContaining({ ok: false, severity: 'error', detail: expect.stringContaining('EACCES') }),
    ]);
  });
});

describe('status lines', () => {
  it('show the stack, usage, inodes and why it cannot grow', () => {
    const lines = renderDataFilesystemLines(sampleDataFsStatus());
    expect(lines[0]).toBe('Data filesystem /var/lib/docker: ext4 on LVM agdata/docker, LV 3GiB, VG free 0B');
    expect(lines[1]).toMatch(/used \(\d+\.\d%\), .* free, inodes 0\.3% used$/);
    expect(lines[2]).toMatch(/^ {2}next: cannot grow \(vg-exhausted\): /);
    expect(dataFilesystemJson(sampleDataFsStatus())).toMatchObject({
      lvm: { vg: 'agdata', lv: 'docker', vgFreeBytes: 0 },
      decision: { reason: 'vg-exhausted' },
    });
  });
});
