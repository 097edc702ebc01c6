/**
 * The devicemapper backend: Docker on a thin pool (direct-lvm or loop-lvm).
 *
 * - observe: three dmsetup commands per pass whatever the container count (`table`, `status
 *   --noflush`, `info -c`), statfs per container (no process) and one read of /proc/self/mountinfo.
 * - grow: the manual procedure made safe (lock, read live table, journal, load, resume, re-read,
 *   grow the filesystem, verify with statfs, patch Docker's metadata file, remember the grown size).
 * - persistence: a stopped grown container gets its device re-created at the grown size, because
 *   dockerd re-activates it at the size it cached in memory (docs/devicemapper.md).
 * - recover: replays the write-ahead journal of an agent killed mid-grow.
 * - growPool: lvextend (direct-lvm) or sparse file + losetup -c + pool reload (loop-lvm).
 */
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { statfs as statfsCallback } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { isCommandError, resolveBinary, type CommandRunner, type ToolName } from '../../exec/runner.js';
import type { ContainerInfo } from '../../docker/model.js';
import type { Logger } from '../../log/logger.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import type { DoctorCheck } from '../../contracts/doctor-check.js';
import type {
  BackendDeps,
  ContainerUsage,
  GrowRequest,
  GrowResult,
  GrowStep,
  LiveUsage,
  Observation,
  ObserveOptions,
  PoolUsage,
  StorageBackend,
} from '../types.js';
import {
  GrowJournal,
  GrownDeviceStore,
  type DeviceGrowIntent,
  type GrownDevice,
  type GrowStepName,
  type PendingIntent,
  type PoolGrowIntent,
} from './journal.js';
import { withDeviceLock } from './lock.js';
import { DM_HOLD_FIX, growPersistenceProblem, pendingPersistenceAdvice } from '../../policy/persistence.js';
import {
  devicePersistence,
  growPersistenceFacts,
  holdDeviceName,
  holdTable,
  kernelHolds,
  type DevicePersistence,
  type KernelHold,
} from './persistence.js';
import {
  DM_INFO_FIELDS,
  DM_INFO_SEPARATOR,
  POOL_METADATA_BLOCK_BYTES,
  SECTOR_BYTES,
  formatThinPoolTable,
  formatThinTable,
  lvmDmName,
  majorMinor,
  parseDmInfoColumns,
  parseDmsetupAllDevices,
  parseDockerDeviceMetadata,
  parseDockerDmDriverStatus,
  parseGraphDriverData,
  parseLvmConfigValue,
  parseLvsReport,
  parseMountinfo,
  parseThinPoolStatus,
  parseThinPoolTable,
  parseThinStatus,
  parseThinTable,
  parseVgsReport,
  patchDockerDeviceMetadataSize,
  type DmDeviceInfo,
  type DmSegment,
  type DockerDmDriverStatus,
  type DockerThinDevice,
  type MountEntry,
  type ThinPoolStatus,
  type ThinPoolTable,
  type ThinTable,
} from './parse.js';
import { errorMessage } from '../../util/errors.js';
import { StorageGrowError } from '../grow-error.js';

export * from './parse.js';
export * from './persistence.js';

/** What statfs reports, in the units the backend needs. */
export interface FsStats {
  blockSizeBytes: number;
  totalBlocks: number;
  freeBlocks: number;
  availableBlocks: number;
  totalInodes: number;
  freeInodes: number;
}

/** Seams for tests and for hosts with an unusual layout; production uses the defaults. */
export interface DevicemapperOptions {
  /** Docker's data root (default: docker info DockerRootDir). */
  dataRoot?: string;
  mountinfoPath?: string;
  /** /sys/block, read for loop device sizes and backing files. */
  sysBlockDir?: string;
  statfs?: (mountPath: string) => Promise<FsStats>;
  fileSizeBytes?: (file: string) => number;
  sleep?: (ms: number) => Promise<void>;
  nowMs?: () => number;
  /** How long onContainerStopped waits for Docker to remove the old device (default 3 s). */
  recreateWaitMs?: number;
  /**
   * Keep grown devices open with a kernel hold (persistence.ts) until dockerd caches the grown
   * size (default: when docker info says deferred removal and deferred deletion are enabled).
   * Docker then only schedules a deferred removal at stop, and its next start cancels it and mounts
   * the existing, grown device: this closes the `docker restart` race, and because the kernel owns
   * the hold it also covers stops while no agent process runs.
   */
  holdGrownDevices?: boolean;
  /** How often a pass asks dockerd again whether it caches a grown size yet (default 10 s). */
  persistenceRecheckMs?: number;
  /** Binary lookup for doctor (default: the runner's search). */
  binaryPresent?: (tool: ToolName) => boolean;
}

/** A grow step failed. `deviceState` says what the device was left as (src/storage/grow-error.ts). */
export class DevicemapperGrowError extends StorageGrowError {
  override readonly name = 'DevicemapperGrowError';
}

export interface DevicemapperBackend extends StorageBackend {
  growPool(
    toBytes: number,
    dryRun: boolean,
  ): Promise<{ fromBytes: number; toBytes: number; steps: readonly GrowStep[] }>;
  growPoolMetadata(
    toBytes: number,
    dryRun: boolean,
  ): Promise<{ fromBytes: number; toBytes: number; steps: readonly GrowStep[] }>;
  recover(containers: readonly ContainerInfo[]): Promise<void>;
  onContainerStopped(container: ContainerInfo): Promise<void>;
  /** Removes every kernel hold (tests; an operator's `dmsetup remove autogrow-hold-*` does the same). */
  releaseHolds(): Promise<void>;
  /** Devices held by a kernel hold now, by mount hash. */
  heldDevices(): Promise<string[]>;
  /**
   * Grown devices that dockerd does not cache at their grown size yet, as the last pass (or
   * recover) left them: what status, metrics and doctor show.
   */
  pendingPersistence(): readonly PendingPersistence[];
  /** Failed grow steps since start, by step name (`dmsetup load`, `xfs_growfs`, ...). */
  failureCounts(): ReadonlyMap<string, number>;
}

/** A grown device that is not persistent yet (see persistence.ts). */
export interface PendingPersistence {
  containerId: string;
  hash: string;
  deviceName: string;
  grownBytes: number;
  dockerSizeBytes: number | null;
  state: Exclude<DevicePersistence, 'persistent'>;
  running: boolean;
}

interface DmSnapshot {
  tables: Map<string, DmSegment[]>;
  infos: Map<string, DmDeviceInfo>;
  statuses: Map<string, DmSegment[]> | null;
}

interface PoolContext {
  name: string;
  kind: PoolUsage['kind'];
  info: DmDeviceInfo;
  majorMinor: string;
  lengthSectors: number;
  table: ThinPoolTable;
  status: ThinPoolStatus | null;
}

interface LiveThin {
  lengthSectors: number;
  table: ThinTable;
  line: string;
  info: DmDeviceInfo;
}

const INFO_ARGS = ['info', '-c', '--noheadings', '--separator', DM_INFO_SEPARATOR, '-o', DM_INFO_FIELDS];
/** Thin device lengths are kept a multiple of 4 KiB (8 sectors): filesystems grow in whole blocks. */
const DEVICE_ALIGN_SECTORS = 8;
/** Kernel-side calls that must never be signalled (a kill mid-resume can drop the new table). */
const UNKILLABLE = { killOnTimeout: false } as const;

function segmentLine(segment: DmSegment): string {
  return [segment.startSector, segment.lengthSectors, segment.target, ...segment.args].join(' ');
}

/** LVM reports as JSON with sizes in bytes and no unit suffix: what parseLvsReport/parseVgsReport read. */
const LVM_JSON_BYTES = ['--reportformat', 'json', '--units', 'b', '--nosuffix'] as const;

/**
 * `lvs` argv of a direct-lvm pool grow: every LV with the fields the backend reads. Exported so the
 * tests script exactly the command the backend runs instead of a copy of it.
 */
export function lvsPoolArgs(): string[] {
  return [...LVM_JSON_BYTES, '-o', 'vg_name,lv_name,lv_size,lv_metadata_size,lv_attr'];
}

/** `vgs` argv for the free space and extent size of one volume group. */
export function vgsFreeArgs(vgName: string): string[] {
  return [...LVM_JSON_BYTES, '-o', 'vg_name,vg_free,vg_extent_size', vgName];
}

