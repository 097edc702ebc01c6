/**
 * The containerd image store backend. Docker ignores `--storage-opt size=` there, so no container
 * has a limit from Docker; this backend shows each running container's writable-layer usage and
 * the filesystem under the snapshotter root as the pool, and gives containers that opt in with the
 * label `autogrow.size=<size>` a limit of their own: an XFS project quota on the snapshot directory
 * (opt-in-limit.ts), when that filesystem is XFS with enforced project quotas. Those are grown by
 * the normal policy, like overlay2-on-XFS layers (the same mechanics: overlay-xfs/project-quota.ts).
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
 *
 * With project quotas on that filesystem, in addition:
 *   - one `xfs_io -r -c stat <snapshot dir>...` for the layers not seen before (the project id);
 *   - one `xfs_quota report` when any container is limited or asks to be: the limited layers'
 *     usage comes from it and they are not walked;
 *   - only when a labelled container has no project yet (not in dry-run passes): `xfs_quota limit`
 *     on a new project id, `xfs_quota project -s` on the snapshot directory, and reads back.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../../util/errors.js';
import type { DoctorCheck } from '../../contracts/doctor-check.js';
import { assertContainerId, isSafeUint } from '../../docker/ids.js';
import { withGrowProgress, type GrowProgress } from '../grow-error.js';
import type { ProjectQuotaRow } from '../overlay-xfs/parse-quota-report.js';
import { isProjectView } from '../overlay-xfs/backend.js';
import {
  buildProjectSetupCommand,
  readProjectIds,
  readProjectQuotaReport,
  growProjectHardLimit,
  roundUpToLimitGranule,
  setProjectHardLimit,
  type QuotaTools,
} from '../overlay-xfs/project-quota.js';
import {
  SIZE_LABEL,
  initialLimitBytes,
  isAgentProjectId,
  nextAgentProjectId,
  quotaCapability,
  sizeLabel,
  snapshotDirOf,
  type QuotaCapability,
} from './opt-in-limit.js';
import type { ContainerInfo } from '../../docker/model.js';
import { filesystemPool, hasOption, mountOf, statfsUsage, type FilesystemUsage } from '../filesystem.js';
import type {
  BackendDeps,
  ContainerUsage,
  GrowRequest,
  GrowResult,
  LiveUsage,
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
/** What status adds for an unlabelled container when opt-in limits are possible. */
export const CONTAINERD_OPT_IN_HINT = `${CONTAINERD_NO_LIMIT} (label ${SIZE_LABEL}=<size> to opt in)`;

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

/** A layer the agent limits, as the pass's quota report shows it. */
interface LimitedLayer {
  projectId: number;
  hardLimitBytes: number;
  usedBytes: number;
}

