/**
 * The block stack under Docker's data root, from cheap reads only (no process): the mount from
 * /proc/self/mountinfo (the shared parser in ../filesystem.ts), the block device behind it, and,
 * when that device is a device-mapper device made by LVM, the VG and LV it is (sysfs `dm/name` and
 * `dm/uuid`). What LVM says about the LV and its VG is one `lvs` call (./lvm.ts).
 *
 * The device: for ext4 and XFS the mount's st_dev (mountinfo's major:minor) is the block device;
 * btrfs reports an anonymous device (0:NN) there, so the mount source (a device path) is stat'ed for
 * its rdev instead.
 */
import { readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { findMountFor, hasOption, parseMountInfo, type MountEntry } from '../filesystem.js';

export interface BlockStackPaths {
  mountInfoFile: string;
  /** /sys/dev/block (a test points it at a copy). */
  sysDevBlock: string;
  /** Resolves symlinks of the data root (default: fs.realpath). */
  realpath?: (file: string) => Promise<string>;
  /** "major:minor" of a block device node, null when it is none (default: stat's rdev). */
  blockDeviceNumber?: (devicePath: string) => Promise<string | null>;
}

export const DEFAULT_BLOCK_STACK_PATHS: BlockStackPaths = {
  mountInfoFile: '/proc/self/mountinfo',
  sysDevBlock: '/sys/dev/block',
};

export interface LvmName {
  vg: string;
  lv: string;
}

export interface BlockStack {
  /** The path asked about (Docker's data root) and the mount it lives on. */
  dataRoot: string;
  mountPoint: string;
  fsType: string;
  /** Mount source as mountinfo shows it (/dev/mapper/vg-lv, /dev/vg/lv, /dev/vda1, ...). */
  source: string;
  readOnly: boolean;
  /** "major:minor" of the block device, or null when the source is not a block device. */
  deviceMajorMinor: string | null;
  /** Size of that block device (sysfs `size` x 512), or null when unknown. */
  deviceSizeBytes: number | null;
  /** The device-mapper name (/dev/mapper/<dmName>), when it is a dm device. */
  dmName: string | null;
  /** Set when the device is an LVM logical volume (dm uuid `LVM-<vg uuid><lv uuid>`). */
  lvm: LvmName | null;
  /** Why `lvm` is null, for status and doctor. */
  notLvmReason: string | null;
}

/** LVM names: letters, digits and `+_.-`, not starting with a hyphen (lvm(8)). */
const LVM_NAME = /^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$/;

export function isValidLvmName(name: string): boolean {
  return LVM_NAME.test(name) && name !== '.' && name !== '..' && name.length <= 127;
}

/**
 * Splits a dm name made by LVM into VG and LV: LVM doubles every hyphen inside a name and joins the
 * two with a single one (`my-vg` + `data` -> `my--vg-data`). Null when it is not such a name, or
 * carries a layer suffix (`-real`, `-cow`, `_tdata`: internal devices, never grown).
 */
export function splitLvmDmName(dmName: string): LvmName | null {
  for (let index = 0; index < dmName.length; index += 1) {
    if (dmName[index] !== '-') continue;
    if (dmName[index + 1] === '-') {
      index += 1;
      continue;
    }
    const vg = dmName.slice(0, index).replaceAll('--', '-');
    const lvPart = dmName.slice(index + 1);
    // a single hyphen in the LV part means a layer suffix (vg-lv-real)
    if (lvPart.replaceAll('--', '').includes('-')) return null;
    const lv = lvPart.replaceAll('--', '-');
    return isValidLvmName(vg) && isValidLvmName(lv) ? { vg, lv } : null;
  }
  return null;
}

/** dm uuid of an LVM LV: `LVM-` + 32 characters of VG uuid + 32 of LV uuid, nothing after. */
export function isLvmLvUuid(dmUuid: string): boolean {
  return /^LVM-[A-Za-z0-9]{64}$/.test(dmUuid.trim());
}

function majorMinorOfRdev(rdev: bigint): string {
  // glibc's gnu_dev_major / gnu_dev_minor
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

async function readSysfs(file: string): Promise<string | null> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

async function statBlockDeviceNumber(devicePath: string): Promise<string | null> {
  try {
    const info = await stat(devicePath, { bigint: true });
    return info.isBlockDevice() ? majorMinorOfRdev(info.rdev) : null;
  } catch {
    return null;
  }
}

/** The block device behind a mount: mountinfo's st_dev, or the source's rdev for btrfs. */
async function deviceOf(mount: MountEntry, paths: BlockStackPaths): Promise<string | null> {
  if (!mount.majorMinor.startsWith('0:')) return mount.majorMinor;
  if (!mount.source.startsWith('/dev/')) return null;
  const majorMinor = await (paths.blockDeviceNumber ?? statBlockDeviceNumber)(mount.source);
  if (majorMinor === null) return null;
  return (await readSysfs(path.join(paths.sysDevBlock, majorMinor, 'dev'))) === null ? null : majorMinor;
}

export async function readBlockStack(
  dataRoot: string,
  paths: BlockStackPaths = DEFAULT_BLOCK_STACK_PATHS,
): Promise<BlockStack> {
  const [resolved, text] = await Promise.all([
    (paths.realpath ?? realpath)(dataRoot),
    readFile(paths.mountInfoFile, 'utf8'),
  ]);
  const mount = findMountFor(parseMountInfo(text), resolved);
  if (!mount) throw new Error(`no mount found for ${dataRoot}`);
  const base = {
    dataRoot,
    mountPoint: mount.mountPoint,
    fsType: mount.fsType,
    source: mount.source,
    readOnly: hasOption(mount, 'ro'),
  };
  const majorMinor = await deviceOf(mount, paths);
  if (!majorMinor) {
    return {
      ...base,
      deviceMajorMinor: null,
      deviceSizeBytes: null,
      dmName: null,
      lvm: null,
      notLvmReason: `${mount.mountPoint} (${mount.fsType} from ${mount.source}) is not on a block device`,
    };
  }
  const deviceDir = path.join(paths.sysDevBlock, majorMinor);
  const [sizeText, dmName, dmUuid] = await Promise.all([
    readSysfs(path.join(deviceDir, 'size')),
    readSysfs(path.join(deviceDir, 'dm', 'name')),
    readSysfs(path.join(deviceDir, 'dm', 'uuid')),
  ]);
  const sectors = sizeText === null ? NaN : Number(sizeText);
  const withDevice = {
    ...base,
    deviceMajorMinor: majorMinor,
    deviceSizeBytes: Number.isSafeInteger(sectors) ? sectors * 512 : null,
    dmName,
  };
  if (dmName === null) {
    return {
      ...withDevice,
      lvm: null,
      notLvmReason: `${mount.source} (${majorMinor}) is not a device-mapper device (a plain disk or partition)`,
    };
  }
  if (dmUuid === null || !isLvmLvUuid(dmUuid)) {
    return {
      ...withDevice,
      lvm: null,
      notLvmReason: `device-mapper device ${dmName} is not an LVM logical volume (dm uuid ${dmUuid ?? 'none'})`,
    };
  }
  const lvm = splitLvmDmName(dmName);
  if (!lvm) {
    return {
      ...withDevice,
      lvm: null,
      notLvmReason: `device-mapper device ${dmName} is an internal LVM layer, not a logical volume`,
    };
  }
  return { ...withDevice, lvm, notLvmReason: null };
}
