/**
 * Grows the filesystem under the data root: `lvextend -L <bytes>b vg/lv`, re-read with `lvs`, then
 * the filesystem's online grow (./fs-grow.ts), then statfs to verify. Journaled write-ahead
 * (./journal.ts): the intent is durable before lvextend, each step after it, so an agent killed
 * between any two steps is finished by recover (./recover.ts) at the next start. Never shrinks
 * (lvextend with an absolute size only lengthens; a target at or below the live size is a no-op).
 * Serialized with every other docker-autogrow process by the per-device lock file.
 */
import type { CommandRunner } from '../../exec/runner.js';
import type { Logger } from '../../log/logger.js';
import { errorMessage } from '../../util/errors.js';
import { withDeviceLock } from '../devicemapper/lock.js';
import type { LvmName } from './block-stack.js';
import { fsGrowCommand, readBtrfsDevid } from './fs-grow.js';
import type { DataFsGrowIntent, DataFsJournal } from './journal.js';
import { lvextendArgs, readLogicalVolume } from './lvm.js';
import type { GrowableFilesystem } from '../../policy/data-filesystem.js';

export interface DataFsGrowDeps {
  runner: CommandRunner;
  journal: DataFsJournal;
  /** Where the lock files live (the agent's state directory). */
  stateDir: string;
  /** statfs total bytes of a mount point (f_blocks x f_bsize). */
  statfsTotalBytes(mountPoint: string): Promise<number>;
  logger: Logger;
  commandTimeoutMs: number;
  nowMs(): number;
}

export interface DataFsGrowRequest {
  lvm: LvmName;
  dmName: string;
  /** Kernel name of the dm device (dm-3), when known: btrfs may print /dev/dm-3 as the path. */
  kernelName: string | null;
  fsType: GrowableFilesystem;
  mountPoint: string;
  toLvBytes: number;
  why: string;
}

export interface DataFsGrowResult {
  fromLvBytes: number;
  toLvBytes: number;
  fsBeforeBytes: number;
  fsAfterBytes: number;
  /** The LV was already at or past the target (another process grew it). */
  noop: boolean;
  /** The commands run, for status and the dry-run listing. */
  commands: string[];
}

/** Where a failed grow left the system. */
export type DataFsFailureState = 'unchanged' | 'lv-grown-fs-pending' | 'unknown';

