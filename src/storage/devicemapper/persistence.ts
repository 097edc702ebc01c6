/**
 * Making a devicemapper grow last (docs/devicemapper.md, "Making the grow last"): the pure part.
 *
 * Docker 20.10 keeps every device's size in memory from the moment it first looks the device up
 * (container create or start, or dockerd start) and re-activates a stopped container's device with
 * that size. Patching `metadata/<hash>` reaches dockerd only at its next start. Until then a grown
 * device must stay active while the container is stopped: Docker's activation leaves an existing
 * device alone. The agent keeps it active with a **kernel hold**: a read-only 4 KiB loop device
 * (`losetup --read-only --offset 4096 --sizelimit 4096 /dev/mapper/<thin device>`) over the
 * container's thin device. The kernel owns it, so it outlives the process that made it (`once`,
 * `grow`, an agent killed with SIGKILL or upgraded); each pass finds the holds in /sys/block (file
 * reads, no process). With a hold, Docker's stop only schedules a deferred removal (the thin device
 * is open), and the next start cancels it and mounts the grown device.
 *
 * Why a loop device and not a dm device stacked on the thin device: dm claims the devices under
 * its targets exclusively, and a mounted filesystem holds that claim, so `dmsetup create` of a
 * linear target over a running container's device fails with EBUSY (measured in the VM, kernel
 * 6.1: "reload ioctl ... failed: Device or resource busy"), and one made while the container is
 * stopped would make Docker's mount at start fail the same way. A loop device opens its backing
 * device like any reader, without a claim, and the mount coexists with it.
 *
 * A hold is released when it is no longer needed: Docker's own size for the device (`docker
 * inspect` DeviceSize, dockerd's cache) reached the grown size (dockerd restarted since the grow),
 * or Docker deleted the container (its metadata is gone or marked deleted).
 */
import type { DockerInfo } from '../../docker/model.js';
import type { GrowPersistenceFacts } from '../../policy/persistence.js';
import { majorMinor, parseDockerDmDriverStatus, type DmDeviceInfo } from './parse.js';

/** The hold maps 4 KiB from byte 4096 of the thin device: past the superblock, so blkid/udev see
 * no second copy of the container's filesystem (same UUID) on the loop device. */
export const HOLD_OFFSET_BYTES = 4096;
export const HOLD_SIZE_BYTES = 4096;

/** `losetup` argv that places a hold on a thin device (prints the loop device's path). */
export function holdLosetupArgs(deviceName: string): string[] {
  return [
    '--read-only',
    '--offset',
    String(HOLD_OFFSET_BYTES),
    '--sizelimit',
    String(HOLD_SIZE_BYTES),
    '--find',
    '--show',
    `/dev/mapper/${deviceName}`,
  ];
}

/** One bound loop device as /sys/block shows it. */
export interface LoopFacts {
  /** `loop3` */
  name: string;
  /** loop/backing_file: the path the backing file was opened by, symlinks resolved (`/dev/dm-3`). */
  backingFile: string;
  offsetBytes: number;
  sizeLimitBytes: number;
  readOnly: boolean;
  /** major:minor of the backing block device when it is a dm device (from /sys/block/dm-N/dev). */
  backingMajorMinor: string | null;
}

export interface KernelHold {
  /** The loop device's name (`loop3`). */
  name: string;
  /** `/dev/loop3`: what `losetup -d` takes. */
  devicePath: string;
  /** The container's mount hash (its thin device name's suffix). */
  hash: string;
  /** major:minor of the device it holds open. */
  heldMajorMinor: string;
}

const DOCKER_THIN_NAME = /^docker-\d+:\d+-\d+-([0-9a-f]{64})$/;

/**
 * Every kernel hold among the bound loop devices, by hash: read-only, exactly our offset and size,
 * backed by a Docker thin device that is active now. Any other loop device is never ours.
 */
export function kernelHolds(state: {
  loops: readonly LoopFacts[];
  infos: ReadonlyMap<string, DmDeviceInfo>;
}): Map<string, KernelHold> {
  const nameByMajorMinor = new Map<string, string>();
  for (const [name, info] of state.infos) nameByMajorMinor.set(majorMinor(info), name);
  const holds = new Map<string, KernelHold>();
  for (const loop of state.loops) {
    if (!loop.readOnly || loop.offsetBytes !== HOLD_OFFSET_BYTES || loop.sizeLimitBytes !== HOLD_SIZE_BYTES)
      continue;
    let deviceName: string | undefined;
    if (loop.backingMajorMinor !== null) deviceName = nameByMajorMinor.get(loop.backingMajorMinor);
    else if (loop.backingFile.startsWith('/dev/mapper/'))
      deviceName = loop.backingFile.slice('/dev/mapper/'.length);
    const info = deviceName === undefined ? undefined : state.infos.get(deviceName);
    const hash = deviceName === undefined ? undefined : DOCKER_THIN_NAME.exec(deviceName)?.[1];
    if (!info || hash === undefined) continue;
    holds.set(hash, {
      name: loop.name,
      devicePath: `/dev/${loop.name}`,
      hash,
      heldMajorMinor: majorMinor(info),
    });
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
