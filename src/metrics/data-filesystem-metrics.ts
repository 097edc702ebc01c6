/**
 * Metrics of the filesystem under Docker's data root (src/storage/data-filesystem/watcher.ts), as a
 * table like the others (src/metrics/define.ts), registered on the agent's registry by
 * createMetrics(). Values are copied from the watcher's last look; a scrape runs nothing.
 */
import { defineMetrics, type Registry } from './define.js';
import { CANNOT_GROW_REASONS } from '../policy/data-filesystem.js';
import type { DataFsStatus } from '../storage/data-filesystem/watcher.js';

export const DATA_FS_GROW_RESULTS = ['grown', 'failed', 'planned'] as const;
export const UNDERNEATH_ACTIONS = ['grow-filesystem', 'pvresize'] as const;

export interface DataFilesystemMetrics {
  /** Copy one look of the watcher into the metrics. */
  applyStatus(status: DataFsStatus): void;
}

export function createDataFilesystemMetrics(registry: Registry): DataFilesystemMetrics {
  const LAST = 'From the last data-filesystem look.';
  const FS = ['mountpoint', 'fstype'] as const;
  const m = defineMetrics(registry, {
    size: {
      type: 'gauge',
      name: 'data_filesystem_size_bytes',
      help: `Size of the filesystem under Docker's data root (statfs). ${LAST}`,
      labels: FS,
    },
    used: {
      type: 'gauge',
      name: 'data_filesystem_used_bytes',
      help: `Bytes of that filesystem not available to unprivileged writers (size - f_bavail). ${LAST}`,
      labels: FS,
    },
    free: {
      type: 'gauge',
      name: 'data_filesystem_free_bytes',
      help: `Bytes available to unprivileged writers (f_bavail). ${LAST}`,
      labels: FS,
    },
    inodes: {
      type: 'gauge',
      name: 'data_filesystem_inodes',
      help: `Inodes of that filesystem (absent when it has no fixed count, as btrfs). ${LAST}`,
      labels: FS,
    },
    inodesFree: {
      type: 'gauge',
      name: 'data_filesystem_inodes_free',
      help: `Free inodes of that filesystem (absent when it has no fixed count). ${LAST}`,
      labels: FS,
    },
    lvSize: {
      type: 'gauge',
      name: 'data_filesystem_lv_size_bytes',
      help: `Size of the LVM logical volume under it (absent when not on LVM). ${LAST}`,
      labels: ['vg', 'lv'],
    },
    vgFree: {
      type: 'gauge',
      name: 'data_filesystem_vg_free_bytes',
      help: `Free space of the volume group holding that LV (absent when not on LVM). ${LAST}`,
      labels: ['vg'],
    },
    cannotGrow: {
      type: 'gauge',
      name: 'data_filesystem_cannot_grow',
      help: `1 for the reason the data filesystem is over its threshold and cannot grow, 0 for the others. ${LAST}`,
      labels: ['reason'],
    },
    grows: {
      type: 'counter',
      name: 'data_filesystem_grows_total',
      help: 'Data-filesystem grows by result: grown, failed, planned (dry run).',
      labels: ['result'],
    },
    lookErrors: {
      type: 'counter',
      name: 'data_filesystem_look_errors_total',
      help: 'Data-filesystem looks that failed (mountinfo, sysfs or statfs could not be read).',
    },
    pendingRecoveries: {
      type: 'gauge',
      name: 'data_filesystem_pending_recoveries',
      help: `Interrupted data-filesystem grows not yet finished by recovery. ${LAST}`,
    },
    lastLook: {
      type: 'gauge',
      name: 'data_filesystem_look_timestamp_seconds',
      help: 'Unix time of the last data-filesystem look.',
    },
    underneathUnused: {
      type: 'gauge',
      name: 'data_filesystem_device_unused_bytes',
      help: `Bytes of the block device under it (whole device, or the PVs of its VG) that the filesystem or PVs do not use yet: a device grown underneath. ${LAST}`,
    },
    underneathGrows: {
      type: 'counter',
      name: 'data_filesystem_device_grows_total',
      help: 'Grows into a device grown underneath, by kind (grow-filesystem, pvresize) and result (grown, failed, planned).',
      labels: ['kind', 'result'],
    },
    underneathNeedsOperator: {
      type: 'gauge',
      name: 'data_filesystem_device_needs_operator',
      help: `1 when the disk grew but the partition under the filesystem or PV did not: the operator grows the partition (growpart; see doctor). ${LAST}`,
    },
  });
  for (const action of UNDERNEATH_ACTIONS)
    for (const result of DATA_FS_GROW_RESULTS) m.underneathGrows.inc({ kind: action, result }, 0);
  const countedUnderneath: Record<string, number> = {};
  for (const result of DATA_FS_GROW_RESULTS) m.grows.inc({ result }, 0);
  for (const reason of CANNOT_GROW_REASONS) m.cannotGrow.set({ reason }, 0);
  let exported: { fs: { mountpoint: string; fstype: string }; lv: { vg: string; lv: string } | null } | null =
    null;

  function removeFsSeries(fs: { mountpoint: string; fstype: string }): void {
    for (const gauge of [m.size, m.used, m.free, m.inodes, m.inodesFree]) gauge.remove(fs);
  }

  function removeLvSeries(lv: { vg: string; lv: string }): void {
    m.lvSize.remove(lv);
    m.vgFree.remove({ vg: lv.vg });
  }

  return {
    applyStatus(status: DataFsStatus): void {
      m.lastLook.set(status.atMs / 1000);
      m.pendingRecoveries.set(
        status.pendingRecoveries.length + (status.underneath?.pendingRecoveries.length ?? 0),
      );
      if (status.underneath) {
        const { decision, growsTotal } = status.underneath;
        m.underneathUnused.set(decision.unusedBytes);
        m.underneathNeedsOperator.set(decision.action === 'manual' ? 1 : 0);
        // the watcher counts since start; the counter takes the difference
        for (const [key, total] of Object.entries(growsTotal)) {
          const [action = '', result = ''] = key.split('/');
          const delta = total - (countedUnderneath[key] ?? 0);
          if (delta > 0) m.underneathGrows.inc({ kind: action, result }, delta);
          countedUnderneath[key] = total;
        }
      }
      if (status.error) m.lookErrors.inc();
      if (status.outcome) m.grows.inc({ result: status.outcome.kind });
      const reason = status.decision?.action === 'cannot-grow' ? status.decision.reason : null;
      for (const candidate of CANNOT_GROW_REASONS)
        m.cannotGrow.set({ reason: candidate }, candidate === reason ? 1 : 0);
      const look = status.look;
      if (!look) return;
      const fs = { mountpoint: look.stack.mountPoint, fstype: look.stack.fsType };
      const lv = look.lv ? { vg: look.lv.vg, lv: look.lv.lv } : null;
      if (exported && (exported.fs.mountpoint !== fs.mountpoint || exported.fs.fstype !== fs.fstype))
        removeFsSeries(exported.fs);
      // an LV no longer seen (lvs failed, or the data root moved) has no series: never a stale size
      if (exported?.lv && (exported.lv.vg !== lv?.vg || exported.lv.lv !== lv?.lv))
        removeLvSeries(exported.lv);
      exported = { fs, lv };
      m.size.set(fs, look.usage.totalBytes);
      m.used.set(fs, look.usage.usedBytes);
      m.free.set(fs, look.usage.availableBytes);
      if (look.usage.totalInodes > 0) {
        m.inodes.set(fs, look.usage.totalInodes);
        m.inodesFree.set(fs, look.usage.freeInodes);
      } else {
        m.inodes.remove(fs);
        m.inodesFree.remove(fs);
      }
      if (look.lv && lv) {
        m.lvSize.set(lv, look.lv.sizeBytes);
        m.vgFree.set({ vg: lv.vg }, look.lv.vgFreeBytes);
      }
    },
  };
}
