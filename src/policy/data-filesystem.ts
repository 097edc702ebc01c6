/**
 * Policy for the filesystem under Docker's data root: a pure function of (settings, observation,
 * history, now). It decides whether to grow the logical volume under that filesystem and to what
 * size, or says in one stable reason code why it cannot (the reason is exported as a metric label,
 * shown in status and alerted on).
 *
 * Sizes: the target is the LV size plus `step` (a share of the LV or a size), at least `minStep`,
 * at least what brings bytes used back under the threshold, capped by `maxSize` and by the VG's free
 * space above `vgReserve`, rounded to whole extents (down when the VG limits it, so lvextend never
 * asks for more than exists). Bytes and inodes both trigger: ext4 fixes its inode count at mkfs
 * time and grows it only with the filesystem.
 */
import type { Step } from '../config/schema.js';
import { formatBytes } from '../util/units.js';

export interface DataFilesystemSettings {
  threshold: number;
  inodeThreshold: number;
  step: Step;
  minStep: number;
  maxSize: number;
  vgReserve: number;
  cooldown: number;
}

/** Filesystems the grower can grow online. */
export const GROWABLE_FILESYSTEMS = ['ext4', 'xfs', 'btrfs'] as const;
export type GrowableFilesystem = (typeof GROWABLE_FILESYSTEMS)[number];

export function isGrowableFilesystem(fsType: string): fsType is GrowableFilesystem {
  return (GROWABLE_FILESYSTEMS as readonly string[]).includes(fsType);
}

export interface DataFilesystemObservation {
  fsType: string;
  /** statfs: total and available (f_bavail) bytes. */
  fsTotalBytes: number;
  fsAvailableBytes: number;
  /** statfs: 0 total when the filesystem has no fixed inode count (btrfs). */
  fsTotalInodes: number;
  fsFreeInodes: number;
  /** Null when the filesystem is not on an LVM logical volume (see `notLvmReason`). */
  lvm: {
    lvSizeBytes: number;
    /** LVM segment type: linear and striped LVs take lvextend from VG free space. */
    segtype: string;
    vgFreeBytes: number;
    vgExtentBytes: number;
  } | null;
  notLvmReason?: string;
  /** The mount is read-only. */
  readOnly: boolean;
}

export interface DataFilesystemHistory {
  lastGrowAtMs: number | null;
  /** An earlier grow left work a restart must finish (recover reported it). */
  pendingRecovery: boolean;
}

/** Why the data filesystem cannot grow (a metric label: keep the set small and stable). */
export type CannotGrowReason =
  | 'not-lvm'
  | 'unsupported-filesystem'
  | 'unsupported-lv-type'
  | 'read-only'
  | 'max-size-reached'
  | 'vg-exhausted'
  | 'recovery-pending';

export const CANNOT_GROW_REASONS: readonly CannotGrowReason[] = [
  'not-lvm',
  'unsupported-filesystem',
  'unsupported-lv-type',
  'read-only',
  'max-size-reached',
  'vg-exhausted',
  'recovery-pending',
];

export type DataFilesystemDecision =
  | { action: 'none'; why: string }
  | { action: 'cooldown'; why: string; untilMs: number }
  | { action: 'grow'; fromBytes: number; toBytes: number; why: string }
  | { action: 'cannot-grow'; reason: CannotGrowReason; why: string };

/** LV segment types lvextend can lengthen from the VG's free extents. */
const EXTENDABLE_SEGTYPES: ReadonlySet<string> = new Set(['linear', 'striped']);

