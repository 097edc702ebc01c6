/**
 * A block device that grew underneath the data filesystem (a cloud disk resized by its operator):
 * a pure function of (observation, history) that says what the agent does about it.
 *
 *  - The filesystem sits on its own block device (a whole disk, a loop device, or a partition that
 *    was already grown): the device is larger than the filesystem -> grow the filesystem to fill it
 *    (resize2fs / xfs_growfs / btrfs resize devid:max). Nothing else can use that space, so this does
 *    not wait for a threshold.
 *  - The filesystem sits on an LVM LV: a PV of its VG whose device can hold at least one more
 *    extent than the PV has -> `pvresize` it. The VG's new free space is then spent by the normal
 *    data-filesystem policy (threshold, step, maxSize, vgReserve).
 *  - A partition whose disk has room after it (the disk grew, the partition did not): the agent
 *    never writes a partition table. "Safe" here means: the agent only grows a filesystem or a PV
 *    into the block device it already sits on, which no other filesystem or partition can be
 *    using; moving a partition's end is not that (another partition, a GPT backup header or an
 *    unpartitioned area another tool uses may be there), so it is left to the operator and
 *    `doctor` names the command (`growpart <disk> <n>`), after which the agent grows the rest.
 */
import { formatBytes } from '../util/units.js';

/** Smaller gaps are allocation granularity (an XFS AG tail, ext4 group overhead), not a resize. */
export const UNDERNEATH_SLACK_BYTES = 16 * 1024 * 1024;

export interface PartitionRoom {
  /** The partition's kernel name (sda1) and number, its disk's kernel name (sda). */
  kernelName: string;
  number: number;
  diskKernelName: string;
  /** Bytes on the disk after the partition's end that no partition uses. */
  roomAfterBytes: number;
}

export interface PhysicalVolumeObservation {
  pvName: string;
  devSizeBytes: number;
  pvSizeBytes: number;
  peStartBytes: number;
  /** Set when the PV is a partition with room after it on its disk. */
  partitionRoom: PartitionRoom | null;
}

export interface UnderneathObservation {
  mountPoint: string;
  fsType: string;
  readOnly: boolean;
  /** The filesystem's own block device when it is not on LVM (null: on LVM, or not a block device). */
  device: {
    devicePath: string;
    sizeBytes: number;
    /** The filesystem's size as the filesystem knows it (superblock or its tool), null when unknown. */
    fsSizeBytes: number | null;
    partitionRoom: PartitionRoom | null;
  } | null;
  /** The PVs of the LV's VG (null: not on LVM, or not read). */
  pvs: PhysicalVolumeObservation[] | null;
  vgExtentBytes: number | null;
}

export interface UnderneathHistory {
  /** Device sizes a grow was already tried at without success: not tried again at the same size. */
  failedAt: ReadonlySet<string>;
}

export type UnderneathDecision =
  | { action: 'none'; why: string; unusedBytes: number }
  | {
      action: 'grow-filesystem';
      devicePath: string;
      fromBytes: number;
      toBytes: number;
      why: string;
      unusedBytes: number;
    }
  | {
      action: 'pvresize';
      pvName: string;
      fromBytes: number;
      toBytes: number;
      why: string;
      unusedBytes: number;
    }
  | { action: 'manual'; why: string; fix: string; unusedBytes: number };

export function attemptKey(device: string, sizeBytes: number): string {
  return `${device}@${sizeBytes}`;
}

function growpartFix(room: PartitionRoom, then: string): string {
  return `grow the partition (the agent never edits partition tables): growpart /dev/${room.diskKernelName} ${room.number}; then ${then}`;
}

export function decideUnderneath(
  observation: UnderneathObservation,
  history: UnderneathHistory,
): UnderneathDecision {
  const { device } = observation;
  if (device) {
    const unused = device.fsSizeBytes === null ? 0 : Math.max(0, device.sizeBytes - device.fsSizeBytes);
    if (device.fsSizeBytes !== null && unused >= UNDERNEATH_SLACK_BYTES) {
      const why = `${device.devicePath} is ${formatBytes(device.sizeBytes)}, the ${observation.fsType} filesystem on it ${formatBytes(device.fsSizeBytes)}`;
      if (observation.readOnly)
        return { action: 'none', why: `${why}; mounted read-only, not grown`, unusedBytes: unused };
      if (history.failedAt.has(attemptKey(device.devicePath, device.sizeBytes)))
        return {
          action: 'none',
          why: `${why}; a grow at this device size failed, not retried until the device changes`,
          unusedBytes: unused,
        };
      return {
        action: 'grow-filesystem',
        devicePath: device.devicePath,
        fromBytes: device.fsSizeBytes,
        toBytes: device.sizeBytes,
        why: `${why}: the device grew underneath, growing the filesystem to fill it`,
        unusedBytes: unused,
      };
    }
    if (device.partitionRoom && device.partitionRoom.roomAfterBytes >= UNDERNEATH_SLACK_BYTES) {
      const room = device.partitionRoom;
      return {
        action: 'manual',
        why: `${device.devicePath} is partition ${room.number} of /dev/${room.diskKernelName}, which has ${formatBytes(room.roomAfterBytes)} unpartitioned after it`,
        fix: growpartFix(room, 'the agent grows the filesystem into it'),
        unusedBytes: room.roomAfterBytes,
      };
    }
    return { action: 'none', why: `the filesystem fills ${device.devicePath}`, unusedBytes: unused };
  }
  const extent = observation.vgExtentBytes;
  if (!observation.pvs || extent === null || extent <= 0)
    return { action: 'none', why: 'no block device or PV to compare', unusedBytes: 0 };
  let unusedTotal = 0;
  let manual: UnderneathDecision | null = null;
  for (const pv of observation.pvs) {
    const unused = Math.max(0, pv.devSizeBytes - pv.peStartBytes - pv.pvSizeBytes);
    unusedTotal += unused;
    if (unused >= extent && unused >= UNDERNEATH_SLACK_BYTES) {
      if (history.failedAt.has(attemptKey(pv.pvName, pv.devSizeBytes))) continue;
      return {
        action: 'pvresize',
        pvName: pv.pvName,
        fromBytes: pv.pvSizeBytes,
        toBytes: pv.devSizeBytes - pv.peStartBytes,
        why: `PV ${pv.pvName} is ${formatBytes(pv.pvSizeBytes)} on a ${formatBytes(pv.devSizeBytes)} device: it grew underneath, pvresize gives the VG the difference`,
        unusedBytes: unused,
      };
    }
    if (!manual && pv.partitionRoom && pv.partitionRoom.roomAfterBytes >= UNDERNEATH_SLACK_BYTES) {
      const room = pv.partitionRoom;
      manual = {
        action: 'manual',
        why: `PV ${pv.pvName} is partition ${room.number} of /dev/${room.diskKernelName}, which has ${formatBytes(room.roomAfterBytes)} unpartitioned after it`,
        fix: growpartFix(room, 'the agent runs pvresize and grows the LV by its policy'),
        unusedBytes: room.roomAfterBytes,
      };
    }
  }
  if (manual) return { ...manual, unusedBytes: manual.unusedBytes + unusedTotal };
  return {
    action: 'none',
    why: 'every PV of the VG fills its device',
    unusedBytes: unusedTotal,
  };
}
