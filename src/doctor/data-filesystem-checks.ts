/**
 * `doctor` checks of the filesystem under Docker's data root (when `dataFilesystem.enabled`): is it
 * on an LVM LV the agent can extend, are the tools there, can it grow now, is a grow left
 * unfinished. {@link dataFilesystemChecks} is pure over one dry-run look of the watcher.
 */
import type { Config } from '../config/schema.js';
import type { DoctorCheck } from '../contracts/doctor-check.js';
import type { DockerApi } from '../docker/inventory-port.js';
import type { CommandRunner, ToolName } from '../exec/runner.js';
import { silentLogger } from '../log/logger.js';
import type { CannotGrowReason } from '../policy/data-filesystem.js';
import {
  DataFilesystemWatcher,
  dataFilesystemSettings,
  type DataFsStatus,
} from '../storage/data-filesystem/watcher.js';
import { errorMessage } from '../util/errors.js';
import { systemClock } from '../util/clock.js';
import { formatBytes } from '../util/units.js';

const FS_GROW_TOOL: Record<string, ToolName> = { ext4: 'resize2fs', xfs: 'xfs_growfs', btrfs: 'btrfs' };

export const CANNOT_GROW_FIXES: Record<CannotGrowReason, string> = {
  'not-lvm':
    "put Docker's data root on an LVM logical volume (pvcreate, vgcreate, lvcreate, mkfs, move the data root), or grow the disk under it: the agent grows a filesystem that sits on a whole disk (or an already grown partition) into the space the disk gained",
  'unsupported-filesystem': 'use ext4, XFS or btrfs for the data root (the filesystems that grow online)',
  'unsupported-lv-type':
    'the LV is thin or RAID: extend it by hand (lvextend), or use a linear LV for the data root',
  'read-only': 'the data filesystem is mounted read-only: check dmesg for errors, repair it, remount rw',
  'max-size-reached':
    'raise dataFilesystem.maxSize, or free space (docker builder prune, docker image prune)',
  'vg-exhausted':
    'add a disk to the volume group (pvcreate /dev/sdX && vgextend <vg> /dev/sdX) or pvresize a grown disk; or lower dataFilesystem.vgReserve',
  'recovery-pending':
    'restart the agent: it finishes the interrupted grow at start (its log says what blocks it)',
};

export function dataFilesystemChecks(
  status: DataFsStatus,
  binaryPath: (tool: ToolName) => string | null,
): DoctorCheck[] {
  const checks: DoctorCheck[] = [];
  const look = status.look;
  if (!look) {
    checks.push({
      name: 'data filesystem readable',
      ok: false,
      severity: 'error',
      detail: `cannot look at ${status.dataRoot}: ${status.error ?? 'unknown error'}`,
      fix: 'run doctor as root on the Docker host (it reads /proc/self/mountinfo, /sys/dev/block and runs lvs)',
    });
    return checks;
  }
  const { stack, usage, lv } = look;
  const where = `${stack.mountPoint} (${stack.fsType} from ${stack.source})`;
  checks.push(
    lv
      ? {
          name: 'data filesystem on LVM',
          ok: true,
          severity: 'warn',
          detail: `${where} is LV ${lv.vg}/${lv.lv} (${formatBytes(lv.sizeBytes)}, ${lv.segtype}); VG ${lv.vg} has ${formatBytes(lv.vgFreeBytes)} free`,
        }
      : {
          name: 'data filesystem on LVM',
          ok: false,
          severity: 'warn',
          detail: `${where}: ${look.observation.notLvmReason ?? 'not on LVM'}`,
          fix: CANNOT_GROW_FIXES['not-lvm'],
        },
  );
  if (lv) {
    const tools: ToolName[] = [
      'lvs',
      'lvextend',
      ...(FS_GROW_TOOL[stack.fsType] ? [FS_GROW_TOOL[stack.fsType]!] : []),
    ];
    const missing = tools.filter((tool) => binaryPath(tool) === null);
    checks.push({
      name: 'data filesystem grow tools',
      ok: missing.length === 0,
      severity: 'error',
      detail: missing.length === 0 ? `${tools.join(', ')} found` : `missing: ${missing.join(', ')}`,
      ...(missing.length > 0
        ? {
            fix: `install lvm2 and the tools of ${stack.fsType} (e2fsprogs, xfsprogs, btrfs-progs), or set binaries.<tool>`,
          }
        : {}),
    });
  }
  const decision = status.decision;
  const used = usage.totalBytes > 0 ? usage.usedBytes / usage.totalBytes : 0;
  const usageText = `${(used * 100).toFixed(1)}% of ${formatBytes(usage.totalBytes)} used`;
  if (decision?.action === 'cannot-grow') {
    checks.push({
      name: 'data filesystem can grow',
      ok: false,
      severity: 'warn',
      detail: `${usageText}: ${decision.why} (${decision.reason})`,
      fix: CANNOT_GROW_FIXES[decision.reason],
    });
  } else {
    checks.push({
      name: 'data filesystem can grow',
      ok: true,
      severity: 'warn',
      detail: `${usageText}; ${decision?.why ?? 'no decision'}`,
    });
  }
  const underneath = status.underneath;
  if (underneath) checks.push(underneathCheck(underneath, binaryPath));
  if (status.pendingRecoveries.length > 0) {
    checks.push({
      name: 'data filesystem grows finished',
      ok: false,
      severity: 'warn',
      detail: status.pendingRecoveries
        .map((report) => `${report.vg}/${report.lv}: ${report.detail}`)
        .join('; '),
      fix: CANNOT_GROW_FIXES['recovery-pending'],
    });
  }
  return checks;
}