function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(1)}%`;
}

export function bytesUsedRatio(observation: DataFilesystemObservation): number {
  if (observation.fsTotalBytes <= 0) return 0;
  return (observation.fsTotalBytes - observation.fsAvailableBytes) / observation.fsTotalBytes;
}

export function inodesUsedRatio(observation: DataFilesystemObservation): number | null {
  if (observation.fsTotalInodes <= 0) return null;
  return (observation.fsTotalInodes - observation.fsFreeInodes) / observation.fsTotalInodes;
}

export function decideDataFilesystem(
  settings: DataFilesystemSettings,
  observation: DataFilesystemObservation,
  history: DataFilesystemHistory,
  nowMs: number,
): DataFilesystemDecision {
  const bytesRatio = bytesUsedRatio(observation);
  const inodesRatio = inodesUsedRatio(observation);
  const bytesHigh = bytesRatio >= settings.threshold;
  const inodesHigh = inodesRatio !== null && inodesRatio >= settings.inodeThreshold;
  const usage = `bytes ${percent(bytesRatio)} used${inodesRatio === null ? '' : `, inodes ${percent(inodesRatio)}`}`;
  if (!bytesHigh && !inodesHigh) return { action: 'none', why: `${usage}: below the thresholds` };
  const trigger = bytesHigh
    ? `bytes ${percent(bytesRatio)} used >= ${percent(settings.threshold)}`
    : `inodes ${percent(inodesRatio ?? 0)} used >= ${percent(settings.inodeThreshold)}`;

  const cannot = (reason: CannotGrowReason, why: string): DataFilesystemDecision => ({
    action: 'cannot-grow',
    reason,
    why: `${trigger}, but ${why}`,
  });
  if (history.pendingRecovery)
    return cannot('recovery-pending', 'an earlier grow is unfinished (restart the agent to recover it)');
  if (!isGrowableFilesystem(observation.fsType))
    return cannot('unsupported-filesystem', `${observation.fsType} cannot be grown online by the agent`);
  if (observation.readOnly) return cannot('read-only', 'the filesystem is mounted read-only');
  const lvm = observation.lvm;
  if (!lvm) return cannot('not-lvm', observation.notLvmReason ?? 'it is not on an LVM logical volume');
  if (!EXTENDABLE_SEGTYPES.has(lvm.segtype))
    return cannot(
      'unsupported-lv-type',
      `the LV is of type ${lvm.segtype} (only linear and striped are extended)`,
    );
  if (lvm.lvSizeBytes >= settings.maxSize)
    return cannot(
      'max-size-reached',
      `the LV is ${formatBytes(lvm.lvSizeBytes)}, maxSize is ${formatBytes(settings.maxSize)}`,
    );

  if (history.lastGrowAtMs !== null && nowMs < history.lastGrowAtMs + settings.cooldown) {
    return {
      action: 'cooldown',
      untilMs: history.lastGrowAtMs + settings.cooldown,
      why: `${trigger}; in cooldown after the grow at ${new Date(history.lastGrowAtMs).toISOString()}`,
    };
  }

  const extent = Math.max(1, lvm.vgExtentBytes);
  const spendableBytes = Math.floor(Math.max(0, lvm.vgFreeBytes - settings.vgReserve) / extent) * extent;
  if (spendableBytes <= 0) {
    return cannot(
      'vg-exhausted',
      `the volume group has ${formatBytes(lvm.vgFreeBytes)} free and ${formatBytes(settings.vgReserve)} is reserved`,
    );
  }
  const usedBytes = observation.fsTotalBytes - observation.fsAvailableBytes;
  // what brings bytes used back under the threshold (the LV carries filesystem overhead on top)
  const overheadBytes = Math.max(0, lvm.lvSizeBytes - observation.fsTotalBytes);
  const belowThresholdBytes = Math.ceil(usedBytes / Math.max(settings.threshold, 0.01)) + overheadBytes;
  const stepBytes =
    settings.step.kind === 'ratio' ? Math.ceil(lvm.lvSizeBytes * settings.step.ratio) : settings.step.bytes;
  let toBytes = Math.max(lvm.lvSizeBytes + Math.max(stepBytes, settings.minStep), belowThresholdBytes);
  toBytes = Math.ceil(toBytes / extent) * extent;
  let limitedBy = '';
  const maxSizeBytes = Math.floor(settings.maxSize / extent) * extent;
  if (toBytes > maxSizeBytes) {
    toBytes = maxSizeBytes;
    limitedBy = ' (capped by maxSize)';
  }
  if (toBytes - lvm.lvSizeBytes > spendableBytes) {
    toBytes = lvm.lvSizeBytes + spendableBytes;
    limitedBy = ` (limited by the VG: ${formatBytes(lvm.vgFreeBytes)} free, ${formatBytes(settings.vgReserve)} reserved)`;
  }
  if (toBytes <= lvm.lvSizeBytes) {
    return cannot(
      'max-size-reached',
      `maxSize ${formatBytes(settings.maxSize)} leaves no whole extent to add`,
    );
  }
  return {
    action: 'grow',
    fromBytes: lvm.lvSizeBytes,
    toBytes,
    why: `${trigger}: LV ${formatBytes(lvm.lvSizeBytes)} -> ${formatBytes(toBytes)}${limitedBy}`,
  };
}
