/**
 * The seam between the soak driver (soak/driver.ts) and one storage backend: everything the driver
 * needs that depends on how Docker stores containers. The driver stays the same on every backend;
 * a rig makes dockerd's storage, reads container limits the way the kernel holds them (never
 * through the agent), fills and drains the pool, and lists what the backend has left behind.
 *
 * Rigs: soak/rigs/btrfs.ts (the host), soak/rigs/overlay-xfs.ts (needs XFS project quotas) and
 * soak/rigs/devicemapper.ts (needs device-mapper): the guest, test/vm/soak-guest.ts.
 * soak/rigs/index.ts makes one by name.
 */
import type { Violation } from '../invariants.js';

/** devicemapper: direct-lvm (an LVM thin pool, `dm.thinpooldev`); devicemapper-loop: loop-lvm. */
export const BACKENDS = ['btrfs', 'overlay-xfs', 'devicemapper', 'devicemapper-loop'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** What a rig learned about one container when it was registered. */
export interface RigContainer {
  readonly containerId: string;
  /**
   * A path prefix (ending in `/`) the agent must hold no descriptor under once the container is
   * removed (its qgroup in sysfs, its layer directory); null when the rig knows none.
   */
  readonly removedPrefix: string | null;
}

export interface PoolUsage {
  totalBytes: number;
  /** Free bytes as the agent's pool reserve sees them (available to unprivileged writers). */
  freeBytes: number;
}

export interface RigOptions {
  /** Size of the pool the rig makes (a loop file). */
  poolBytes: number;
  /** A fresh directory the rig owns (its image file and mount point go there). */
  workDir: string;
}

export interface SoakRig {
  readonly backend: BackendName;
  /** dockerd's storage: `--storage-driver`, `--data-root`, extra `--storage-opt`s. */
  readonly dockerd: { storageDriver: string; dataRoot: string; extraArgs: string[] };
  /**
   * The limit of a container created without `--storage-opt size=`: null where it has none
   * (btrfs, overlay2); devicemapper gives every container a device of the base size.
   */
  readonly defaultLimitBytes: number | null;
  /** Makes and mounts the storage; dockerd starts after it. */
  create(): Promise<void>;
  /** Unmounts and removes it after dockerd stopped; best effort, never throws. */
  destroy(): Promise<void>;
  /** Resolves what `readLimits` needs for a container Docker just created; throws when it cannot. */
  register(containerId: string, limited: boolean): Promise<RigContainer>;
  /** The soak removed the container (`docker rm -f` returned). */
  forget(container: RigContainer): void;
  /** The current limit in bytes of each container whose limit could be read (others are absent). */
  readLimits(containers: readonly RigContainer[]): Promise<Map<string, number>>;
  /** The pool the containers grow into, as the agent measures it for its reserve. */
  poolUsage(): Promise<PoolUsage>;
  /** Takes `bytes` of the pool with something that is not a container (the pool-fill fault). */
  fillPool(bytes: number): Promise<void>;
  /** Gives back everything `fillPool` took. */
  drainPool(): Promise<void>;
  /** At the end, after the agent stopped: what the backend kept that it should not (leak violations). */
  leftovers(atMs: number): Promise<Violation[]>;
  /** Backend lines under the agent config's `pool:` key (beside the soak's reserve), e.g. overcommit. */
  agentPoolLines(): string[];
  /**
   * After the agent's clean stop: the entries of its state directory the backend keeps there
   * beyond the journal and the agent lock (devicemapper: its grow journal, its record of grown
   * devices, its per-device locks), and the leak violations in them (a lock still held, a grow
   * left unfinished). Nothing on btrfs and overlay2.
   */
  checkAgentState(stateDir: string, atMs: number): { allowed: RegExp[]; violations: Violation[] };
  /** Backend figures for the report (after `leftovers`), e.g. what Docker itself left behind. */
  figures(): Record<string, number>;
}