/**
 * Mounts by mount point. Of several mounts on one point the last wins: mountinfo lists in mount
 * order and the last one hides the others.
 */
function mountsByPoint(mounts: readonly MountEntry[]): Map<string, MountEntry> {
  const byPoint = new Map<string, MountEntry>();
  for (const mount of mounts) byPoint.set(mount.mountPoint, mount);
  return byPoint;
}

export function bytesToAlignedSectors(bytes: number): number {
  const sectors = Math.ceil(bytes / SECTOR_BYTES);
  return Math.ceil(sectors / DEVICE_ALIGN_SECTORS) * DEVICE_ALIGN_SECTORS;
}

async function defaultStatfs(mountPath: string): Promise<FsStats> {
  const stats = await promisify(statfsCallback)(mountPath);
  return {
    blockSizeBytes: stats.bsize,
    totalBlocks: stats.blocks,
    freeBlocks: stats.bfree,
    availableBlocks: stats.bavail,
    totalInodes: stats.files,
    freeInodes: stats.ffree,
  };
}

export function createDevicemapperBackend(
  deps: BackendDeps,
  options: DevicemapperOptions = {},
): DevicemapperBackend {
  const runner: CommandRunner = deps.runner;
  const logger: Logger = deps.logger;
  const dataRoot = options.dataRoot ?? deps.dockerInfo.dockerRootDir;
  const mountinfoPath = options.mountinfoPath ?? '/proc/self/mountinfo';
  const sysBlockDir = options.sysBlockDir ?? '/sys/block';
  const statfs = options.statfs ?? defaultStatfs;
  const fileSizeBytes = options.fileSizeBytes ?? ((file: string) => statSync(file).size);
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const nowMs = options.nowMs ?? Date.now;
  const recreateWaitMs = options.recreateWaitMs ?? 3000;
  const binaryPresent = options.binaryPresent ?? ((tool: ToolName) => resolveBinary(tool) !== null);
  mkdirSync(deps.stateDir, { recursive: true, mode: 0o700 });
  const journal = new GrowJournal(path.join(deps.stateDir, 'devicemapper-intents.jsonl'), nowMs);
  const grown = GrownDeviceStore.inStateDir(deps.stateDir);
  const failures = new Map<string, number>();
  const dockerDm = parseDockerDmDriverStatus(deps.dockerInfo.driverStatus);
  const holdGrownDevices =
    options.holdGrownDevices ??
    (dockerDm.deferredRemovalEnabled === true && dockerDm.deferredDeletionEnabled === true);
  const persistenceRecheckMs = options.persistenceRecheckMs ?? 10_000;
  /** When each grown record was last checked against dockerd (ms), so a pass asks at most every recheck. */
  const lastPersistenceCheckMs = new Map<string, number>();
  let pending: PendingPersistence[] = [];

  /**
   * Puts a kernel hold on a grown device (idempotent: a hold already there is kept). `state` is a
   * snapshot taken under the device lock; null: take one.
   */
  async function hold(hash: string, deviceName: string, state: DmSnapshot | null = null): Promise<boolean> {
    if (!holdGrownDevices) return false;
    const snap = state ?? (await snapshot(false));
    const info = snap.infos.get(deviceName);
    if (!info) return false;
    const existing = kernelHolds(snap.tables).get(hash);
    if (existing) {
      if (existing.heldMajorMinor === majorMinor(info)) return true;
      // A hold on another device than the container's: never ours to keep.
      await removeHold(existing);
    }
    try {
      await dmsetup(['create', holdDeviceName(hash), '--readonly', '--table', holdTable(majorMinor(info))]);
      logger.info({ device: deviceName, hold: holdDeviceName(hash) }, 'kernel hold placed on a grown device');
      return true;
    } catch (error) {
      countFailure('hold');
      logger.warn({ device: deviceName, error: errorMessage(error) }, 'could not hold a grown device');
      return false;
    }
  }

  async function removeHold(existing: KernelHold): Promise<void> {
    await dmsetup(['remove', existing.name]);
    logger.info({ hold: existing.name }, 'kernel hold released');
  }

  /** Releases the hold on `hash` if there is one (`state`: a snapshot; null: take one). */
  async function release(hash: string, state: DmSnapshot | null = null): Promise<void> {
    const snap = state ?? (await snapshot(false));
    const existing = kernelHolds(snap.tables).get(hash);
    if (existing) await removeHold(existing);
  }

  /** Docker deleted the container (metadata file gone or marked deleted): stop holding its device. */
  function metadataGoneOrDeleted(hash: string): boolean {
    try {
      const parsed = JSON.parse(readFileSync(metadataPathOf(hash), 'utf8')) as { deleted?: unknown };
      return parsed.deleted === true;
    } catch {
      return true;
    }
  }
  let intentCounter = 0;

  const driverStatus = (): DockerDmDriverStatus => parseDockerDmDriverStatus(deps.dockerInfo.driverStatus);
  const mountPathOf = (hash: string) => path.join(dataRoot, 'devicemapper', 'mnt', hash);
  const metadataPathOf = (hash: string) => path.join(dataRoot, 'devicemapper', 'metadata', hash);

  function countFailure(step: string): void {
    failures.set(step, (failures.get(step) ?? 0) + 1);
  }

  async function dmsetup(args: readonly string[], unkillable = false): Promise<string> {
    const result = await runner.run({
      tool: 'dmsetup',
      args,
      timeoutMs: deps.commandTimeoutMs,
      ...(unkillable ? UNKILLABLE : {}),
    });
    if (result.overranTimeoutMs !== undefined) {
      logger.warn(
        { args, overranTimeoutMs: result.overranTimeoutMs },
        'dmsetup overran its timeout (not signalled)',
      );
    }
    return result.stdout;
  }

  /** Two or three commands, whatever the number of devices. */
  async function snapshot(withStatus: boolean): Promise<DmSnapshot> {
    const tables = parseDmsetupAllDevices(await dmsetup(['table']));
    const statuses = withStatus ? parseDmsetupAllDevices(await dmsetup(['status', '--noflush'])) : null;
    const infos = parseDmInfoColumns(await dmsetup(INFO_ARGS));
    return { tables, infos, statuses };
  }

  function poolContext(state: DmSnapshot): PoolContext {
    const status = driverStatus();
    const name = status.poolName;
    const info = state.infos.get(name);
    const segments = state.tables.get(name);
    if (!info || !segments)
      throw new Error(`thin pool ${name} (docker info Pool Name) is not an active dm device`);
    if (segments.length !== 1 || segments[0]?.target !== 'thin-pool' || segments[0].startSector !== 0) {
      throw new Error(`device ${name} is not a single thin-pool target`);
    }
    const kind: PoolUsage['kind'] = info.uuid.startsWith('LVM-')
      ? 'thin-pool-lvm'
      : status.dataLoopFile
        ? 'thin-pool-loop'
        : 'thin-pool';
    const statusSegments = state.statuses?.get(name);
    return {
      name,
      kind,
      info,
      majorMinor: majorMinor(info),
      lengthSectors: segments[0].lengthSectors,
      table: parseThinPoolTable(segments[0]),
      status: statusSegments?.[0] ? parseThinPoolStatus(statusSegments[0]) : null,
    };
  }

  /** The container's live device, checked: exactly one thin target at 0 on our pool, with Docker's device id. */
  function liveThin(state: DmSnapshot, device: DockerThinDevice, pool: PoolContext): LiveThin | null {
    const info = state.infos.get(device.deviceName);
    const segments = state.tables.get(device.deviceName);
    if (!info || !segments) return null;
    const only = segments[0];
    if (segments.length !== 1 || !only || only.target !== 'thin' || only.startSector !== 0) {
      throw new Error(
        `${device.deviceName}: expected exactly one thin target, found ${segments.map((s) => s.target).join(',')}`,
      );
    }
    const table = parseThinTable(only);
    if (table.poolDevice !== pool.majorMinor) {
      throw new Error(
        `${device.deviceName}: thin target is on ${table.poolDevice}, not on pool ${pool.name} (${pool.majorMinor})`,
      );
    }
    if (table.deviceId !== device.deviceId) {
      throw new Error(
        `${device.deviceName}: live device id ${table.deviceId} differs from Docker's DeviceId ${device.deviceId}`,
      );
    }
    return { lengthSectors: only.lengthSectors, table, line: segmentLine(only), info };
  }

  /**
   * Every mount by its mount point, read once per pass: each container's lookup is then O(1)
   * instead of a scan of the whole table (quadratic with a mount per container).
   */
  function readMounts(): Map<string, MountEntry> {
    return mountsByPoint(parseMountinfo(readFileSync(mountinfoPath, 'utf8')));
  }

  function mountOf(
    mounts: ReadonlyMap<string, MountEntry>,
    mountPath: string,
    info: DmDeviceInfo,
  ): MountEntry | null {
    const entry = mounts.get(mountPath);
    if (!entry) return null;
    if (entry.majorMinor !== majorMinor(info)) {
      throw new Error(
        `${mountPath} is mounted from ${entry.majorMinor}, not from the container's device ${majorMinor(info)}`,
      );
    }
    return entry;
  }

  function poolUsage(pool: PoolContext, committedBytes: number): PoolUsage {
    const status = pool.status;
    const blockBytes = pool.table.dataBlockSizeSectors * SECTOR_BYTES;
    return {
      name: pool.name,
      kind: pool.kind,
      dataUsedBytes: (status?.dataUsedBlocks ?? 0) * blockBytes,
      dataTotalBytes:
        status && status.dataTotalBlocks !== null
          ? status.dataTotalBlocks * blockBytes
          : pool.lengthSectors * SECTOR_BYTES,
      metadataUsedBytes:
        status && status.metadataUsedBlocks !== null
          ? status.metadataUsedBlocks * POOL_METADATA_BLOCK_BYTES
          : null,
      metadataTotalBytes:
        status && status.metadataTotalBlocks !== null
          ? status.metadataTotalBlocks * POOL_METADATA_BLOCK_BYTES
          : null,
      mode: status?.mode ?? 'fail',
      needsCheck: status?.needsCheck ?? false,
      committedBytes,
    };
  }

  /**
   * The fill guard's fast path: per container the last pass saw, its mount path, the device size
   * and the filesystem size then. A look is one statfs (no process); used = size - available, as
   * in observe(). A statfs showing another filesystem size means the container's filesystem is
   * not what is mounted there now (unmounted: the parent's), or it grew: left to the next pass.
   * A whole-host pass replaces the map; a partial one updates its containers; a grow drops its
   * container until the next pass.
   */
  let liveTargets = new Map<string, { mountPath: string; sizeBytes: number; fsSizeBytes: number }>();

  async function readLiveUsage(containerIds: readonly string[]): Promise<ReadonlyMap<string, LiveUsage>> {
    const result = new Map<string, LiveUsage>();
    for (const containerId of containerIds) {
      const target = liveTargets.get(containerId);
      if (!target) continue;
      try {
        const fs = await statfs(target.mountPath);
        if (fs.totalBlocks * fs.blockSizeBytes !== target.fsSizeBytes) continue;
        const availableBytes = fs.availableBlocks * fs.blockSizeBytes;
        result.set(containerId, {
          usedBytes: Math.max(0, target.sizeBytes - availableBytes),
          sizeBytes: target.sizeBytes,
        });
      } catch {
        // unmounted between two looks (a stop): the next pass sees it
      }
    }
    return result;
  }

  async function observe(
    containers: readonly ContainerInfo[],
    takenAtMs: number,
    options: ObserveOptions = {},
  ): Promise<Observation> {
    const seenTargets = new Map<string, { mountPath: string; sizeBytes: number; fsSizeBytes: number }>();
    const usages = new Map<string, ContainerUsage>();
    const errors = new Map<string, string>();
    const state = await snapshot(true);
    let pool: PoolContext;
    try {
      pool = poolContext(state);
    } catch (error) {
      for (const container of containers)
        if (container.running) errors.set(container.id, errorMessage(error));
      return { takenAtMs, driver: 'devicemapper', pool: null, containers: usages, errors };
    }
    let committedBytes = 0;
    for (const [, segments] of state.tables) {
      for (const segment of segments) {
        if (segment.target === 'thin' && segment.args[0] === pool.majorMinor)
          committedBytes += segment.lengthSectors * SECTOR_BYTES;
      }
    }
    const mounts = readMounts();
    // Take over and settle every grow not persistent yet, whoever made it (a pass for one
    // container leaves that to the whole-host passes).
    if (!options.partial)
      await reconcilePersistence(state, pool, containers, options.dryRun === true ? 'assess' : 'pass');
    const pendingByContainer = new Map(pending.map((entry) => [entry.containerId, entry]));
    for (const container of containers) {
      if (!container.running || container.storageDriver !== 'devicemapper') continue;
      try {
        const device = parseGraphDriverData(container.graphDriverData);
        const live = liveThin(state, device, pool);
        if (!live) throw new Error(`${device.deviceName} is not an active dm device`);
        const mountPath = mountPathOf(device.hash);
        const mount = mountOf(mounts, mountPath, live.info);
        if (!mount) throw new Error(`${mountPath} is not mounted`);
        const fs = await statfs(mountPath);
        const sizeBytes = live.lengthSectors * SECTOR_BYTES;
        const fsSizeBytes = fs.totalBlocks * fs.blockSizeBytes;
        const fsAvailableBytes = fs.availableBlocks * fs.blockSizeBytes;
        const thinStatus = state.statuses?.get(device.deviceName)?.[0];
        const mapped = thinStatus ? parseThinStatus(thinStatus) : null;
        seenTargets.set(container.id, { mountPath, sizeBytes, fsSizeBytes });
        usages.set(container.id, {
          containerId: container.id,
          driver: 'devicemapper',
          sizeBytes,
          // What the container can no longer use: the device minus what statfs says is available.
          // Filesystem overhead (the XFS log, reserved blocks) counts as used, so 90% full in `df`
          // inside the container is at least 90% here and the policy triggers as the user expects.
          usedBytes: Math.max(0, sizeBytes - fsAvailableBytes),
          inodesUsed: fs.totalInodes - fs.freeInodes,
          inodesTotal: fs.totalInodes,
          fsType: mount.fsType,
          detail: {
            deviceName: device.deviceName,
            deviceId: device.deviceId,
            fsSizeBytes,
            fsUsedBytes: (fs.totalBlocks - fs.freeBlocks) * fs.blockSizeBytes,
            fsAvailableBytes,
            mappedBytes: (mapped?.mappedSectors ?? 0) * SECTOR_BYTES,
            dockerSizeBytes: device.dockerSizeBytes ?? -1,
            // Present only for a grown device dockerd does not cache at its grown size yet.
            ...(pendingByContainer.has(container.id)
              ? { persistence: pendingByContainer.get(container.id)!.state }
              : {}),
          },
        });
      } catch (error) {
        errors.set(container.id, errorMessage(error));
      }
    }
    if (options.partial) {
      for (const container of containers) liveTargets.delete(container.id);
      for (const [id, target] of seenTargets) liveTargets.set(id, target);
    } else {
      liveTargets = seenTargets;
    }
    return {
      takenAtMs,
      driver: 'devicemapper',
      pool: poolUsage(pool, committedBytes),
      containers: usages,
      errors,
    };
  }

  function fsGrowCommand(
    fsType: string,
    mountPath: string,
    deviceName: string,
  ): { tool: ToolName; args: string[] } {
    if (fsType === 'xfs') return { tool: 'xfs_growfs', args: ['-d', mountPath] };
    if (fsType === 'ext4') return { tool: 'resize2fs', args: [`/dev/mapper/${deviceName}`] };
    throw new Error(`cannot grow a ${fsType} filesystem online (xfs and ext4 only)`);
  }

  function deviceSteps(intent: DeviceGrowIntent): GrowStep[] {
    const fsGrow = fsGrowCommand(intent.fsType, intent.mountPath, intent.deviceName);
    return [
      { name: 'dmsetup load', argv: ['dmsetup', 'load', intent.deviceName, '--table', intent.newTable] },
      { name: 'dmsetup resume', argv: ['dmsetup', 'resume', intent.deviceName] },
      { name: fsGrow.tool, argv: [fsGrow.tool, ...fsGrow.args] },
      { name: 'verify statfs', argv: ['statfs', intent.mountPath] },
      {
        name: 'patch docker metadata',
        argv: ['write', metadataPathOf(intent.hash), `size=${intent.toSectors * SECTOR_BYTES}`],
      },
    ];
  }

  /** Re-reads a device after acting (two commands). */
  async function rereadDevice(
    deviceName: string,
  ): Promise<{ info: DmDeviceInfo | undefined; line: string | null }> {
    const state = await snapshot(false);
    const segments = state.tables.get(deviceName);
    return {
      info: state.infos.get(deviceName),
      line: segments && segments.length === 1 && segments[0] ? segmentLine(segments[0]) : null,
    };
  }

  /** Puts a device back the way it was after a failed load or resume: never leaves it suspended. */
  async function restoreDevice(
    deviceName: string,
    savedTable: string,
  ): Promise<'restored' | 'grown' | 'suspended'> {
    let after = await rereadDevice(deviceName);
    if (!after.info) return 'restored';
    if (after.info.suspended) {
      if (after.line !== savedTable) {
        // The new table went live but the device stayed suspended (a failed preresume): the
        // filesystem has not grown, so the saved table is safe to put back.
        await dmsetup(['load', deviceName, '--table', savedTable]);
      } else if (after.info.inactive) {
        await dmsetup(['clear', deviceName]);
      }
      await dmsetup(['resume', deviceName], true);
      after = await rereadDevice(deviceName);
      if (!after.info || after.info.suspended) return 'suspended';
    }
    if (after.info.inactive) {
      await dmsetup(['clear', deviceName]);
      after = await rereadDevice(deviceName);
    }
    return after.line === savedTable ? 'restored' : 'grown';
  }

  async function fsSizeBytes(mountPath: string): Promise<number> {
    const fs = await statfs(mountPath);
    return fs.totalBlocks * fs.blockSizeBytes;
  }

  /** Steps after the device went live at the new size: grow the fs, verify, persist. Idempotent. */
  async function completeForward(intent: DeviceGrowIntent, done: readonly GrowStepName[]): Promise<void> {
    const fsBeforeBytes = intent.fsBeforeBytes;
    const deviceBytes = intent.toSectors * SECTOR_BYTES;
    if (!done.includes('verified')) {
      const fsGrow = fsGrowCommand(intent.fsType, intent.mountPath, intent.deviceName);
      try {
        await runner.run({
          tool: fsGrow.tool,
          args: fsGrow.args,
          timeoutMs: Math.max(deps.commandTimeoutMs, 120_000),
        });
      } catch (error) {
        countFailure(fsGrow.tool);
        journal.record(intent.intentId, 'failed', `${fsGrow.tool}: ${errorMessage(error)}`);
        throw new DevicemapperGrowError(
          `${intent.deviceName}: device grown to ${deviceBytes} bytes but ${fsGrow.tool} failed (the device stays usable; recover() retries): ${errorMessage(error)}`,
          fsGrow.tool,
          'grown-fs-pending',
          { cause: error },
        );
      }
      journal.record(intent.intentId, 'fs-grown');
      const fsAfterBytes = await fsSizeBytes(intent.mountPath);
      if (fsAfterBytes <= fsBeforeBytes || fsAfterBytes > deviceBytes) {
        countFailure('verify');
        journal.record(
          intent.intentId,
          'failed',
          `verify: fs ${fsAfterBytes} bytes (before ${fsBeforeBytes}), device ${deviceBytes}`,
        );
        throw new DevicemapperGrowError(
          `${intent.deviceName}: after ${fsGrow.tool} the filesystem is ${fsAfterBytes} bytes (before ${fsBeforeBytes}, device ${deviceBytes})`,
          'verify',
          'grown-fs-pending',
        );
      }
      journal.record(intent.intentId, 'verified');
    }
    if (!done.includes('metadata-patched')) {
      try {
        patchMetadata(intent.hash, intent.deviceId, deviceBytes);
      } catch (error) {
        countFailure('patch docker metadata');
        journal.record(intent.intentId, 'failed', `metadata: ${errorMessage(error)}`);
        throw new DevicemapperGrowError(
          `${intent.deviceName}: grown, but Docker's metadata file could not be patched: ${errorMessage(error)}`,
          'patch docker metadata',
          'grown-persist-pending',
          { cause: error },
        );
      }
      journal.record(intent.intentId, 'metadata-patched');
    }
    rememberGrown(intent);
    await hold(intent.hash, intent.deviceName);
    journal.record(intent.intentId, 'done');
  }

  function rememberGrown(intent: DeviceGrowIntent): void {
    const previous = grown.get(intent.hash);
    grown.put({
      containerId: intent.containerId,
      deviceName: intent.deviceName,
      deviceId: intent.deviceId,
      hash: intent.hash,
      sizeSectors: Math.max(intent.toSectors, previous?.sizeSectors ?? 0),
      poolName: driverStatus().poolName,
    });
  }

  /** Patches "size" in Docker's metadata file (never lowers it), atomically. */
  function patchMetadata(hash: string, deviceId: number, sizeBytes: number): void {
    const file = metadataPathOf(hash);
    const text = readFileSync(file, 'utf8');
    const metadata = parseDockerDeviceMetadata(text);
    if (metadata.deviceId !== deviceId) {
      throw new Error(`${file} has device_id ${metadata.deviceId}, the device is ${deviceId}`);
    }
    if (metadata.sizeBytes >= sizeBytes) return;
    writeFileAtomic(file, patchDockerDeviceMetadataSize(text, sizeBytes));
  }

  async function grow(request: GrowRequest): Promise<GrowResult> {
    const container = request.container;
    // the device and filesystem sizes the fast path knows are about to change
    if (!request.dryRun) liveTargets.delete(container.id);
    if (container.storageDriver !== 'devicemapper')
      throw new Error(`${container.name} uses ${container.storageDriver}, not devicemapper`);
    const device = parseGraphDriverData(container.graphDriverData);
    return withDeviceLock(deps.stateDir, `dm-${device.hash}`, async () => {
      const state = await snapshot(true);
      const pool = poolContext(state);
      const live = liveThin(state, device, pool);
      if (!live)
        throw new Error(
          `${container.name}: device ${device.deviceName} is not active (is the container running?)`,
        );
      if (live.info.suspended || live.info.inactive) {
        throw new Error(
          `${device.deviceName} is ${live.info.suspended ? 'suspended' : 'carrying an inactive table'}: run recover (agent restart) first`,
        );
      }
      const fromBytes = live.lengthSectors * SECTOR_BYTES;
      const toSectors = bytesToAlignedSectors(request.toBytes);
      if (toSectors <= live.lengthSectors) {
        return {
          containerId: container.id,
          fromBytes,
          toBytes: fromBytes,
          steps: [],
          dryRun: request.dryRun,
          noop: true,
        };
      }
      const mountPath = mountPathOf(device.hash);
      const mount = mountOf(readMounts(), mountPath, live.info);
      if (!mount) throw new Error(`${mountPath} is not mounted`);
      const intent: DeviceGrowIntent = {
        kind: 'device',
        intentId: `${nowMs()}-${process.pid}-${(intentCounter += 1)}`,
        containerId: container.id,
        deviceName: device.deviceName,
        deviceId: device.deviceId,
        hash: device.hash,
        savedTable: live.line,
        newTable: formatThinTable(toSectors, live.table),
        fromSectors: live.lengthSectors,
        toSectors,
        fsType: mount.fsType,
        mountPath,
        poolDevice: pool.majorMinor,
        fsBeforeBytes: await fsSizeBytes(mountPath),
      };
      const steps = deviceSteps(intent); // also refuses filesystems it cannot grow
      if (request.dryRun) {
        return {
          containerId: container.id,
          fromBytes,
          toBytes: toSectors * SECTOR_BYTES,
          steps,
          dryRun: true,
          noop: false,
        };
      }
      if (
        pool.status &&
        (pool.status.mode === 'ro' || pool.status.mode === 'fail' || pool.status.needsCheck)
      ) {
        throw new Error(
          `pool ${pool.name} is ${pool.status.mode}${pool.status.needsCheck ? ' and needs_check' : ''}: not growing containers on it`,
        );
      }
      journal.begin(intent);
      logger.info(
        { device: intent.deviceName, fromSectors: intent.fromSectors, toSectors },
        'growing thin device',
      );

      try {
        await dmsetup(['load', intent.deviceName, '--table', intent.newTable]);
      } catch (error) {
        countFailure('dmsetup load');
        const outcome = await restoreDevice(intent.deviceName, intent.savedTable);
        journal.record(
          intent.intentId,
          outcome === 'restored' ? 'rolled-back' : 'failed',
          `load: ${errorMessage(error)}`,
        );
        throw new DevicemapperGrowError(
          `${intent.deviceName}: dmsetup load failed: ${errorMessage(error)}`,
          'dmsetup load',
          outcome === 'suspended' ? 'suspended' : 'unchanged',
          { cause: error },
        );
      }
      journal.record(intent.intentId, 'loaded');

      let resumeError: unknown = null;
      try {
        await dmsetup(['resume', intent.deviceName], true);
      } catch (error) {
        resumeError = error;
      }
      // Whatever resume returned, the kernel's state decides.
      const after = await rereadDevice(intent.deviceName);
      const wentLive =
        after.info !== undefined &&
        !after.info.suspended &&
        !after.info.inactive &&
        after.line === intent.newTable;
      if (!wentLive) {
        countFailure('dmsetup resume');
        const outcome = await restoreDevice(intent.deviceName, intent.savedTable);
        if (outcome !== 'grown') {
          journal.record(
            intent.intentId,
            outcome === 'restored' ? 'rolled-back' : 'failed',
            `resume: ${errorMessage(resumeError ?? 'table not live')}`,
          );
          throw new DevicemapperGrowError(
            `${intent.deviceName}: dmsetup resume ${resumeError ? `failed: ${errorMessage(resumeError)}` : 'did not make the new table live'}`,
            'dmsetup resume',
            outcome === 'suspended' ? 'suspended' : 'restored',
            { cause: resumeError },
          );
        }
      } else if (resumeError) {
        logger.warn(
          { device: intent.deviceName, error: errorMessage(resumeError) },
          'dmsetup resume reported an error but the new table is live',
        );
      }
      journal.record(intent.intentId, 'resumed');
      await completeForward(intent, []);
      const fsAfterBytes = await fsSizeBytes(mountPath);
      logger.info({ device: intent.deviceName, toSectors, fsSizeBytes: fsAfterBytes }, 'thin device grown');
      return {
        containerId: container.id,
        fromBytes,
        toBytes: toSectors * SECTOR_BYTES,
        steps,
        dryRun: false,
        noop: false,
      };
    });
  }

  async function replayDevice(
    entry: PendingIntent & { intent: DeviceGrowIntent },
    state: DmSnapshot,
  ): Promise<void> {
    const { intent, steps } = entry;
    const info = state.infos.get(intent.deviceName);
    const segments = state.tables.get(intent.deviceName);
    let line = segments && segments.length === 1 && segments[0] ? segmentLine(segments[0]) : null;
    const fsGrown = steps.includes('fs-grown') || steps.includes('verified');
    if (!info) {
      // The container stopped since: nothing to restore. If the new table was live the
      // filesystem may have grown, so the grown size must persist.
      if (steps.includes('resumed')) {
        patchMetadata(intent.hash, intent.deviceId, intent.toSectors * SECTOR_BYTES);
        rememberGrown(intent);
        journal.record(intent.intentId, 'done', 'device inactive; persisted the grown size');
      } else {
        journal.record(intent.intentId, 'rolled-back', 'device inactive before the resume was recorded');
      }
      return;
    }
    if (info.suspended) {
      if (line === intent.newTable && !fsGrown) {
        await dmsetup(['load', intent.deviceName, '--table', intent.savedTable]);
      } else if (line !== intent.newTable && info.inactive) {
        await dmsetup(['clear', intent.deviceName]);
      }
      await dmsetup(['resume', intent.deviceName], true);
      const after = await rereadDevice(intent.deviceName);
      if (after.info?.suspended) throw new Error(`${intent.deviceName} is still suspended after resume`);
      line = after.line;
    } else if (info.inactive) {
      await dmsetup(['clear', intent.deviceName]);
    }
    if (line === intent.savedTable) {
      journal.record(intent.intentId, 'rolled-back', 'recovered: saved table live');
      return;
    }
    if (line !== intent.newTable) {
      journal.record(intent.intentId, 'abandoned', `live table changed by someone else: ${line}`);
      logger.warn(
        { device: intent.deviceName, line },
        'grow intent abandoned: live table is neither the saved nor the new one',
      );
      return;
    }
    journal.record(intent.intentId, 'resumed', 'recovered');
    await completeForward(intent, steps);
  }

  async function replayPool(
    entry: PendingIntent & { intent: PoolGrowIntent },
    state: DmSnapshot,
  ): Promise<void> {
    const { intent } = entry;
    const info = state.infos.get(intent.poolName);
    if (!info) {
      journal.record(intent.intentId, 'abandoned', 'pool not active');
      return;
    }
    // A pool reload only ever lengthens the pool over a data device that already grew, so going
    // forward is as safe as going back: resume what is there, clear what never went live.
    if (info.inactive && !info.suspended) await dmsetup(['clear', intent.poolName]);
    if (info.suspended) await dmsetup(['resume', intent.poolName], true);
    const after = await rereadDevice(intent.poolName);
    if (after.info?.suspended) throw new Error(`pool ${intent.poolName} is still suspended after resume`);
    journal.record(intent.intentId, after.line === intent.newTable ? 'done' : 'rolled-back', 'recovered');
  }

  /** Re-creates (or lengthens) a stopped grown container's device so `docker start` mounts it whole. */
  async function ensureGrownDevice(containerId: string, hash: string): Promise<void> {
    const record = grown.get(hash);
    if (!record) return;
    const metadataFile = metadataPathOf(hash);
    let metadataText: string;
    try {
      metadataText = readFileSync(metadataFile, 'utf8');
    } catch {
      // `docker rm` removed it: forget the device and make sure nothing is left behind.
      await forgetRemoved(record.hash, record.deviceName);
      return;
    }
    const parsedMetadata = JSON.parse(metadataText) as { deleted?: unknown };
    const metadata = parseDockerDeviceMetadata(metadataText);
    if (parsedMetadata.deleted === true || metadata.deviceId !== record.deviceId) {
      await forgetRemoved(record.hash, record.deviceName);
      return;
    }
    const current = await deps.docker.inspectContainer(containerId);
    if (!current) {
      await forgetRemoved(record.hash, record.deviceName);
      return;
    }
    if (current.running) return;
    const deadline = nowMs() + recreateWaitMs;
    for (;;) {
      const state = await snapshot(false);
      const pool = poolContext(state);
      const device = parseGraphDriverData(current.graphDriverData);
      if (device.deviceName !== record.deviceName || device.deviceId !== record.deviceId) {
        throw new Error(
          `${containerId}: Docker's device ${device.deviceName}/${device.deviceId} differs from the grown record`,
        );
      }
      const live = liveThin(state, device, pool);
      const newTable = formatThinTable(record.sizeSectors, {
        poolDevice: pool.majorMinor,
        deviceId: record.deviceId,
        externalOrigin: null,
      });
      if (!live) {
        await dmsetup(['create', record.deviceName, '--table', newTable]);
        await hold(record.hash, record.deviceName);
        logger.info(
          { device: record.deviceName, sizeSectors: record.sizeSectors },
          're-created stopped container device at its grown size',
        );
        return;
      }
      if (live.lengthSectors >= record.sizeSectors) {
        // Still there at the grown size: held open, Docker only scheduled a deferred removal.
        await hold(record.hash, record.deviceName);
        return;
      }
      if (nowMs() >= deadline && live.info.openCount === 0 && !live.info.suspended) {
        // Docker left the device active at its cached (old) size, e.g. after a start that failed:
        // lengthen it in place (nothing has it open).
        await dmsetup(['load', record.deviceName, '--table', newTable]);
        await dmsetup(['resume', record.deviceName], true);
        await hold(record.hash, record.deviceName);
        logger.info(
          { device: record.deviceName },
          'lengthened a stopped container device Docker left at its old size',
        );
        return;
      }
      if (nowMs() >= deadline) {
        logger.warn(
          { device: record.deviceName },
          'stopped container device still active at its old size and open; not touching it',
        );
        return;
      }
      await sleep(100);
    }
  }

  async function forgetRemoved(hash: string, deviceName: string): Promise<void> {
    await release(hash);
    const state = await snapshot(false);
    const info = state.infos.get(deviceName);
    if (info && info.openCount === 0) {
      await dmsetup(['remove', deviceName]);
      logger.info({ device: deviceName }, 'removed the device of a deleted container');
    }
    grown.remove(hash);
  }

  async function recover(containers: readonly ContainerInfo[]): Promise<void> {
    const pending = journal.pending();
    if (pending.length > 0) {
      const state = await snapshot(false);
      for (const entry of pending) {
        try {
          if (entry.intent.kind === 'device')
            await replayDevice(entry as PendingIntent & { intent: DeviceGrowIntent }, state);
          else await replayPool(entry as PendingIntent & { intent: PoolGrowIntent }, state);
        } catch (error) {
          countFailure('recover');
          logger.error(
            { intent: entry.intent, error: errorMessage(error) },
            'could not recover an interrupted grow',
          );
        }
      }
      journal.compact();
    }
    // Whatever an earlier process left (a `once`, a `grow`, an agent killed or upgraded): holds
    // re-established, stopped grown containers' devices re-created, persistent grows released.
    try {
      const state = await snapshot(false);
      await reconcilePersistence(state, poolContext(state), containers, 'recover');
    } catch (error) {
      logger.error({ error: errorMessage(error) }, 'could not take over grown devices');
    }
  }

  /**
   * Every whole-host pass and at agent start: for each grown device on record (on disk, whoever
   * grew it), asks dockerd whether it caches the grown size (a fresh `docker inspect` at most every
   * persistenceRecheckMs per device; at once in recover), releases the hold and drops the record
   * once it does, and otherwise makes sure the device is there at its grown size and held.
   * A pass takes each device's lock before acting; recover runs at agent start, before this
   * process grows anything, as the journal replay does.
   */
  async function reconcilePersistence(
    state: DmSnapshot,
    pool: PoolContext,
    running: readonly ContainerInfo[],
    caller: 'pass' | 'recover' | 'assess',
  ): Promise<void> {
    const force = caller === 'recover';
    const readOnly = caller === 'assess';
    const locked = <T>(hash: string, body: () => Promise<T>): Promise<T> =>
      caller === 'pass' ? withDeviceLock(deps.stateDir, `dm-${hash}`, body) : body();
    const runningById = new Map(running.map((container) => [container.id, container]));
    const previous = new Map(pending.map((entry) => [entry.hash, entry]));
    const records = grown.all();
    const next: PendingPersistence[] = [];
    const holds = kernelHolds(state.tables);
    for (const [hash, existing] of holds) {
      // A hold without a record whose container Docker deleted: nothing needs it any more.
      if (!readOnly && !records.some((record) => record.hash === hash) && metadataGoneOrDeleted(hash)) {
        await removeHold(existing).catch((error: unknown) =>
          logger.warn({ hold: existing.name, error: errorMessage(error) }, 'could not release a hold'),
        );
      }
    }
    for (const record of records) {
      try {
        const entry = await reconcileRecord(
          record,
          state,
          pool,
          holds,
          runningById.get(record.containerId) ?? null,
          force,
          previous.get(record.hash) ?? null,
          readOnly ? null : locked,
        );
        if (entry) next.push(entry);
      } catch (error) {
        const carried = previous.get(record.hash);
        next.push(
          carried ?? {
            containerId: record.containerId,
            hash: record.hash,
            deviceName: record.deviceName,
            grownBytes: record.sizeSectors * SECTOR_BYTES,
            dockerSizeBytes: null,
            state: holds.has(record.hash) ? 'held' : 'unheld',
            running: runningById.has(record.containerId),
          },
        );
        logger.warn(
          { device: record.deviceName, error: errorMessage(error) },
          'could not settle a grown device this pass',
        );
      }
    }
    pending = next;
  }

  function dockerSizeOf(container: ContainerInfo): number | null {
    try {
      return parseGraphDriverData(container.graphDriverData).dockerSizeBytes ?? null;
    } catch {
      return null;
    }
  }

  async function reconcileRecord(
    record: GrownDevice,
    state: DmSnapshot,
    pool: PoolContext,
    holds: ReadonlyMap<string, KernelHold>,
    runningContainer: ContainerInfo | null,
    force: boolean,
    previous: PendingPersistence | null,
    /** null: a dry-run pass, which only assesses (no hold, no re-create, no release). */
    locked: (<T>(hash: string, body: () => Promise<T>) => Promise<T>) | null,
  ): Promise<PendingPersistence | null> {
    const grownBytes = record.sizeSectors * SECTOR_BYTES;
    if (metadataGoneOrDeleted(record.hash)) {
      if (locked) await locked(record.hash, () => forgetRemoved(record.hash, record.deviceName));
      return null;
    }
    let current: ContainerInfo | null = runningContainer;
    let dockerSizeBytes = runningContainer ? dockerSizeOf(runningContainer) : null;
    if (dockerSizeBytes === null || dockerSizeBytes < grownBytes) {
      const lastMs = lastPersistenceCheckMs.get(record.hash);
      if (force || lastMs === undefined || nowMs() - lastMs >= persistenceRecheckMs) {
        lastPersistenceCheckMs.set(record.hash, nowMs());
        current = await deps.docker.inspectContainer(record.containerId);
        if (!current) {
          if (locked) await locked(record.hash, () => forgetRemoved(record.hash, record.deviceName));
          return null;
        }
        dockerSizeBytes = dockerSizeOf(current);
      } else if (!runningContainer) {
        // Not asked again yet and not running: keep what the last check found, holds re-checked below.
        current = null;
      }
    }
    const verdict = devicePersistence({ grownBytes, dockerSizeBytes, held: holds.has(record.hash) });
    if (verdict === 'persistent') {
      if (!locked) return null;
      await locked(record.hash, async () => {
        await release(record.hash);
        grown.remove(record.hash);
      });
      lastPersistenceCheckMs.delete(record.hash);
      logger.info(
        { device: record.deviceName, grownBytes, dockerSizeBytes },
        'grow is persistent: dockerd caches the grown size',
      );
      return null;
    }
    const info = state.infos.get(record.deviceName);
    const liveSectors = Number(state.tables.get(record.deviceName)?.[0]?.lengthSectors ?? 0);
    const isRunning = current ? current.running : (previous?.running ?? false);
    const needsAction =
      holdGrownDevices &&
      (!holds.has(record.hash) ||
        holds.get(record.hash)?.heldMajorMinor !== (info ? majorMinor(info) : null) ||
        !info ||
        liveSectors < record.sizeSectors);
    let held = holds.has(record.hash);
    if (locked && (needsAction || (!holdGrownDevices && !info && current && !current.running))) {
      const stopped = current ? !current.running : !isRunning;
      held = await locked(record.hash, () => settleDevice(record, stopped, pool));
    }
    return {
      containerId: record.containerId,
      hash: record.hash,
      deviceName: record.deviceName,
      grownBytes,
      dockerSizeBytes,
      state: held ? 'held' : 'unheld',
      running: isRunning,
    };
  }

  /**
   * Under the device lock, on a fresh snapshot: a stopped container's missing device is created
   * at its grown size, one Docker left at the old size and nobody opened is lengthened, and the
   * device gets its hold. Returns whether it is held.
   */
  async function settleDevice(record: GrownDevice, stopped: boolean, pool: PoolContext): Promise<boolean> {
    let state = await snapshot(false);
    const newTable = formatThinTable(record.sizeSectors, {
      poolDevice: pool.majorMinor,
      deviceId: record.deviceId,
      externalOrigin: null,
    });
    const info = state.infos.get(record.deviceName);
    const segments = state.tables.get(record.deviceName);
    if (!info || !segments) {
      if (!stopped) return false;
      await dmsetup(['create', record.deviceName, '--table', newTable]);
      logger.info(
        { device: record.deviceName, sizeSectors: record.sizeSectors },
        're-created stopped container device at its grown size',
      );
      state = await snapshot(false);
    } else {
      const live = liveThin(
        state,
        {
          deviceName: record.deviceName,
          deviceId: record.deviceId,
          hash: record.hash,
          dockerSizeBytes: null,
        },
        pool,
      );
      if (live && live.lengthSectors < record.sizeSectors) {
        if (!stopped || live.info.openCount > 0 || live.info.suspended) {
          logger.warn(
            { device: record.deviceName, liveSectors: live.lengthSectors, grownSectors: record.sizeSectors },
            'grown device is active at a smaller size and in use; not touching it',
          );
          return false;
        }
        await dmsetup(['load', record.deviceName, '--table', newTable]);
        await dmsetup(['resume', record.deviceName], true);
        logger.info(
          { device: record.deviceName },
          'lengthened a stopped container device Docker left at its old size',
        );
        state = await snapshot(false);
      }
    }
    return hold(record.hash, record.deviceName, state);
  }

  async function onContainerStopped(container: ContainerInfo): Promise<void> {
    if (container.storageDriver !== 'devicemapper') return;
    let device: DockerThinDevice;
    try {
      device = parseGraphDriverData(container.graphDriverData);
    } catch {
      return;
    }
    if (!grown.get(device.hash)) return;
    await withDeviceLock(deps.stateDir, `dm-${device.hash}`, () =>
      ensureGrownDevice(container.id, device.hash),
    );
  }

  function readSysFile(file: string): string {
    return readFileSync(file, 'utf8').trim();
  }

  /** The loop device behind a `/dev/loopN` path, checked against sysfs: maj:min and backing file. */
  function loopDevice(devicePath: string | null, expectedFile: string | null, expectedMajorMinor: string) {
    const name = devicePath ? path.basename(devicePath) : '';
    if (!/^loop\d+$/.test(name) || !expectedFile) throw new Error(`not a loop device: ${devicePath}`);
    const sys = path.join(sysBlockDir, name);
    const majorMinorText = readSysFile(path.join(sys, 'dev'));
    if (majorMinorText !== expectedMajorMinor)
      throw new Error(`${devicePath} is ${majorMinorText}, the pool uses ${expectedMajorMinor}`);
    const backing = readSysFile(path.join(sys, 'loop', 'backing_file'));
    if (backing !== expectedFile)
      throw new Error(`${devicePath} is backed by ${backing}, docker info says ${expectedFile}`);
    return {
      devicePath: `/dev/${name}`,
      file: expectedFile,
      sizeBytes: () => Number(readSysFile(path.join(sys, 'size'))) * SECTOR_BYTES,
    };
  }

  type PoolPart = 'data' | 'metadata';

  async function growPoolPart(part: PoolPart, toBytes: number, dryRun: boolean) {
    return withDeviceLock(deps.stateDir, 'dm-pool', async () => {
      const state = await snapshot(true);
      const pool = poolContext(state);
      const status = pool.status;
      if (!status || status.dataTotalBlocks === null || status.metadataTotalBlocks === null) {
        throw new Error(
          `pool ${pool.name} is in Fail mode: repair it (thin_check/thin_repair) before growing`,
        );
      }
      if (status.needsCheck) {
        throw new Error(
          `pool ${pool.name} is flagged needs_check: the kernel would report success and not grow; repair it first`,
        );
      }
      const blockBytes = pool.table.dataBlockSizeSectors * SECTOR_BYTES;
      const fromBytes =
        part === 'data'
          ? status.dataTotalBlocks * blockBytes
          : status.metadataTotalBlocks * POOL_METADATA_BLOCK_BYTES;
      const steps: GrowStep[] = [];
      if (toBytes <= fromBytes) return { fromBytes, toBytes: fromBytes, steps };

      if (pool.kind === 'thin-pool-lvm') {
        const lvs = parseLvsReport(
          (
            await runner.run({
              tool: 'lvs',
              args: lvsPoolArgs(),
              timeoutMs: deps.commandTimeoutMs,
            })
          ).stdout,
        );
        const poolLvName = pool.name.replace(/-tpool$/, '');
        const lv = lvs.find((row) => lvmDmName(row.vgName, row.lvName) === poolLvName);
        if (!lv || !lv.attr.startsWith('t'))
          throw new Error(`no LVM thin pool LV is activated as ${pool.name}`);
        const vg = parseVgsReport(
          (
            await runner.run({
              tool: 'vgs',
              args: vgsFreeArgs(lv.vgName),
              timeoutMs: deps.commandTimeoutMs,
            })
          ).stdout,
        ).find((row) => row.vgName === lv.vgName);
        if (!vg) throw new Error(`volume group ${lv.vgName} not found`);
        const currentLvBytes = part === 'data' ? lv.sizeBytes : (lv.metadataSizeBytes ?? fromBytes);
        const targetBytes = Math.ceil(toBytes / vg.extentSizeBytes) * vg.extentSizeBytes;
        if (targetBytes - currentLvBytes > vg.freeBytes) {
          throw new Error(
            `volume group ${vg.vgName} has ${vg.freeBytes} bytes free; growing ${part} to ${targetBytes} needs ${targetBytes - currentLvBytes}`,
          );
        }
        const args =
          part === 'data'
            ? ['-L', `${targetBytes}b`, `${lv.vgName}/${lv.lvName}`]
            : ['--poolmetadatasize', `${targetBytes}b`, `${lv.vgName}/${lv.lvName}`];
        steps.push({ name: 'lvextend', argv: ['lvextend', ...args] });
        if (dryRun) return { fromBytes, toBytes: targetBytes, steps };
        try {
          await runner.run({
            tool: 'lvextend',
            args,
            timeoutMs: Math.max(deps.commandTimeoutMs, 120_000),
            killOnTimeout: false,
          });
        } catch (error) {
          countFailure('lvextend');
          throw error;
        }
      } else if (pool.kind === 'thin-pool-loop') {
        const docker = driverStatus();
        const loopPath = part === 'data' ? docker.dataLoopDevice : docker.metadataLoopDevice;
        const loopFile = part === 'data' ? docker.dataLoopFile : docker.metadataLoopFile;
        const loop = loopDevice(
          loopPath,
          loopFile,
          part === 'data' ? pool.table.dataDevice : pool.table.metadataDevice,
        );
        const alignBytes = part === 'data' ? blockBytes : POOL_METADATA_BLOCK_BYTES;
        const targetBytes = Math.ceil(toBytes / alignBytes) * alignBytes;
        const targetSectors = part === 'data' ? targetBytes / SECTOR_BYTES : pool.lengthSectors;
        const newTable = formatThinPoolTable(targetSectors, pool.table);
        const truncateArgs = ['-s', `>${targetBytes}`, loop.file]; // `>`: only ever extends
        steps.push(
          { name: 'truncate', argv: ['truncate', ...truncateArgs] },
          { name: 'losetup -c', argv: ['losetup', '-c', loop.devicePath] },
          { name: 'dmsetup load', argv: ['dmsetup', 'load', pool.name, '--table', newTable] },
          { name: 'dmsetup resume', argv: ['dmsetup', 'resume', pool.name] },
        );
        if (dryRun) return { fromBytes, toBytes: targetBytes, steps };
        if (fileSizeBytes(loop.file) < targetBytes) {
          await runner.run({ tool: 'truncate', args: truncateArgs, timeoutMs: deps.commandTimeoutMs });
        }
        if (loop.sizeBytes() < targetBytes) {
          await runner.run({
            tool: 'losetup',
            args: ['-c', loop.devicePath],
            timeoutMs: deps.commandTimeoutMs,
          });
        }
        if (loop.sizeBytes() < targetBytes)
          throw new Error(
            `${loop.devicePath} is ${loop.sizeBytes()} bytes after losetup -c; expected ${targetBytes}`,
          );
        const intent: PoolGrowIntent = {
          kind: 'pool',
          intentId: `${nowMs()}-${process.pid}-${(intentCounter += 1)}`,
          poolName: pool.name,
          savedTable: formatThinPoolTable(pool.lengthSectors, pool.table),
          newTable,
          fromSectors: pool.lengthSectors,
          toSectors: targetSectors,
        };
        journal.begin(intent);
        try {
          await dmsetup(['load', pool.name, '--table', newTable]);
          journal.record(intent.intentId, 'loaded');
        } catch (error) {
          countFailure('dmsetup load');
          await dmsetup(['clear', pool.name]).catch(() => undefined);
          journal.record(intent.intentId, 'rolled-back', errorMessage(error));
          throw error;
        }
        try {
          await dmsetup(['resume', pool.name], true);
        } catch (error) {
          countFailure('dmsetup resume');
          const after = await rereadDevice(pool.name);
          if (after.info?.suspended) {
            // A rejected pool table (e.g. "too small") leaves the pool suspended: every container
            // hangs. Put the old table back and resume.
            await dmsetup(['load', pool.name, '--table', intent.savedTable]);
            await dmsetup(['resume', pool.name], true);
          }
          journal.record(intent.intentId, 'rolled-back', errorMessage(error));
          throw error;
        }
        journal.record(intent.intentId, 'done');
      } else {
        throw new Error(
          `pool ${pool.name} is neither LVM-owned nor docker loop-lvm: growing it is not supported`,
        );
      }
      // Read back: the kernel may accept the reload and still not grow (needs_check).
      const afterState = await snapshot(true);
      const afterPool = poolContext(afterState);
      const afterStatus = afterPool.status;
      const afterBytes =
        part === 'data'
          ? (afterStatus?.dataTotalBlocks ?? 0) * blockBytes
          : (afterStatus?.metadataTotalBlocks ?? 0) * POOL_METADATA_BLOCK_BYTES;
      if (afterBytes <= fromBytes) {
        countFailure('verify pool');
        throw new Error(
          `pool ${pool.name} ${part} is still ${afterBytes} bytes after growing (mode ${afterStatus?.mode}${afterStatus?.needsCheck ? ', needs_check' : ''})`,
        );
      }
      logger.info({ pool: pool.name, part, fromBytes, toBytes: afterBytes }, 'thin pool grown');
      return { fromBytes, toBytes: afterBytes, steps };
    });
  }

  /**
   * doctor: whether grows can be made persistent on this host, and every grown device dockerd does
   * not cache at its grown size yet (read only: asks dockerd and reads the kernel's holds).
   */
  async function persistenceChecks(): Promise<DoctorCheck[]> {
    const problem = growPersistenceProblem(growPersistenceFacts(deps.dockerInfo));
    const checks: DoctorCheck[] = [
      {
        name: 'devicemapper grows can be held',
        ok: problem === null,
        severity: 'warn',
        detail:
          problem ??
          'deferred removal and deletion on: a kernel hold (autogrow-hold-<hash>) keeps each grown device until dockerd caches its size',
        ...(problem === null ? {} : { fix: DM_HOLD_FIX }),
      },
    ];
    try {
      const holds = kernelHolds((await snapshot(false)).tables);
      const lines: string[] = [];
      let unheld = 0;
      for (const record of grown.all()) {
        const current = await deps.docker.inspectContainer(record.containerId);
        if (!current) continue;
        const state = devicePersistence({
          grownBytes: record.sizeSectors * SECTOR_BYTES,
          dockerSizeBytes: dockerSizeOf(current),
          held: holds.has(record.hash),
        });
        if (state === 'persistent') continue;
        if (state === 'unheld') unheld += 1;
        lines.push(
          `${current.name} (${record.deviceName}, grown to ${record.sizeSectors * SECTOR_BYTES} bytes, dockerd has ${dockerSizeOf(current) ?? 'unknown'}): ${pendingPersistenceAdvice(state)}`,
        );
      }
      checks.push({
        name: 'grown devices persistent',
        ok: lines.length === 0,
        severity: unheld > 0 ? 'error' : 'warn',
        detail: lines.length === 0 ? 'dockerd caches every grown size' : lines.join('; '),
        ...(lines.length === 0
          ? {}
          : {
              fix: 'restart dockerd (with "live-restore": true running containers keep running): it then reads the patched metadata files, and the agent releases its holds at its next pass',
            }),
      });
    } catch (error) {
      checks.push({
        name: 'grown devices persistent',
        ok: false,
        severity: 'warn',
        detail: `could not check: ${errorMessage(error)}`,
      });
    }
    return checks;
  }

  async function doctor(): Promise<DoctorCheck[]> {
    const checks: DoctorCheck[] = [];
    let docker: DockerDmDriverStatus | null = null;
    try {
      docker = driverStatus();
      checks.push({
        name: 'devicemapper pool configured',
        ok: true,
        severity: 'error',
        detail: `Pool Name ${docker.poolName}`,
      });
    } catch (error) {
      checks.push({
        name: 'devicemapper pool configured',
        ok: false,
        severity: 'error',
        detail: errorMessage(error),
      });
    }
    checks.push({
      name: 'udev sync supported',
      ok: docker?.udevSyncSupported === true,
      severity: 'error',
      detail: `Udev Sync Supported: ${docker?.udevSyncSupported ?? 'unknown'}`,
      fix: 'use a dynamically linked dockerd built with udev sync (distribution packages are)',
    });
    checks.push({
      name: 'deferred removal enabled',
      ok: docker?.deferredRemovalEnabled === true,
      severity: 'warn',
      detail: `Deferred Removal Enabled: ${docker?.deferredRemovalEnabled ?? 'unknown'}`,
      fix: 'add "dm.use_deferred_removal=true" to storage-opts in /etc/docker/daemon.json',
    });
    checks.push({
      name: 'live-restore',
      ok: deps.dockerInfo.liveRestoreEnabled,
      severity: 'warn',
      detail: deps.dockerInfo.liveRestoreEnabled
        ? 'live-restore on: dockerd can be restarted to reload grown sizes without stopping containers'
        : 'live-restore off: a dockerd restart (needed after `docker restart` of a grown container) stops containers',
      fix: 'set "live-restore": true in /etc/docker/daemon.json',
    });
    checks.push(...(await persistenceChecks()));
    const tools: ToolName[] = ['dmsetup', 'xfs_growfs', 'resize2fs'];
    let pool: PoolContext | null = null;
    try {
      pool = poolContext(await snapshot(true));
      const status = pool.status;
      checks.push({
        name: 'pool healthy',
        ok: status !== null && status.mode === 'rw' && !status.needsCheck,
        severity: 'error',
        detail: `pool ${pool.name} (${pool.kind}) mode ${status?.mode ?? 'unknown'}${status?.needsCheck ? ', needs_check' : ''}`,
        fix:
          status?.needsCheck || status?.mode === 'fail'
            ? 'stop Docker, deactivate the pool and run thin_check / thin_repair (lvconvert --repair for LVM)'
            : 'grow the pool (docker-autogrow grow-pool) or free space',
      });
    } catch (error) {
      checks.push({ name: 'pool healthy', ok: false, severity: 'error', detail: errorMessage(error) });
    }
    if (pool?.kind === 'thin-pool-lvm') {
      tools.push('lvs', 'vgs', 'lvextend', 'lvm');
      try {
        const output = (
          await runner.run({
            tool: 'lvm',
            args: ['config', '--typeconfig', 'full', 'activation/thin_pool_autoextend_threshold'],
            timeoutMs: deps.commandTimeoutMs,
          })
        ).stdout;
        const threshold = parseLvmConfigValue(output, 'thin_pool_autoextend_threshold');
        checks.push({
          name: 'LVM thin pool autoextend',
          ok: true,
          severity: 'warn',
          detail:
            threshold === '100'
              ? 'autoextend off (threshold 100): docker-autogrow grows the pool'
              : `autoextend at ${threshold}% (dmeventd also grows the pool)`,
        });
      } catch (error) {
        checks.push({
          name: 'LVM thin pool autoextend',
          ok: false,
          severity: 'warn',
          detail: errorMessage(error),
        });
      }
    }
    if (pool?.kind === 'thin-pool-loop') tools.push('losetup', 'truncate');
    for (const tool of tools) {
      const present = binaryPresent(tool);
      checks.push({
        name: `${tool} present`,
        ok: present,
        severity: 'error',
        detail: present ? `${tool} found` : `${tool} not found`,
        fix: present ? undefined : `install ${tool}`,
      });
    }
    return checks;
  }

  return {
    driver: 'devicemapper',
    observe,
    readLiveUsage,
    grow,
    recover,
    onContainerStopped,
    growPool: (toBytes, dryRun) => growPoolPart('data', toBytes, dryRun),
    growPoolMetadata: (toBytes, dryRun) => growPoolPart('metadata', toBytes, dryRun),
    failureCounts: () => failures,
    releaseHolds: async () => {
      for (const existing of kernelHolds((await snapshot(false)).tables).values()) await removeHold(existing);
    },
    heldDevices: async () => [...kernelHolds((await snapshot(false)).tables).keys()],
    pendingPersistence: () => pending,
    doctor,
  };
}

export function isDevicemapperGrowError(error: unknown): error is DevicemapperGrowError {
  return error instanceof DevicemapperGrowError;
}

export { isCommandError };