interface LayerState {
  pid: number;
  upperDir: string;
  /** The directory the project quota goes on (opt-in-limit.ts), null when the layout is not containerd's. */
  snapshotDir: string | null;
  /** Its XFS project id (0: none); null until read (or when project quotas are not usable). */
  projectId: number | null;
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
  /** Whether project quotas can limit layers under the pool root (read once with the mount). */
  private quota: QuotaCapability | null = null;
  /** containerId -> what readLiveUsage statfs'es, from the last pass that read its limit. */
  private readonly liveTargets = new Map<string, { dir: string; hardLimitBytes: number }>();
  private filesystemTotalBytes = 0;

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
            snapshotDir: snapshotDirOf(overlay.upperDir, overlay.workDir),
            projectId: null,
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
      this.quota = quotaCapability(this.poolRoot, mount);
    }
    this.filesystemTotalBytes = usage.totalBytes;
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

    const limited = new Map<string, LimitedLayer>();
    const limitNotes = new Map<string, string>();
    const quota = this.quota;
    if (quota && 'mountPoint' in quota) {
      await this.quotaPass(quota.mountPoint, resolved, errors, options.dryRun === true, limited, limitNotes);
    } else {
      for (const { container } of resolved) {
        if (sizeLabel(container.labels) === null) continue;
        limitNotes.set(
          container.id,
          `${CONTAINERD_NO_LIMIT}; ${SIZE_LABEL} ignored: ${quota?.why ?? 'the containerd root was not found'}`,
        );
      }
    }
    if (options.partial !== true) {
      for (const id of this.liveTargets.keys()) if (!limited.has(id)) this.liveTargets.delete(id);
    }
    if (pool) {
      let committedBytes = 0;
      for (const layer of limited.values()) committedBytes += layer.hardLimitBytes;
      pool = { ...pool, committedBytes };
    }

    // layers to read this pass: walks under way, never walked, or changed since (token moved or
    // unknown); the limited ones have the quota report's number instead
    const stale = resolved.filter(
      ({ container, layer }) =>
        !limited.has(container.id) &&
        (layer.walk !== null || layer.complete === null || token === null || layer.complete.token !== token),
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
      const limit = limited.get(container.id);
      if (limit) {
        usages.set(container.id, this.limitedUsageRecord(container.id, layer, limit));
        continue;
      }
      const usage = this.usageOf(container.id, layer, token, nowMs);
      const note =
        limitNotes.get(container.id) ??
        (quota && 'mountPoint' in quota && layer.snapshotDir !== null ? CONTAINERD_OPT_IN_HINT : null);
      usages.set(container.id, note ? { ...usage, detail: { ...usage.detail, limit: note } } : usage);
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

  private get tools(): QuotaTools {
    return { runner: this.deps.runner, commandTimeoutMs: this.deps.commandTimeoutMs };
  }

  /**
   * The project-quota part of a pass: project ids of new layers (one xfs_io), one report when any
   * layer is limited or asks to be, the first limit of labelled layers without a project (not in
   * dry-run), then which layers are limited (`limited`) and what status says of the others
   * (`notes`).
   */
  private async quotaPass(
    mountPoint: string,
    resolved: readonly { container: ContainerInfo; layer: LayerState }[],
    errors: Map<string, string>,
    dryRun: boolean,
    limited: Map<string, LimitedLayer>,
    notes: Map<string, string>,
  ): Promise<void> {
    const unread = resolved.filter(({ layer }) => layer.projectId === null && layer.snapshotDir !== null);
    if (unread.length > 0) {
      let ids: Map<string, number>;
      try {
        ids = await readProjectIds(
          this.tools,
          unread.map(({ layer }) => layer.snapshotDir!),
        );
      } catch {
        // one removed snapshot fails the whole batch: ask each on its own
        ids = new Map();
        for (const { container, layer } of unread) {
          try {
            for (const [dir, id] of await readProjectIds(this.tools, [layer.snapshotDir!])) ids.set(dir, id);
          } catch (error) {
            errors.set(container.id, `project id lookup failed: ${errorMessage(error)}`);
          }
        }
      }
      for (const { layer } of unread) {
        const id = ids.get(layer.snapshotDir!);
        if (id !== undefined) layer.projectId = id;
      }
    }
    const wanted = resolved.filter(
      ({ container, layer }) =>
        !errors.has(container.id) &&
        (isAgentProjectId(layer.projectId ?? 0) || sizeLabel(container.labels) !== null),
    );
    if (wanted.length === 0) return;
    let rows: Map<number, ProjectQuotaRow>;
    try {
      rows = await readProjectQuotaReport(this.tools, mountPoint);
    } catch (error) {
      for (const { container } of wanted)
        errors.set(container.id, `xfs_quota report failed: ${errorMessage(error)}`);
      return;
    }
    if (!dryRun) {
      let changed = false;
      for (const { container, layer } of wanted) {
        const label = sizeLabel(container.labels);
        if (!label || 'invalid' in label || layer.snapshotDir === null || layer.projectId === null) continue;
        const hasLimit = (rows.get(layer.projectId)?.hardLimitBytes ?? null) !== null;
        if (layer.projectId !== 0 && (hasLimit || !isAgentProjectId(layer.projectId))) continue;
        try {
          await this.setFirstLimit(mountPoint, container, layer, label.bytes, rows);
          changed = true;
        } catch (error) {
          errors.set(container.id, `${SIZE_LABEL}: setting the limit failed: ${errorMessage(error)}`);
        }
      }
      if (changed) rows = await readProjectQuotaReport(this.tools, mountPoint);
    }
    const holders = new Map<number, number>();
    for (const { layer } of wanted) {
      if (layer.projectId !== null) holders.set(layer.projectId, (holders.get(layer.projectId) ?? 0) + 1);
    }
    for (const { container, layer } of wanted) {
      if (errors.has(container.id)) continue;
      const projectId = layer.projectId;
      const label = sizeLabel(container.labels);
      if (projectId !== null && isAgentProjectId(projectId)) {
        if ((holders.get(projectId) ?? 0) > 1) {
          errors.set(container.id, `XFS project ${projectId} is shared by several containers`);
          continue;
        }
        const row = rows.get(projectId);
        const hardLimitBytes = row?.hardLimitBytes ?? null;
        if (hardLimitBytes === null) {
          notes.set(
            container.id,
            `XFS project ${projectId} has no hard limit${label ? ' (set at the next pass)' : ` (no ${SIZE_LABEL} label to set one from)`}`,
          );
          continue;
        }
        // a project with no blocks at all may be missing from the report
        limited.set(container.id, { projectId, hardLimitBytes, usedBytes: row?.usedBytes ?? 0 });
        this.liveTargets.set(container.id, { dir: layer.upperDir, hardLimitBytes });
        continue;
      }
      if (!label) continue;
      notes.set(
        container.id,
        'invalid' in label
          ? `${CONTAINERD_NO_LIMIT}; ${label.invalid}`
          : layer.snapshotDir === null
            ? `${CONTAINERD_NO_LIMIT}; ${SIZE_LABEL} ignored: ${layer.upperDir} is not an overlayfs snapshot (.../snapshots/<n>/fs beside .../work)`
            : projectId !== null && projectId !== 0
              ? `${CONTAINERD_NO_LIMIT}; ${SIZE_LABEL} ignored: the snapshot is already in XFS project ${projectId}, not one of the agent's`
              : `${SIZE_LABEL}: limit not set yet (set by the agent's next pass)`,
      );
    }
  }

  /**
   * A labelled layer's first limit. The limit goes on a fresh project id first, then the project
   * on the snapshot directory: a crash in between leaves an unused project with a limit (the next
   * id skips it), never a limited container without a limit it asked for for longer than a pass.
   */
  private async setFirstLimit(
    mountPoint: string,
    container: ContainerInfo,
    layer: LayerState,
    labelBytes: number,
    rows: ReadonlyMap<number, ProjectQuotaRow>,
  ): Promise<void> {
    assertContainerId(container.id);
    const dir = layer.snapshotDir!;
    let projectId = layer.projectId ?? 0;
    const usedBytes = Math.max(
      layer.complete?.bytes ?? 0,
      layer.walk?.state.bytes ?? 0,
      rows.get(projectId)?.usedBytes ?? 0,
    );
    const limitBytes = roundUpToLimitGranule(initialLimitBytes(labelBytes, usedBytes));
    if (projectId === 0) {
      projectId = nextAgentProjectId(
        rows.keys(),
        [...this.layers.values()].map((known) => known.projectId ?? 0),
      );
    }
    await setProjectHardLimit(this.tools, mountPoint, projectId, limitBytes);
    if (layer.projectId === 0) {
      await this.deps.runner.run({
        tool: 'xfs_quota',
        args: ['-x', '-c', buildProjectSetupCommand(dir, projectId), mountPoint],
        timeoutMs: this.deps.commandTimeoutMs,
      });
      const readBack = (await readProjectIds(this.tools, [dir])).get(dir);
      if (readBack !== projectId) {
        throw new Error(
          `xfs_quota project reported success but ${dir} has project ${readBack ?? 'none'}, not ${projectId}`,
        );
      }
      layer.projectId = projectId;
    }
    this.deps.logger.info(
      { container: container.name, containerId: container.id, projectId, limitBytes, snapshotDir: dir },
      `${SIZE_LABEL}: limit set on the containerd snapshot`,
    );
  }

  private limitedUsageRecord(containerId: string, layer: LayerState, limit: LimitedLayer): ContainerUsage {
    const snapshot = /\/snapshots\/(\d+)\/fs$/.exec(layer.upperDir)?.[1];
    return {
      containerId,
      driver: this.driver,
      sizeBytes: limit.hardLimitBytes,
      usedBytes: limit.usedBytes,
      inodesUsed: null,
      inodesTotal: null,
      fsType: null,
      detail: {
        upperDir: layer.upperDir,
        ...(snapshot ? { snapshot } : {}),
        projectId: limit.projectId,
        usedSource: 'xfs project quota',
      },
    };
  }

  /** The fill guard's fast path: statfs of a limited upperdir shows its project (isProjectView). */
  async readLiveUsage(containerIds: readonly string[]): Promise<ReadonlyMap<string, LiveUsage>> {
    const result = new Map<string, LiveUsage>();
    const filesystemTotalBytes = this.filesystemTotalBytes;
    await Promise.all(
      containerIds.map(async (containerId) => {
        const target = this.liveTargets.get(containerId);
        if (!target) return;
        const usage = await this.statfs(target.dir).catch(() => null);
        if (!usage || !isProjectView(usage, target.hardLimitBytes, filesystemTotalBytes)) return;
        result.set(containerId, { usedBytes: usage.usedBytes, sizeBytes: usage.totalBytes });
      }),
    );
    return result;
  }

  grow(request: GrowRequest): Promise<GrowResult> {
    return withGrowProgress((progress) => this.growStepByStep(request, progress));
  }

  private async growStepByStep(request: GrowRequest, progress: GrowProgress): Promise<GrowResult> {
    const { container, dryRun } = request;
    assertContainerId(container.id);
    if (!isSafeUint(request.toBytes) || request.toBytes <= 0) {
      throw new Error(`grow target is not a positive byte count: ${request.toBytes}`);
    }
    const layer = this.layers.get(container.id);
    const quota = this.quota;
    if (
      !layer ||
      layer.snapshotDir === null ||
      layer.projectId === null ||
      !isAgentProjectId(layer.projectId)
    ) {
      throw new Error(
        `cannot grow ${container.name}: ${CONTAINERD_NO_LIMIT} and it has no ${SIZE_LABEL} limit`,
      );
    }
    if (!quota || !('mountPoint' in quota))
      throw new Error(`cannot grow ${container.name}: ${quota?.why ?? 'no containerd root'}`);
    const mountPoint = quota.mountPoint;
    const dir = layer.snapshotDir;
    const projectId = layer.projectId;
    // fresh lookups before acting: a stale project id would raise another container's limit
    const fresh = (await readProjectIds(this.tools, [dir])).get(dir);
    if (fresh !== projectId) {
      layer.projectId = null;
      throw new Error(`${dir} now has XFS project ${fresh ?? 'none'}, not ${projectId}: not grown`);
    }
    const result = await growProjectHardLimit(
      this.tools,
      { containerId: container.id, mountPoint, projectId, requestedBytes: request.toBytes, dryRun },
      progress,
    );
    const target = this.liveTargets.get(container.id);
    if (target && !result.dryRun) target.hardLimitBytes = result.toBytes;
    return result;
  }

  async doctor(): Promise<DoctorCheck[]> {
    const read = await this.pool().catch(() => null);
    const quota = this.quota;
    return [
      {
        name: 'containerd root on XFS with project quotas (opt-in limits)',
        ok: quota !== null && 'mountPoint' in quota,
        severity: 'warn',
        detail:
          quota && 'mountPoint' in quota
            ? `${quota.mountPoint} enforces project quotas: a container labelled ${SIZE_LABEL}=<size> gets a limit the agent sets and grows`
            : `opt-in limits (${SIZE_LABEL}) are impossible: ${quota?.why ?? 'the containerd root was not found'}; containers are observed only`,
        ...(quota && 'mountPoint' in quota
          ? {}
          : { fix: 'put the containerd root on XFS mounted with -o pquota to let containers opt in' }),
      },
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
