/**
 * The data-filesystem readers on outputs recorded in the VM (test/vm/record/data-filesystem.sh): the
 * block stack from mountinfo + sysfs, the one `lvs` JSON report, btrfs devids, LVM dm names.
 */
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  isLvmLvUuid,
  readBlockStack,
  splitLvmDmName,
} from '../../src/storage/data-filesystem/block-stack.js';
import {
  btrfsDevidFor,
  fsGrowCommand,
  parseBtrfsDevices,
} from '../../src/storage/data-filesystem/fs-grow.js';
import { lvextendArgs, lvsArgs, parseLvsReport } from '../../src/storage/data-filesystem/lvm.js';
import { FS_TYPES, GIB, recorded, recordedBlockStackPaths } from './data-filesystem-fixtures.js';

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

function paths() {
  const recordedPaths = recordedBlockStackPaths();
  roots.push(recordedPaths.root);
  return recordedPaths;
}

describe('readBlockStack (recorded mountinfo + sysfs)', () => {
  it.each(FS_TYPES)('finds the VG and LV under a %s data root', async (fs) => {
    const stack = await readBlockStack(`/mnt/${fs}/docker`, paths());
    expect(stack).toMatchObject({
      mountPoint: `/mnt/${fs}`,
      fsType: fs,
      readOnly: false,
      deviceMajorMinor: recorded(`sysfs/${fs}-dev.txt`).trim(),
      deviceSizeBytes: GIB,
      dmName: `agdata-data--${fs}`,
      lvm: { vg: 'agdata', lv: `data-${fs}` },
      notLvmReason: null,
    });
  });

  it('btrfs: the anonymous st_dev in mountinfo is not taken for the device', async () => {
    expect(recorded('stat/btrfs-mountpoint-st-dev.txt').trim()).toMatch(/^0:\d+$/);
    const stack = await readBlockStack('/mnt/btrfs', paths());
    expect(stack.deviceMajorMinor).toBe(recorded('sysfs/btrfs-dev.txt').trim());
    expect(stack.source).toBe('/dev/agdata/data-btrfs');
  });

  it('says why a plain disk is not LVM', async () => {
    const stack = await readBlockStack('/var/lib/docker', paths());
    expect(stack).toMatchObject({ mountPoint: '/', fsType: 'ext4', dmName: null, lvm: null });
    expect(stack.notLvmReason).toContain('not a device-mapper device');
  });

  it('says why a filesystem without a block device (9p, tmpfs) is not LVM', async () => {
    const stack = await readBlockStack('/tmp/x', paths());
    expect(stack).toMatchObject({ fsType: 'tmpfs', deviceMajorMinor: null, lvm: null });
    expect(stack.notLvmReason).toContain('not on a block device');
  });
});

describe('LVM names', () => {
  it('splits dm names LVM made, with doubled hyphens', () => {
    for (const fs of FS_TYPES) {
      expect(splitLvmDmName(recorded(`sysfs/${fs}-dm-name.txt`).trim())).toEqual({
        vg: 'agdata',
        lv: `data-${fs}`,
      });
    }
    expect(splitLvmDmName('my--vg-my--lv')).toEqual({ vg: 'my-vg', lv: 'my-lv' });
    expect(splitLvmDmName('docker-thinpool')).toEqual({ vg: 'docker', lv: 'thinpool' });
  });

  it('refuses layer devices and names that are not LVM names', () => {
    expect(splitLvmDmName('vg-lv-real')).toBeNull();
    expect(splitLvmDmName('docker-thinpool_tdata')).toEqual({ vg: 'docker', lv: 'thinpool_tdata' });
    expect(splitLvmDmName('nohyphen')).toBeNull();
    expect(splitLvmDmName('vg-')).toBeNull();
    expect(splitLvmDmName('vg-a b')).toBeNull();
  });

  it('recognises the dm uuid of an LV', () => {
    for (const fs of FS_TYPES) expect(isLvmLvUuid(recorded(`sysfs/${fs}-dm-uuid.txt`))).toBe(true);
    expect(isLvmLvUuid(`${recorded('sysfs/ext4-dm-uuid.txt').trim()}-real`)).toBe(false);
    expect(isLvmLvUuid('CRYPT-LUKS2-0123')).toBe(false);
  });
});