/** A device grown underneath: what the agent will do about it, or what the operator must. */
function underneathCheck(
  underneath: NonNullable<DataFsStatus['underneath']>,
  binaryPath: (tool: ToolName) => string | null,
): DoctorCheck {
  const name = 'data filesystem device grown underneath';
  const { decision } = underneath;
  if (underneath.probeError)
    return {
      name,
      ok: false,
      severity: 'warn',
      detail: `cannot compare the device with the filesystem or PV: ${underneath.probeError}`,
      fix: 'run doctor as root (it reads the ext4 superblock, runs xfs_growfs -n, btrfs filesystem show or pvs)',
    };
  if (decision.action === 'manual')
    return { name, ok: false, severity: 'warn', detail: decision.why, fix: decision.fix };
  if (decision.action === 'pvresize' && binaryPath('pvresize') === null)
    return {
      name,
      ok: false,
      severity: 'warn',
      detail: `${decision.why}, but pvresize is not installed`,
      fix: 'install lvm2 (pvresize), or set binaries.pvresize',
    };
  const pending = underneath.pendingRecoveries;
  if (pending.length > 0)
    return {
      name,
      ok: false,
      severity: 'warn',
      detail: pending.map((report) => `${report.subject}: ${report.detail}`).join('; '),
      fix: CANNOT_GROW_FIXES['recovery-pending'],
    };
  return {
    name,
    ok: true,
    severity: 'warn',
    detail:
      decision.action === 'none' ? decision.why : `${decision.why} (the agent does this at its next look)`,
  };
}

/** One dry-run look of the data-filesystem watcher, turned into checks. */
export async function runDataFilesystemChecks(options: {
  config: Config;
  docker: Pick<DockerApi, 'info'>;
  runner: CommandRunner;
  binaryPath: (tool: ToolName) => string | null;
  stateDir: string;
}): Promise<DoctorCheck[]> {
  let dataRoot: string;
  try {
    dataRoot = (await options.docker.info()).dockerRootDir;
  } catch (error) {
    return [
      {
        name: 'data filesystem readable',
        ok: false,
        severity: 'error',
        detail: `Docker's data root is unknown: ${errorMessage(error)}`,
        fix: 'make Docker reachable (see the Docker checks above)',
      },
    ];
  }
  const watcher = new DataFilesystemWatcher({
    dataRoot,
    settings: dataFilesystemSettings(options.config),
    intervalMs: options.config.dataFilesystem.interval,
    dryRun: true,
    runner: options.runner,
    stateDir: options.stateDir,
    commandTimeoutMs: options.config.commandTimeout,
    logger: silentLogger(),
    clock: systemClock,
  });
  return dataFilesystemChecks(await watcher.runOnce(), options.binaryPath);
}
