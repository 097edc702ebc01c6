/**
 * The data-filesystem fixtures (recorded in the VM by test/vm/record/data-filesystem.sh) turned into
 * what the code reads: a sysfs tree under a temp dir with the recorded `dev`, `size`, `dm/name` and
 * `dm/uuid` files of the three LVs and of the root disk, the recorded mountinfo, and `lvs` JSON with
 * sizes changed the way lvextend changes them (the real report, re-serialised).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BlockStackPaths } from '../../src/storage/data-filesystem/block-stack.js';
import { fixture } from '../support/scripted-runner.js';

export const FS_TYPES = ['ext4', 'xfs', 'btrfs'] as const;
export type RecordedFs = (typeof FS_TYPES)[number];

export function recorded(relative: string): string {
  return fixture(`data-filesystem/${relative}`);
}

/** A copy of the recorded sysfs and mountinfo; the btrfs mount source resolves to its recorded device. */
export function recordedBlockStackPaths(): BlockStackPaths & { root: string } {
  const root = mkdtempSync(path.join(tmpdir(), 'datafs-sysfs-'));
  const sysDevBlock = path.join(root, 'sys', 'dev', 'block');
  for (const fs of FS_TYPES) {
    const majorMinor = recorded(`sysfs/${fs}-dev.txt`).trim();
    const dir = path.join(sysDevBlock, majorMinor);
    mkdirSync(path.join(dir, 'dm'), { recursive: true });
    writeFileSync(path.join(dir, 'dev'), recorded(`sysfs/${fs}-dev.txt`));
    writeFileSync(path.join(dir, 'size'), recorded(`sysfs/${fs}-size.txt`));
    writeFileSync(path.join(dir, 'dm', 'name'), recorded(`sysfs/${fs}-dm-name.txt`));
    writeFileSync(path.join(dir, 'dm', 'uuid'), recorded(`sysfs/${fs}-dm-uuid.txt`));
  }
  const rootDir = path.join(sysDevBlock, recorded('sysfs/root-dev.txt').trim());
  mkdirSync(rootDir, { recursive: true });
  writeFileSync(path.join(rootDir, 'dev'), recorded('sysfs/root-dev.txt'));
  writeFileSync(path.join(rootDir, 'size'), recorded('sysfs/root-size.txt'));
  const mountInfoFile = path.join(root, 'mountinfo');
  writeFileSync(mountInfoFile, recorded('proc/mountinfo.txt'));
  const btrfsDevice = recorded('sysfs/btrfs-dev.txt').trim();
  return {
    root,
    mountInfoFile,
    sysDevBlock,
    realpath: async (file) => file,
    blockDeviceNumber: async (devicePath) => (devicePath === '/dev/agdata/data-btrfs' ? btrfsDevice : null),
  };
}

/** The recorded `lvs` report of one LV with lv_size and vg_free replaced. */
export function lvsReport(fs: RecordedFs, sizes: { lvBytes?: number; vgFreeBytes?: number } = {}): string {
  const report = JSON.parse(recorded(`lvm/lvs-${fs}.json`)) as {
    report: Array<{ lv: Array<Record<string, string>> }>;
  };
  const row = report.report[0]?.lv[0];
  if (!row) throw new Error('recorded lvs report has no row');
  if (sizes.lvBytes !== undefined) row.lv_size = String(sizes.lvBytes);
  if (sizes.vgFreeBytes !== undefined) row.vg_free = String(sizes.vgFreeBytes);
  return JSON.stringify(report);
}

export const GIB = 1024 ** 3;
export const MIB = 1024 ** 2;
