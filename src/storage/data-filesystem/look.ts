/**
 * One look at the data filesystem: mountinfo + sysfs (./block-stack.ts), statfs, and, when the
 * filesystem is on an LVM LV, at most one `lvs` (./lvm.ts). The `lvs` is skipped while the
 * filesystem is below both thresholds and the previous LVM report is younger than
 * `lvmRefreshMs`: at rest a look starts no process most of the time.
 */
import { errorMessage } from '../../util/errors.js';
import type { CommandRunner } from '../../exec/runner.js';
import {
  bytesUsedRatio,
  inodesUsedRatio,
  type DataFilesystemObservation,
  type DataFilesystemSettings,
} from '../../policy/data-filesystem.js';
import { statfsUsage, type FilesystemUsage } from '../filesystem.js';
import {
  readBlockStack,
  type BlockStack,
  type BlockStackPaths,
  DEFAULT_BLOCK_STACK_PATHS,
} from './block-stack.js';
import { readLogicalVolume, type LogicalVolumeReport } from './lvm.js';

export interface DataFsLook {
  atMs: number;
  stack: BlockStack;
  usage: FilesystemUsage;
  /** The LVM report used (fresh or from an earlier look), null when not on LVM or unreadable. */
  lv: LogicalVolumeReport | null;
  lvReadAtMs: number | null;
  /** Why `lv` is null although the stack is on LVM (lvs failed). */
  lvError: string | null;
  observation: DataFilesystemObservation;
}

export interface DataFsLookDeps {
  runner: CommandRunner;
  commandTimeoutMs: number;
  blockStackPaths?: BlockStackPaths;
  statfs?: (dir: string) => Promise<FilesystemUsage>;
  lvmRefreshMs: number;
}

export function observationOf(
  stack: BlockStack,
  usage: FilesystemUsage,
  lv: LogicalVolumeReport | null,
  lvError: string | null,
): DataFilesystemObservation {
  return {
    fsType: stack.fsType,
    fsTotalBytes: usage.totalBytes,
    fsAvailableBytes: usage.availableBytes,
    fsTotalInodes: usage.totalInodes,
    fsFreeInodes: usage.freeInodes,
    readOnly: stack.readOnly,
    lvm: lv
      ? {
          lvSizeBytes: lv.sizeBytes,
          segtype: lv.segtype,
          vgFreeBytes: lv.vgFreeBytes,
          vgExtentBytes: lv.vgExtentBytes,
        }
      : null,
    notLvmReason: stack.notLvmReason ?? (lvError ? `lvs failed: ${lvError}` : undefined),
  };
}

export async function lookAtDataFilesystem(
  deps: DataFsLookDeps,
  dataRoot: string,
  settings: DataFilesystemSettings,
  previous: DataFsLook | null,
  nowMs: number,
): Promise<DataFsLook> {
  const stack = await readBlockStack(dataRoot, deps.blockStackPaths ?? DEFAULT_BLOCK_STACK_PATHS);
  const usage = await (deps.statfs ?? statfsUsage)(stack.mountPoint);
  let lv: LogicalVolumeReport | null = null;
  let lvReadAtMs: number | null = null;
  let lvError: string | null = null;
  if (stack.lvm) {
    const reuse =
      previous?.lv &&
      previous.lvReadAtMs !== null &&
      previous.lv.vg === stack.lvm.vg &&
      previous.lv.lv === stack.lvm.lv &&
      nowMs - previous.lvReadAtMs < deps.lvmRefreshMs;
    const bare = observationOf(stack, usage, null, null);
    const high =
      bytesUsedRatio(bare) >= settings.threshold || (inodesUsedRatio(bare) ?? 0) >= settings.inodeThreshold;
    if (reuse && !high && previous.lv) {
      lv = previous.lv;
      lvReadAtMs = previous.lvReadAtMs;
    } else {
      try {
        lv = await readLogicalVolume(deps.runner, stack.lvm, deps.commandTimeoutMs);
        lvReadAtMs = nowMs;
      } catch (error) {
        lvError = errorMessage(error);
      }
    }
  }
  return {
    atMs: nowMs,
    stack,
    usage,
    lv,
    lvReadAtMs,
    lvError,
    observation: observationOf(stack, usage, lv, lvError),
  };
}
