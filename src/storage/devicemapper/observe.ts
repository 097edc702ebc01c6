/**
 * Observation: one kernel snapshot per pass (three dmsetup commands whatever the container count),
 * one read of mountinfo, statfs per container (no process); and the fill guard's fast path
 * (readLiveUsage: one statfs per look).
 */
import { readFileSync } from 'node:fs';
import type { ContainerInfo } from '../../docker/model.js';
import type {
  ContainerUsage,
  LiveUsage,
  Observation,
  ObserveOptions,
  PoolUsage,
  StorageBackend,
} from '../types.js';
import {
  POOL_METADATA_BLOCK_BYTES,
  SECTOR_BYTES,
  majorMinor,
  parseGraphDriverData,
  parseMountinfo,
  parseThinStatus,
  type DmDeviceInfo,
  type MountEntry,
} from './parse.js';
import { errorMessage } from '../../util/errors.js';
import { type DmContext } from './context.js';
import { liveThin, type KernelSnapshot, type PoolContext } from './snapshot.js';
import { type Persistence } from './holds.js';

/**
 * Mounts by mount point. Of several mounts on one point the last wins: mountinfo lists in mount
 * order and the last one hides the others.
 */
export function mountsByPoint(mounts: readonly MountEntry[]): Map<string, MountEntry> {
  const byPoint = new Map<string, MountEntry>();
  for (const mount of mounts) byPoint.set(mount.mountPoint, mount);
  return byPoint;
}

/**
 * Every mount by its mount point, read once per pass: each container's lookup is then O(1)
 * instead of a scan of the whole table (quadratic with a mount per container).
 */
export function readMounts(mountinfoPath: string): Map<string, MountEntry> {
  return mountsByPoint(parseMountinfo(readFileSync(mountinfoPath, 'utf8')));
}

export function mountOf(
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

export interface Observer {
  observe: StorageBackend['observe'];
  readLiveUsage: (containerIds: readonly string[]) => Promise<ReadonlyMap<string, LiveUsage>>;
  /** A grow is about to change the container's sizes: the fast path forgets it until the next pass. */
  forgetLiveTarget: (containerId: string) => void;
}

export function createObserver(
  ctx: DmContext,
  kernel: KernelSnapshot,
  persistence: Pick<Persistence, 'reconcilePersistence' | 'pendingPersistence'>,
): Observer {
  const { statfs, mountPathOf, mountinfoPath } = ctx;
  const { snapshot, poolContext } = kernel;
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
    const mounts = readMounts(mountinfoPath);
    // Take over and settle every grow not persistent yet, whoever made it (a pass for one
    // container leaves that to the whole-host passes).
    if (!options.partial)
      await persistence.reconcilePersistence(
        state,
        pool,
        containers,
        options.dryRun === true ? 'assess' : 'pass',
      );
    const pendingByContainer = new Map(
      persistence.pendingPersistence().map((entry) => [entry.containerId, entry]),
    );
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
      // stopped containers too: the reconciler keeps only running ones in its rows
      unpersisted: persistence.pendingPersistence().map((entry) => ({
        containerId: entry.containerId,
        deviceName: entry.deviceName,
        state: entry.state,
        running: entry.running,
        grownBytes: entry.grownBytes,
        dockerSizeBytes: entry.dockerSizeBytes,
      })),
    };
  }

  return {
    observe,
    readLiveUsage,
    forgetLiveTarget: (containerId) => {
      liveTargets.delete(containerId);
    },
  };
}
