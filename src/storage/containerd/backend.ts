/**
 * The containerd image store backend: observe only. Docker ignores `--storage-opt size=` there, so
 * no container has a limit and this backend sets none (grow refuses); it shows each running
 * container's writable-layer usage and the filesystem under the snapshotter root as the pool.
 *
 * Per pass, whatever the container count:
 *   - /proc/<pid>/mountinfo of a container not seen before (or restarted: new pid), one file read,
 *     to find its root overlay's upperdir (src/storage/containerd/store.ts); cached after that;
 *   - one statfs of the snapshotter root: the pool, and the pass's change token (used bytes and
 *     free inodes);
 *   - when the token moved since a layer's last complete walk: a bounded walk of the upperdirs
 *     (layer-walk.ts), at most `walkEntryBudget` entries per pass over all containers, the layers
 *     least recently walked first; a walk cut short goes on at the next pass. When the token did
 *     not move, nothing on that filesystem grew or shrank, so the cached sums stand and no layer
 *     is read at all. (The upperdir's own change time is not a usable key: a file appended to in
 *     place changes neither its directory's mtime nor ctime.)
 * A number that is not from a complete walk since the last change is marked in
 * `detail.usedEstimate`, and `status` says so.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../../util/errors.js';
import type { DoctorCheck } from '../../contracts/doctor-check.js';
import type { ContainerInfo } from '../../docker/model.js';
import { filesystemPool, hasOption, mountOf, statfsUsage, type FilesystemUsage } from '../filesystem.js';
import type {
  BackendDeps,
  ContainerUsage,
  GrowRequest,
  GrowResult,
  Observation,
  ObserveOptions,
  PoolUsage,
  StorageBackend,
} from '../types.js';
import { containerRootOverlay, containerdImageStore, type ContainerdImageStore } from './store.js';
import {
  continueLayerWalk,
  isWalkDone,
  nodeWalkFs,
  startLayerWalk,
  type LayerWalk,
  type WalkFs,
} from './layer-walk.js';

/** What status shows instead of a size, and grow's refusal. */
export const CONTAINERD_NO_LIMIT = 'no limit: Docker ignores size on the containerd store';

/**
 * Default entry budget per pass (all layers together). Measured (docs/engines.md): about 30 µs of
 * CPU per entry on a warm cache, so 10,000 entries cost about 0.3 s of CPU, only in passes where the
 * pool's statfs moved.
 */
export const DEFAULT_WALK_ENTRY_BUDGET = 10_000;

export interface ContainerdBackendOptions {
  /** /proc (tests): container mountinfo is read from `<procRoot>/<pid>/mountinfo`. */
  procRoot?: string;
  /** mountinfo of the agent's namespace, for the pool's ro flag (tests). */
  mountInfoFile?: string;
  statfs?: (dir: string) => Promise<FilesystemUsage>;
  walkFs?: WalkFs;
  walkEntryBudget?: number;
}

interface LayerState {
  pid: number;
  upperDir: string;
  snapshotterRoot: string | null;
  /** The last complete walk, and the change token read before it started. */
  complete: { bytes: number; entries: number; atMs: number; token: string | null } | null;
  /** A walk under way (cut short by the budget), with the token read before it started. */
  walk: { state: LayerWalk; token: string | null } | null;
}

export function createContainerdBackend(
  deps: BackendDeps,
  options: ContainerdBackendOptions = {},
): StorageBackend {
  const store = containerdImageStore(deps.dockerInfo);
  if (!store) throw new Error('Docker does not use the containerd image store');
  return new ContainerdBackend(deps, store, options);
}

/** An upperdir from mountinfo is used as a path only when it is absolute and normalised. */
function isCleanAbsolute(dir: string): boolean {
  return path.isAbsolute(dir) && path.normalize(dir) === dir && !dir.includes('\0');
}

class ContainerdBackend implements StorageBackend {
  readonly driver = 'containerd' as const;
  private readonly layers = new Map<string, LayerState>();
  private readonly procRoot: string;
  private readonly statfs: (dir: string) => Promise<FilesystemUsage>;
  private readonly walkFs: WalkFs;
  private readonly walkEntryBudget: number;
  private poolRoot: string | null = null;
  private poolReadOnly: boolean | null = null;

