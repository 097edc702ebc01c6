/**
 * The storage port: each backend (devicemapper, btrfs, overlay2 on XFS) observes usage for all
 * containers in a fixed, small number of commands per pass and grows one container safely.
 * The policy engine and the reconcile loop only see these types.
 */
import type { DoctorCheck } from '../contracts/doctor-check.js';
import type { ContainerInfo } from '../docker/model.js';

/** The storage drivers the agent grows: the one list (the type is read from it). */
export const SUPPORTED_STORAGE_DRIVERS = ['devicemapper', 'btrfs', 'overlay2'] as const;
/** Plus `containerd`: Docker's containerd image store (Docker sets no limits there; the agent sets opt-in ones). */
export type StorageDriverName = (typeof SUPPORTED_STORAGE_DRIVERS)[number] | 'containerd';

/** Usage of one container's writable layer, as observed in one pass. */
export interface ContainerUsage {
  containerId: string;
  driver: StorageDriverName;
  /** Current size: the thin device length or the quota limit. Null when the container has no limit. */
  sizeBytes: number | null;
  /** Bytes used inside that size (filesystem used for dm, qgroup referenced/exclusive or project usage). */
  usedBytes: number | null;
  /**
   * Part of usedBytes that the pool's free space does not show yet (btrfs: reservations for data
   * still in the page cache). The pool budget counts it as headroom, not as used, so the reserve
   * is not promised twice. Absent: 0.
   */
  inFlightBytes?: number;
  /**
   * Read from counters that move with every write (btrfs: the qgroup's sysfs counters), not from
   * a snapshot that lags (`qgroup show`'s committed numbers). Only such a reading is still current
   * while the backend's change token read before it stands still (StorageBackend.readChangeToken).
   */
  readLive?: boolean;
  inodesUsed: number | null;
  inodesTotal: number | null;
  /** Filesystem inside a dm thin device (xfs, ext4); null for quota backends. */
  fsType: string | null;
  /** Backend-specific detail for status and debugging (device name, qgroup, project id...). */
  detail: Readonly<Record<string, string | number>>;
}

export type PoolMode = 'rw' | 'ro' | 'out_of_data_space' | 'fail';

/** The shared space containers grow into: a thin pool, or the backing filesystem for quota drivers. */
export interface PoolUsage {
  /** Pool name (dm device name) or the data-root path. */
  name: string;
  kind: 'thin-pool-lvm' | 'thin-pool-loop' | 'thin-pool' | 'filesystem';
  dataUsedBytes: number;
  dataTotalBytes: number;
  metadataUsedBytes: number | null;
  metadataTotalBytes: number | null;
  mode: PoolMode;
  needsCheck: boolean;
  /** Sum of container sizes (thin device lengths or quota limits). */
  committedBytes: number;
}

export interface Observation {
  /** Milliseconds since the epoch when the pass started (injected clock). */
  takenAtMs: number;
  driver: StorageDriverName;
  pool: PoolUsage | null;
  /** Usage per container id, for containers the backend could observe. */
  containers: ReadonlyMap<string, ContainerUsage>;
  /** Per-container observation errors: the rest of the pass stands. */
  errors: ReadonlyMap<string, string>;
  /**
   * devicemapper: every grown device dockerd does not cache at its grown size yet, running or
   * stopped (a stopped container has no usage above, yet it is the one whose next start is at
   * risk). Absent for other drivers.
   */
  unpersisted?: readonly UnpersistedDevice[];
}

/** A grown devicemapper device that is not persistent yet (src/policy/persistence.ts). */
export interface UnpersistedDevice {
  containerId: string;
  deviceName: string;
  state: 'held' | 'unheld';
  running: boolean;
  grownBytes: number;
  /** The size dockerd caches (null when unknown). */
  dockerSizeBytes: number | null;
}

export interface GrowRequest {
  container: ContainerInfo;
  /** Size the backend believed the container had when the decision was made. */
  fromBytes: number;
  toBytes: number;
  dryRun: boolean;
}

export interface GrowStep {
  /** A short name (`dmsetup load`, `xfs_growfs`, `btrfs qgroup limit`, `quota file`) */
  name: string;
  /** The exact command as an argv, for dry-run plans and logs. */
  argv?: readonly string[];
}

export interface GrowResult {
  containerId: string;
  fromBytes: number;
  /** Size read back after acting. */
  toBytes: number;
  steps: readonly GrowStep[];
  dryRun: boolean;
  /** True when nothing had to be done (already at or above the target). */
  noop: boolean;
}

export interface ObserveOptions {
  /**
   * True when `containers` is a subset of the running containers (a pass for one container: a fill
   * guard look, a manual grow): per-container caches of the others must be kept, not pruned.
   */
  partial?: boolean;
  /** True for a dry-run pass (`status`, `once --dry-run`): observe only, never repair anything. */
  dryRun?: boolean;
}

/** One container's usage read on the fill guard's fast path (no process started). */
export interface LiveUsage {
  usedBytes: number;
  /** The limit the kernel enforces right now; null when there is none. */
  sizeBytes: number | null;
}

export interface StorageBackend {
  readonly driver: StorageDriverName;
  /** Observe every given container plus the pool in a fixed number of commands. */
  observe(
    containers: readonly ContainerInfo[],
    nowMs: number,
    options?: ObserveOptions,
  ): Promise<Observation>;
  /**
   * The fill guard's fast path (src/agent/guard.ts): live usage of containers that the last
   * observe() resolved, read WITHOUT starting a process (sysfs counters, statfs), so it can run
   * every few tens of milliseconds. Containers it cannot read that way are simply absent from the
   * result; never throws for one container. Optional: a backend without it is guarded only by
   * the regular passes.
   */
  readLiveUsage?(containerIds: readonly string[]): Promise<ReadonlyMap<string, LiveUsage>>;
  /**
   * A host-wide change token read without a process (btrfs: the filesystem's space counters):
   * two equal tokens mean no container's usage moved in between, so the fill guard and the
   * regular passes can skip reading containers. Null when unavailable (then nothing is skipped).
   * Optional, synchronous and cheap: called at every guard tick.
   */
  readChangeToken?(): string | null;
  /** Grow one container to `toBytes` (never shrinks; re-reads after acting). */
  grow(request: GrowRequest): Promise<GrowResult>;
  /** Called at agent start: finish or roll back grows a crash interrupted; re-apply persistence. */
  recover?(containers: readonly ContainerInfo[]): Promise<void>;
  /** Called when Docker reports a container stopped (dm: re-create the grown device). */
  onContainerStopped?(container: ContainerInfo): Promise<void>;
  /** Grow the shared pool to at least `toBytes`; optional. */
  growPool?(
    toBytes: number,
    dryRun: boolean,
  ): Promise<{ fromBytes: number; toBytes: number; steps: readonly GrowStep[] }>;
  /** Host checks for `doctor`. */
  doctor(): Promise<DoctorCheck[]>;
}

/** What every backend factory receives from the composition root (src/agent/app.ts). */
export interface BackendDeps {
  runner: import('../exec/runner.js').CommandRunner;
  docker: import('../docker/inventory-port.js').DockerApi;
  dockerInfo: import('../docker/model.js').DockerInfo;
  logger: import('../log/logger.js').Logger;
  /** The agent's own state directory (default /var/lib/docker-autogrow): locks, intent logs. */
  stateDir: string;
  /** Default per-command timeout. */
  commandTimeoutMs: number;
}
