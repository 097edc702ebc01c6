/**
 * Persistence, the effects (the rules and the hold's format are in persistence.ts): kernel holds
 * placed and released, stopped grown containers' devices re-created at their grown size, and every
 * grown device on record reconciled each whole-host pass and at agent start, whoever grew it
 * (docs/devicemapper.md, "Making the grow last").
 */
import { readFileSync } from 'node:fs';
import type { ContainerInfo } from '../../docker/model.js';
import { type GrownDevice } from './journal.js';
import { withDeviceLock } from './lock.js';
import { devicePersistence, holdLosetupArgs, kernelHolds, type KernelHold } from './persistence.js';
import {
  SECTOR_BYTES,
  formatThinTable,
  majorMinor,
  parseDockerDeviceMetadata,
  parseGraphDriverData,
  type DockerThinDevice,
} from './parse.js';
import { errorMessage } from '../../util/errors.js';
import { type DmContext } from './context.js';
import { liveThin, type DmSnapshot, type KernelSnapshot, type PoolContext } from './snapshot.js';
import type { PendingPersistence } from './types.js';

/** What dockerd caches for a container's device (`docker inspect` DeviceSize), null when unknown. */
export function dockerSizeOf(container: ContainerInfo): number | null {
  try {
    return parseGraphDriverData(container.graphDriverData).dockerSizeBytes ?? null;
  } catch {
    return null;
  }
}

/** Who reconciles: a whole-host pass, recover at agent start, or a dry-run pass (assess only). */
export type PersistenceCaller = 'pass' | 'recover' | 'assess';

export interface Persistence {
  /** Puts a kernel hold on a grown device (idempotent); whether it is held. */
  hold: (hash: string, deviceName: string, state?: DmSnapshot | null) => Promise<boolean>;
  reconcilePersistence: (
    state: DmSnapshot,
    pool: PoolContext,
    running: readonly ContainerInfo[],
    caller: PersistenceCaller,
  ) => Promise<void>;
  onContainerStopped: (container: ContainerInfo) => Promise<void>;
  releaseHolds: () => Promise<void>;
  heldDevices: () => Promise<string[]>;
  pendingPersistence: () => readonly PendingPersistence[];
}

export function createPersistence(ctx: DmContext, kernel: KernelSnapshot): Persistence {
  const { deps, runner, logger, grown, holdGrownDevices, persistenceRecheckMs, nowMs, sleep } = ctx;
  const { dmsetup, countFailure, metadataPathOf, recreateWaitMs } = ctx;
  const { snapshot, poolContext } = kernel;
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
    const existing = kernelHolds(snap).get(hash);
    if (existing) {
      if (existing.heldMajorMinor === majorMinor(info)) return true;
      // A hold on another device than the container's: never ours to keep.
      await removeHold(existing);
    }
    try {
      const loopPath = (
        await runner.run({
          tool: 'losetup',
          args: holdLosetupArgs(deviceName),
          timeoutMs: deps.commandTimeoutMs,
        })
      ).stdout.trim();
      logger.info({ device: deviceName, hold: loopPath }, 'kernel hold placed on a grown device');
      return true;
    } catch (error) {
      countFailure('hold');
      logger.warn({ device: deviceName, error: errorMessage(error) }, 'could not hold a grown device');
      return false;
    }
  }

  async function removeHold(existing: KernelHold): Promise<void> {
    await runner.run({
      tool: 'losetup',
      args: ['-d', existing.devicePath],
      timeoutMs: deps.commandTimeoutMs,
    });
    logger.info({ hold: existing.devicePath, hash: existing.hash }, 'kernel hold released');
  }

  /** Releases the hold on `hash` if there is one (`state`: a snapshot; null: take one). */
  async function release(hash: string, state: DmSnapshot | null = null): Promise<void> {
    const snap = state ?? (await snapshot(false));
    const existing = kernelHolds(snap).get(hash);
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
    caller: PersistenceCaller,
  ): Promise<void> {
    const force = caller === 'recover';
    const readOnly = caller === 'assess';
    const locked = <T>(hash: string, body: () => Promise<T>): Promise<T> =>
      caller === 'pass' ? withDeviceLock(deps.stateDir, `dm-${hash}`, body) : body();
    const runningById = new Map(running.map((container) => [container.id, container]));
    const previous = new Map(pending.map((entry) => [entry.hash, entry]));
    const records = grown.all();
    const next: PendingPersistence[] = [];
    const holds = kernelHolds(state);
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

  return {
    hold,
    reconcilePersistence,
    onContainerStopped,
    releaseHolds: async () => {
      for (const existing of kernelHolds(await snapshot(false)).values()) await removeHold(existing);
    },
    heldDevices: async () => [...kernelHolds(await snapshot(false)).keys()],
    pendingPersistence: () => pending,
  };
}