export class DataFsGrowError extends Error {
  override readonly name = 'DataFsGrowError';
  constructor(
    message: string,
    readonly step: string,
    readonly state: DataFsFailureState,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** LVM and the online grows of a large filesystem may take a while; never kill them early. */
const LVM_TIMEOUT_FLOOR_MS = 120_000;
const FS_GROW_TIMEOUT_FLOOR_MS = 300_000;

export function lockKey(lvm: LvmName): string {
  return `datafs-${lvm.vg}-${lvm.lv}`;
}

/** The commands of a grow, as argv lines (dry-run and status); btrfs's devid is read at grow time. */
export function plannedCommands(request: DataFsGrowRequest): string[] {
  const fsGrow =
    request.fsType === 'btrfs'
      ? ['btrfs', 'filesystem', 'resize', '<devid>:max', request.mountPoint]
      : (({ tool, args }) => [tool, ...args])(
          fsGrowCommand(request.fsType, `/dev/mapper/${request.dmName}`, request.mountPoint, null),
        );
  return [['lvextend', ...lvextendArgs(request.lvm, request.toLvBytes)].join(' '), fsGrow.join(' ')];
}

/**
 * The steps after the LV reached its new size: grow the filesystem, verify by statfs, record done.
 * Idempotent: recover() runs it again after a crash at any point.
 */
export async function completeFilesystemGrow(
  deps: DataFsGrowDeps,
  intent: DataFsGrowIntent,
): Promise<number> {
  const timeoutMs = Math.max(deps.commandTimeoutMs, FS_GROW_TIMEOUT_FLOOR_MS);
  let command;
  try {
    const devid =
      intent.fsType === 'btrfs'
        ? await readBtrfsDevid(deps.runner, intent.mountPoint, intent.dmName, null, deps.commandTimeoutMs)
        : null;
    command = fsGrowCommand(intent.fsType, intent.devicePath, intent.mountPoint, devid);
    await deps.runner.run({ tool: command.tool, args: command.args, timeoutMs });
  } catch (error) {
    const tool = command?.tool ?? 'btrfs filesystem show';
    deps.journal.record(intent.intentId, 'failed', `${tool}: ${errorMessage(error)}`);
    throw new DataFsGrowError(
      `${intent.vg}/${intent.lv} grew to ${intent.toLvBytes} bytes but ${tool} failed (the filesystem stays usable at its old size; a restart retries): ${errorMessage(error)}`,
      tool,
      'lv-grown-fs-pending',
      { cause: error },
    );
  }
  deps.journal.record(intent.intentId, 'fs-grown');
  const fsAfterBytes = await deps.statfsTotalBytes(intent.mountPoint);
  if (fsAfterBytes <= intent.fsBeforeBytes || fsAfterBytes > intent.toLvBytes) {
    const detail = `verify: filesystem ${fsAfterBytes} bytes (before ${intent.fsBeforeBytes}, LV ${intent.toLvBytes})`;
    deps.journal.record(intent.intentId, 'failed', detail);
    throw new DataFsGrowError(`${intent.vg}/${intent.lv}: ${detail}`, 'verify', 'lv-grown-fs-pending');
  }
  deps.journal.record(intent.intentId, 'done', `filesystem ${fsAfterBytes} bytes`);
  return fsAfterBytes;
}

let intentCounter = 0;

export async function growDataFilesystem(
  deps: DataFsGrowDeps,
  request: DataFsGrowRequest,
): Promise<DataFsGrowResult> {
  const commands = plannedCommands(request);
  return withDeviceLock(deps.stateDir, lockKey(request.lvm), async () => {
    const lvmTimeoutMs = Math.max(deps.commandTimeoutMs, LVM_TIMEOUT_FLOOR_MS);
    // under the lock: another process may have grown it since the look
    const before = await readLogicalVolume(deps.runner, request.lvm, lvmTimeoutMs);
    const fsBeforeBytes = await deps.statfsTotalBytes(request.mountPoint);
    if (before.sizeBytes >= request.toLvBytes) {
      return {
        fromLvBytes: before.sizeBytes,
        toLvBytes: before.sizeBytes,
        fsBeforeBytes,
        fsAfterBytes: fsBeforeBytes,
        noop: true,
        commands: [],
      };
    }
    const intent: DataFsGrowIntent = {
      intentId: `${deps.nowMs()}-${process.pid}-${(intentCounter += 1)}`,
      vg: request.lvm.vg,
      lv: request.lvm.lv,
      dmName: request.dmName,
      devicePath: `/dev/mapper/${request.dmName}`,
      fsType: request.fsType,
      mountPoint: request.mountPoint,
      fromLvBytes: before.sizeBytes,
      toLvBytes: request.toLvBytes,
      fsBeforeBytes,
      why: request.why,
    };
    deps.journal.begin(intent);
    deps.logger.info(
      {
        vg: intent.vg,
        lv: intent.lv,
        fromBytes: intent.fromLvBytes,
        toBytes: intent.toLvBytes,
        why: request.why,
      },
      'growing the data filesystem',
    );
    let lvextendError: unknown = null;
    try {
      await deps.runner.run({
        tool: 'lvextend',
        args: lvextendArgs(request.lvm, request.toLvBytes),
        timeoutMs: lvmTimeoutMs,
      });
    } catch (error) {
      lvextendError = error;
    }
    // Whatever lvextend returned, LVM's metadata decides (it commits or it does not).
    let after;
    try {
      after = await readLogicalVolume(deps.runner, request.lvm, lvmTimeoutMs);
    } catch (error) {
      deps.journal.record(intent.intentId, 'failed', `lvs after lvextend: ${errorMessage(error)}`);
      throw new DataFsGrowError(
        `${intent.vg}/${intent.lv}: cannot re-read the LV after lvextend: ${errorMessage(error)}`,
        'lvs',
        'unknown',
        { cause: error },
      );
    }
    if (after.sizeBytes < request.toLvBytes) {
      const why = lvextendError
        ? errorMessage(lvextendError)
        : `LV is ${after.sizeBytes} bytes after lvextend`;
      const unchanged = after.sizeBytes === before.sizeBytes;
      deps.journal.record(intent.intentId, unchanged ? 'rolled-back' : 'failed', `lvextend: ${why}`);
      throw new DataFsGrowError(
        `${intent.vg}/${intent.lv}: lvextend to ${request.toLvBytes} bytes failed${unchanged ? ' (nothing changed)' : ''}: ${why}`,
        'lvextend',
        unchanged ? 'unchanged' : 'unknown',
        { cause: lvextendError },
      );
    }
    if (lvextendError) {
      deps.logger.warn(
        { vg: intent.vg, lv: intent.lv, error: errorMessage(lvextendError) },
        'lvextend reported an error but the LV has its new size',
      );
    }
    deps.journal.record(intent.intentId, 'lv-extended');
    const fsAfterBytes = await completeFilesystemGrow(deps, intent);
    deps.logger.info(
      { vg: intent.vg, lv: intent.lv, lvBytes: after.sizeBytes, fsBytes: fsAfterBytes },
      'data filesystem grown',
    );
    return {
      fromLvBytes: before.sizeBytes,
      toLvBytes: after.sizeBytes,
      fsBeforeBytes,
      fsAfterBytes,
      noop: false,
      commands,
    };
  });
}