  constructor(
    private readonly deps: BackendDeps,
    private readonly store: ContainerdImageStore,
    private readonly options: ContainerdBackendOptions,
  ) {
    this.procRoot = options.procRoot ?? '/proc';
    this.statfs = options.statfs ?? statfsUsage;
    this.walkFs = options.walkFs ?? nodeWalkFs;
    this.walkEntryBudget = options.walkEntryBudget ?? DEFAULT_WALK_ENTRY_BUDGET;
  }

  /** Where containerd keeps this snapshotter's snapshots when no container has told us yet. */
  private defaultSnapshotterRoots(): string[] {
    const plugin = `io.containerd.snapshotter.v1.${this.store.snapshotter}`;
    return [
      path.join(this.deps.dockerInfo.dockerRootDir, 'containerd', 'daemon', plugin),
      path.join('/var/lib/containerd', plugin),
    ];
  }

  private async resolveLayer(container: ContainerInfo): Promise<LayerState> {
    const known = this.layers.get(container.id);
    if (known && known.pid === container.pid) return known;
    if (!Number.isSafeInteger(container.pid) || container.pid <= 0) {
      throw new Error(`container has no init process (pid ${container.pid})`);
    }
    const mountinfo = await readFile(path.join(this.procRoot, String(container.pid), 'mountinfo'), 'utf8');
    const overlay = containerRootOverlay(mountinfo);
    if (!overlay) {
      throw new Error(
        `the container's root is not an overlay (snapshotter ${this.store.snapshotter}): no writable layer to read`,
      );
    }
    if (!isCleanAbsolute(overlay.upperDir))
      throw new Error(`unusable upperdir ${JSON.stringify(overlay.upperDir)}`);
    // a restart keeps the snapshot: keep its sums when the upperdir is the same
    const state: LayerState =
      known && known.upperDir === overlay.upperDir
        ? { ...known, pid: container.pid }
        : {
            pid: container.pid,
            upperDir: overlay.upperDir,
            snapshotterRoot: overlay.snapshotterRoot,
            complete: null,
            walk: null,
          };
    this.layers.set(container.id, state);
    return state;
  }

  private async pool(): Promise<{ pool: PoolUsage; token: string } | null> {
    if (this.poolRoot === null) {
      const fromLayers = [...this.layers.values()].find((layer) => layer.snapshotterRoot)?.snapshotterRoot;
      const candidates = fromLayers ? [fromLayers] : this.defaultSnapshotterRoots();
      for (const candidate of candidates) {
        const found = await stat(candidate).then(
          (s) => s.isDirectory(),
          () => false,
        );
        if (found) {
          this.poolRoot = candidate;
          break;
        }
      }
      if (this.poolRoot === null) return null;
    }
    const usage = await this.statfs(this.poolRoot);
    if (this.poolReadOnly === null) {
      const mount = await mountOf(this.poolRoot, this.options.mountInfoFile).catch(() => null);
      this.poolReadOnly = mount ? hasOption(mount, 'ro') : false;
    }
    return {
      pool: filesystemPool(this.poolRoot, usage, 0, this.poolReadOnly),
      token: `${usage.usedBytes}:${usage.freeInodes}`,
    };
  }

