/** The devicemapper backend's public types: options, the backend interface, its errors. */
import { type ToolName } from '../../exec/runner.js';
import type { ContainerInfo } from '../../docker/model.js';
import type { GrowStep, StorageBackend } from '../types.js';
import { type DevicePersistence } from './persistence.js';
import { StorageGrowError } from '../grow-error.js';

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
  /** Binary lookup for doctor (default: the runner's own, which honours config `binaries`). */
  binaryPresent?: (tool: ToolName) => boolean;
}

/** A grow step failed. `deviceState` says what the device was left as. */
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
  /** Removes every kernel hold (tests; an operator's `losetup -d` of the hold's loop device does the same). */
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

export function isDevicemapperGrowError(error: unknown): error is DevicemapperGrowError {
  return error instanceof DevicemapperGrowError;
}