describe('lvs --reportformat json (one call: LV and VG fields)', () => {
  it('parses the recorded report', () => {
    const report = parseLvsReport(recorded('lvm/lvs-ext4.json'));
    // the LV uuid is the tail of the dm uuid sysfs shows (without its hyphens)
    expect(recorded('sysfs/ext4-dm-uuid.txt').trim().endsWith(report.lvUuid.replaceAll('-', ''))).toBe(true);
    expect(report).toEqual({
      vg: 'agdata',
      lv: 'data-ext4',
      lvUuid: report.lvUuid,
      attr: '-wi-ao----',
      sizeBytes: GIB,
      segtype: 'linear',
      kernelMajorMinor: '253:0',
      vgSizeBytes: 8585740288,
      vgFreeBytes: 5364514816,
      vgExtentBytes: 4 * 1024 ** 2,
    });
    // extended after its neighbours were allocated: two segments, two rows, one LV
    expect(JSON.parse(recorded('lvm/lvs-ext4-after.json')).report[0].lv).toHaveLength(2);
    expect(parseLvsReport(recorded('lvm/lvs-ext4-after.json'))).toMatchObject({
      sizeBytes: 1.5 * GIB,
      segtype: 'linear',
      vgFreeBytes: 3753902080,
    });
    // a failed lvextend left the LV as it was
    expect(parseLvsReport(recorded('lvm/lvs-ext4-after-fail.json')).sizeBytes).toBe(1.5 * GIB);
  });

  it('refuses rows of two LVs, an empty report (no such LV) and non-JSON', () => {
    const two = JSON.parse(recorded('lvm/lvs-ext4.json'));
    two.report[0].lv.push(JSON.parse(recorded('lvm/lvs-xfs.json')).report[0].lv[0]);
    expect(() => parseLvsReport(JSON.stringify(two))).toThrow(/found 2/);
    expect(() => parseLvsReport(recorded('lvm/lvs-missing.json'))).toThrow(/found 0/);
    expect(() => parseLvsReport('  Failed to find')).toThrow(/not JSON/);
  });

  it('builds argument arrays, validating names', () => {
    expect(lvsArgs({ vg: 'agdata', lv: 'data-ext4' })).toEqual([
      '--reportformat',
      'json',
      '--units',
      'b',
      '--nosuffix',
      '-o',
      'lv_name,vg_name,lv_uuid,lv_attr,lv_size,segtype,lv_kernel_major,lv_kernel_minor,vg_size,vg_free,vg_extent_size',
      'agdata/data-ext4',
    ]);
    expect(lvextendArgs({ vg: 'agdata', lv: 'data-ext4' }, 1610612736)).toEqual([
      '-L',
      '1610612736b',
      'agdata/data-ext4',
    ]);
    expect(() => lvsArgs({ vg: 'agdata', lv: '--all' })).toThrow(/not an LVM name/);
    expect(() => lvextendArgs({ vg: 'a', lv: 'b' }, 1.5)).toThrow(/byte count/);
  });
});

describe('filesystem grow commands', () => {
  it('finds the devid of our device in btrfs filesystem show', () => {
    const devices = parseBtrfsDevices(recorded('btrfs/filesystem-show.txt'));
    expect(devices).toEqual([
      { devid: 1, sizeBytes: GIB, usedBytes: 132513792, path: '/dev/mapper/agdata-data--btrfs' },
    ]);
    expect(btrfsDevidFor(devices, 'agdata-data--btrfs', null)).toBe(1);
    const two = [devices[0]!, { ...devices[0]!, devid: 2, path: '/dev/vdc' }];
    expect(btrfsDevidFor(two, 'agdata-data--btrfs', null)).toBe(1);
    expect(() => btrfsDevidFor(two, 'other', null)).toThrow(/none of them/);
  });

  it('one command per filesystem, as the recorded runs used them', () => {
    expect(fsGrowCommand('ext4', '/dev/mapper/agdata-data--ext4', '/mnt/ext4', null)).toEqual({
      tool: 'resize2fs',
      args: ['/dev/mapper/agdata-data--ext4'],
    });
    expect(fsGrowCommand('xfs', '/dev/mapper/agdata-data--xfs', '/mnt/xfs', null)).toEqual({
      tool: 'xfs_growfs',
      args: ['/mnt/xfs'],
    });
    expect(fsGrowCommand('btrfs', '/dev/mapper/x', '/mnt/btrfs', 1)).toEqual({
      tool: 'btrfs',
      args: ['filesystem', 'resize', '1:max', '/mnt/btrfs'],
    });
    expect(recorded('fs/btrfs-resize.txt')).toContain('Resize device id 1');
    expect(recorded('fs/xfs_growfs.txt')).toContain('data blocks changed from 262144 to 393216');
  });
});