  async observe(
    containers: readonly ContainerInfo[],
    nowMs: number,
    options: ObserveOptions = {},
  ): Promise<Observation> {
    const errors = new Map<string, string>();
    const usages = new Map<string, ContainerUsage>();
    if (options.partial !== true) {
      const seen = new Set(containers.map((container) => container.id));
      for (const id of this.layers.keys()) if (!seen.has(id)) this.layers.delete(id);
    }
    const resolved: { container: ContainerInfo; layer: LayerState }[] = [];
    for (const container of containers) {
      try {
        resolved.push({ container, layer: await this.resolveLayer(container) });
      } catch (error) {
        errors.set(container.id, `writable layer lookup failed: ${errorMessage(error)}`);
      }
    }
    let pool: PoolUsage | null = null;
    let token: string | null = null;
    try {
      const read = await this.pool();
      pool = read?.pool ?? null;
      token = read?.token ?? null;
    } catch (error) {
      this.deps.logger.warn({ err: errorMessage(error) }, 'containerd pool statfs failed');
    }

    // layers to read this pass: walks under way, never walked, or changed since (token moved or unknown)
    const stale = resolved.filter(
      ({ layer }) =>
        layer.walk !== null || layer.complete === null || token === null || layer.complete.token !== token,
    );
    stale.sort((a, b) => (a.layer.complete?.atMs ?? -1) - (b.layer.complete?.atMs ?? -1));
    let budget = this.walkEntryBudget;
    for (const { container, layer } of stale) {
      if (budget <= 0) break;
      layer.walk ??= { state: startLayerWalk(layer.upperDir, nowMs), token };
      try {
        budget -= await continueLayerWalk(layer.walk.state, budget, this.walkFs);
      } catch (error) {
        layer.walk = null;
        errors.set(container.id, `writable layer walk failed: ${errorMessage(error)}`);
        continue;
      }
      if (isWalkDone(layer.walk.state)) {
        const { state, token: walkToken } = layer.walk;
        layer.complete = {
          bytes: state.bytes,
          entries: state.entries,
          atMs: state.startedAtMs,
          token: walkToken,
        };
        layer.walk = null;
      }
    }

    for (const { container, layer } of resolved) {
      if (errors.has(container.id)) continue;
      usages.set(container.id, this.usageOf(container.id, layer, token, nowMs));
    }
    return { takenAtMs: nowMs, driver: this.driver, pool, containers: usages, errors };
  }

  private usageOf(
    containerId: string,
    layer: LayerState,
    token: string | null,
    nowMs: number,
  ): ContainerUsage {
    let usedBytes: number;
    let entries: number;
    let estimate: string | null = null;
    const complete = layer.complete;
    const fresh = complete !== null && layer.walk === null && token !== null && complete.token === token;
    if (complete && (fresh || layer.walk === null)) {
      usedBytes = complete.bytes;
      entries = complete.entries;
      if (!fresh)
        estimate = `from a walk ${Math.round((nowMs - complete.atMs) / 1000)}s ago; the layer may have changed since`;
    } else if (complete) {
      usedBytes = complete.bytes;
      entries = complete.entries;
      estimate = `from a walk ${Math.round((nowMs - complete.atMs) / 1000)}s ago; a new walk is under way`;
    } else if (layer.walk) {
      usedBytes = layer.walk.state.bytes;
      entries = layer.walk.state.entries;
      estimate = `at least: walk under way (${entries} entries so far, continues next pass)`;
    } else {
      // the budget went to other layers this pass: unknown (not an error), walked next pass
      return this.usageRecord(
        containerId,
        layer,
        null,
        null,
        'not walked yet (walk budget spent on other layers; next pass)',
      );
    }
    return this.usageRecord(containerId, layer, usedBytes, entries, estimate);
  }

  private usageRecord(
    containerId: string,
    layer: LayerState,
    usedBytes: number | null,
    entries: number | null,
    estimate: string | null,
  ): ContainerUsage {
    const snapshot = /\/snapshots\/(\d+)\/fs$/.exec(layer.upperDir)?.[1];
    return {
      containerId,
      driver: this.driver,
      sizeBytes: null,
      usedBytes,
      inodesUsed: entries,
      inodesTotal: null,
      fsType: null,
      detail: {
        upperDir: layer.upperDir,
        ...(snapshot ? { snapshot } : {}),
        usedSource: 'upperdir walk',
        limit: CONTAINERD_NO_LIMIT,
        ...(estimate ? { usedEstimate: estimate } : {}),
      },
    };
  }

  grow(request: GrowRequest): Promise<GrowResult> {
    return Promise.reject(new Error(`cannot grow ${request.container.name}: ${CONTAINERD_NO_LIMIT}`));
  }

  async doctor(): Promise<DoctorCheck[]> {
    const read = await this.pool().catch(() => null);
    return [
      {
        name: 'containerd snapshotter root',
        ok: read !== null,
        severity: 'warn',
        detail: read
          ? `pool: ${read.pool.name}; writable layers are observed (upperdir walk), ${CONTAINERD_NO_LIMIT}`
          : `no snapshotter root found (${this.defaultSnapshotterRoots().join(', ')}) and no running container told where it is`,
        ...(read ? {} : { fix: 'start a container, or run the agent where containerd’s root is visible' }),
      },
    ];
  }
}
