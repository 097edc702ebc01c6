/**
 * Making a devicemapper grow last (docs/devicemapper.md, "Making the grow last"): the pure part.
 *
 * Docker 20.10 keeps every device's size in memory from the moment it first looks the device up
 * (container create or start, or dockerd start) and re-activates a stopped container's device with
 * that size. Patching `metadata/<hash>` reaches dockerd only at its next start. Until then a grown
 * device must stay active while the container is stopped: Docker's activation leaves an existing
 * device alone. The agent keeps it active with a **kernel hold**: a tiny read-only dm device
 * (`autogrow-hold-<hash>`, one linear 4 KiB segment) stacked on the container's thin device. The
 * kernel owns it, so it outlives the process that made it (`once`, `grow`, an agent killed with
 * SIGKILL or upgraded), and it is visible in the `dmsetup table` every pass already runs. With a
 * hold, Docker's stop only schedules a deferred removal (the thin device is open), and the next
 * start cancels it and mounts the grown device.
 *
 * A hold is released when it is no longer needed: Docker's own size for the device (`docker
 * inspect` DeviceSize, dockerd's cache) reached the grown size (dockerd restarted since the grow),
 * or Docker deleted the container (its metadata is gone or marked deleted).
 */
import type { DockerInfo } from '../../docker/model.js';
import type { GrowPersistenceFacts } from '../../policy/persistence.js';
import { parseDockerDmDriverStatus, type DmSegment } from './parse.js';

export const HOLD_NAME_PREFIX = 'autogrow-hold-';
/**
 * The hold maps 8 sectors starting at sector 8 of the thin device: nothing reads it, and skipping
 * sector 0 keeps the filesystem's superblock out of it, so blkid/udev see no second copy of the
 * container's filesystem (same UUID) on the hold device.
 */
export const HOLD_OFFSET_SECTORS = 8;
export const HOLD_LENGTH_SECTORS = 8;

export function holdDeviceName(hash: string): string {
  return `${HOLD_NAME_PREFIX}${hash}`;
}

/** The hold's table: `0 8 linear <thin maj:min> 8`. */
export function holdTable(thinMajorMinor: string): string {
  return `0 ${HOLD_LENGTH_SECTORS} linear ${thinMajorMinor} ${HOLD_OFFSET_SECTORS}`;
}

export interface KernelHold {
  /** The hold device's dm name. */
  name: string;
  /** The container's mount hash (the hold name's suffix). */
  hash: string;
  /** major:minor of the device it holds open. */
  heldMajorMinor: string;
}

/** Every kernel hold in one `dmsetup table` snapshot, by hash (devices of other shapes are ignored). */
export function kernelHolds(tables: ReadonlyMap<string, readonly DmSegment[]>): Map<string, KernelHold> {
  const holds = new Map<string, KernelHold>();
  for (const [name, segments] of tables) {
    if (!name.startsWith(HOLD_NAME_PREFIX)) continue;
    const hash = name.slice(HOLD_NAME_PREFIX.length);
    const only = segments[0];
    if (segments.length !== 1 || !only || only.target !== 'linear' || !/^[0-9a-f]{64}$/.test(hash)) continue;
    const heldMajorMinor = only.args[0];
    if (heldMajorMinor === undefined || !/^\d+:\d+$/.test(heldMajorMinor)) continue;
    holds.set(hash, { name, hash, heldMajorMinor });
  }
  return holds;
}

/**
 * Where a grown device stands:
 * - `persistent`: dockerd itself caches the grown size (or more): every later start uses it;
 * - `held`: dockerd still caches the old size, but a kernel hold keeps the grown device active,
 *   so a stop + start (or `docker restart`) keeps the grown size; a dockerd restart makes it
 *   persistent;
 * - `unheld`: dockerd caches the old size and nothing holds the device: the next stop removes it
 *   and the start after that fails ("last sector read failed") unless an agent re-creates it first.
 */
export type DevicePersistence = 'persistent' | 'held' | 'unheld';

export function devicePersistence(facts: {
  grownBytes: number;
  /** What dockerd reports (`docker inspect` DeviceSize); null when unknown. */
  dockerSizeBytes: number | null;
  held: boolean;
}): DevicePersistence {
  if (facts.dockerSizeBytes !== null && facts.dockerSizeBytes >= facts.grownBytes) return 'persistent';
  return facts.held ? 'held' : 'unheld';
}

/** The facts src/policy/persistence.ts decides on, from docker info (any driver). */
export function growPersistenceFacts(
  info: Pick<DockerInfo, 'driver' | 'driverStatus'>,
): GrowPersistenceFacts {
  if (info.driver !== 'devicemapper')
    return { driver: info.driver, deferredRemovalEnabled: null, deferredDeletionEnabled: null };
  try {
    const status = parseDockerDmDriverStatus(info.driverStatus);
    return {
      driver: info.driver,
      deferredRemovalEnabled: status.deferredRemovalEnabled,
      deferredDeletionEnabled: status.deferredDeletionEnabled,
    };
  } catch {
    return { driver: info.driver, deferredRemovalEnabled: null, deferredDeletionEnabled: null };
  }
}
