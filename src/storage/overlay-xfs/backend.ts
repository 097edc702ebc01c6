/**
 * The overlay2-on-XFS storage backend: with the data root on XFS mounted with project quotas,
 * `--storage-opt size=` gives the container's layer directory (`<dataRoot>/overlay2/<mountId>`) its
 * own XFS project id and a hard block limit on it. Docker sets that limit only when it creates the
 * layer, so a raised limit persists over container and daemon restarts.
 *
 * Per pass, whatever the container count:
 *   - one `xfs_quota -x -c 'report -p -b -N -n' <mount>` (usage and limits of every project);
 *   - mount ids from Docker's layer store (file reads, cached per container);
 *   - project ids: one `xfs_io -r -c stat <dir>...` for the containers not seen before (a layer's
 *     project id never changes), nothing in steady state;
 *   - statfs of the data root for the pool.
 *
 * Between passes the fill guard reads live usage through `readLiveUsage`: one statfs of each
 * asked container's layer directory, no process. With project quotas enforced, statfs of a
 * directory carrying PROJINHERIT reports its project's limit as the size and the project's
 * usage including delayed-allocation reservations (kernel xfs_qm_statvfs); Docker sets that
 * flag and the project id on the layer directory. The numbers are trusted only when the size is
 * the hard limit of the container's project seen in the last report (see `isProjectView`).
 *
 * Grow: `xfs_quota -x -c 'limit -p bsoft=0 bhard=<bytes> <projid>' <mount>`. The -c string is
 * parsed by xfs_quota itself, so it is built only from two integers the agent computed and checked
 * (nothing Docker wrote goes into it); then the report is read again to verify.
 */
import { errorMessage } from '../../util/errors.js';
import { withGrowProgress, type GrowProgress } from '../grow-error.js';
import path from 'node:path';
import { assertContainerId, isSafeUint } from '../../docker/ids.js';
import {
  buildLimitCommand,
  readProjectIds,
  readProjectQuotaReport,
  growProjectHardLimit,
  type QuotaTools,
} from './project-quota.js';
import type { ContainerInfo } from '../../docker/model.js';
import {
  FS_MAGIC,
  filesystemPool,
  hasOption,
  mountOf,
  statfsUsage,
  type FilesystemUsage,
  type MountEntry,
} from '../filesystem.js';
import { assertDataRoot, pathUnderDataRoot, readMountId } from '../layerdb.js';
import type { DoctorCheck } from '../../contracts/doctor-check.js';
import type {
  BackendDeps,
  ContainerUsage,
  GrowRequest,
  GrowResult,
  LiveUsage,
  Observation,
  ObserveOptions,
  StorageBackend,
} from '../types.js';
import type { ProjectQuotaRow } from './parse-quota-report.js';

export { buildLimitCommand };

export interface OverlayXfsBackendOptions {
  /** mountinfo to read (tests); default /proc/self/mountinfo. */
  mountInfoFile?: string;
  /** statfs of the data root and of layer dirs (tests); default statfsUsage (a syscall, no process). */
  statfs?: (dir: string) => Promise<FilesystemUsage>;
}

/** What `readLiveUsage` needs of a container, kept from the passes that observed it. */
interface LiveTarget {
  layerDir: string;
  projectId: number;
  /** The project's hard limit in the last report that showed it (or the last grow's read-back). */
  hardLimitBytes: number;
}

/** xfs_quota reports in KiB, rounded down; statfs in whole filesystem blocks. */
const REPORT_GRANULE_BYTES = 1024;

/**
 * Whether a statfs of a project's directory shows that project, not the whole filesystem: the
 * kernel substitutes the project's limit for the size only when quotas are enforced, the
 * directory has PROJINHERIT, and the limit is below the filesystem size; it takes the soft limit
 * when one is set. So the size must be below the filesystem's and equal (up to the report's KiB
 * rounding) to the hard limit the last report showed for the project.
 */
export function isProjectView(
  usage: FilesystemUsage,
  hardLimitBytes: number,
  filesystemTotalBytes: number,
): boolean {
  const excessBytes = usage.totalBytes - hardLimitBytes;
  return (
    usage.typeMagic === FS_MAGIC.xfs &&
    usage.totalBytes < filesystemTotalBytes &&
    excessBytes >= 0 &&
    excessBytes < REPORT_GRANULE_BYTES &&
    usage.usedBytes >= 0 &&
    usage.usedBytes <= usage.totalBytes
  );
}

export function createOverlayXfsBackend(
  deps: BackendDeps,
  options: OverlayXfsBackendOptions = {},
): StorageBackend {
  return new OverlayXfsBackend(deps, options);
}

class OverlayXfsBackend implements StorageBackend {
  readonly driver = 'overlay2' as const;
  private readonly dataRoot: string;
  /** containerId -> { mountId, projectId }: neither changes during a container's life. */
  private readonly layers = new Map<string, { mountId: string; projectId: number }>();
  private mount: MountEntry | null = null;
  /** containerId -> what readLiveUsage statfs'es and checks against, from the passes. */
  private readonly liveTargets = new Map<string, LiveTarget>();
  /** Size of the data root's filesystem at the last pass (a project view is always smaller). */
  private filesystemTotalBytes = 0;
  private readonly statfs: (dir: string) => Promise<FilesystemUsage>;

  constructor(
    private readonly deps: BackendDeps,
    private readonly options: OverlayXfsBackendOptions,
  ) {
    this.dataRoot = assertDataRoot(deps.dockerInfo.dockerRootDir);
    this.statfs = options.statfs ?? statfsUsage;
  }

  /** The XFS mount holding the data root (xfs_quota wants the mount point). */
  private async xfsMount(): Promise<MountEntry> {
    if (this.mount) return this.mount;
    const mount = await mountOf(this.dataRoot, this.options.mountInfoFile);
    if (!mount) throw new Error(`no mount found for ${this.dataRoot}`);
    if (mount.fsType !== 'xfs') {
      throw new Error(`${this.dataRoot} is on ${mount.fsType} (${mount.mountPoint}), not XFS`);
    }
    this.mount = mount;
    return mount;
  }

  private get tools(): QuotaTools {
    return { runner: this.deps.runner, commandTimeoutMs: this.deps.commandTimeoutMs };
  }

  private async report(): Promise<Map<number, ProjectQuotaRow>> {
    const mount = await this.xfsMount();
    return readProjectQuotaReport(this.tools, mount.mountPoint);
  }

  private layerDir(mountId: string): string {
    return pathUnderDataRoot(this.dataRoot, 'overlay2', mountId);
  }

  private projectIds(dirs: readonly string[]): Promise<Map<string, number>> {
    return readProjectIds(this.tools, dirs);
  }

  /**
   * Mount id and project id of each container, reading only what is not cached. A container whose
   * directory vanished (removed meanwhile) makes xfs_io fail for the whole batch: then each new
   * directory is asked on its own so one removal does not blind the pass.
   */
  private async resolveLayers(
    containers: readonly ContainerInfo[],
    errors: Map<string, string>,
  ): Promise<void> {
    const pending: { container: ContainerInfo; mountId: string; dir: string }[] = [];
    for (const container of containers) {
      if (this.layers.has(container.id)) continue;
      try {
        const mountId = await readMountId(this.dataRoot, 'overlay2', container.id);
        const dir = this.layerDir(mountId);
        const upperDir = container.graphDriverData.UpperDir;
        if (upperDir !== undefined && upperDir !== path.join(dir, 'diff')) {
          throw new Error(`UpperDir ${upperDir} does not match layer ${mountId}`);
        }
        pending.push({ container, mountId, dir });
      } catch (error) {
        errors.set(container.id, `layer lookup failed: ${errorMessage(error)}`);
      }
    }
    if (pending.length === 0) return;
    let ids: Map<string, number>;
    try {
      ids = await this.projectIds(pending.map((entry) => entry.dir));
    } catch {
      ids = new Map();
      for (const entry of pending) {
        try {
          for (const [dir, id] of await this.projectIds([entry.dir])) ids.set(dir, id);
        } catch (error) {
          errors.set(entry.container.id, `project id lookup failed: ${errorMessage(error)}`);
        }
      }
    }
    for (const entry of pending) {
      const projectId = ids.get(entry.dir);
      if (projectId === undefined) {
        if (!errors.has(entry.container.id))
          errors.set(entry.container.id, `xfs_io did not report ${entry.dir}`);
        continue;
      }
      this.layers.set(entry.container.id, { mountId: entry.mountId, projectId });
    }
  }

  /**
   * `partial`: the containers are a subset of the running ones (one container after a start, a
   * guard look, a manual grow): the caches of the others are kept. A whole pass drops what it did
   * not see (stopped or removed containers), so the caches stay as large as the running set.
   */
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
      for (const id of this.liveTargets.keys()) if (!seen.has(id)) this.liveTargets.delete(id);
    }

    const overlay = containers.filter((container) => {
      if (container.storageDriver === 'overlay2') return true;
      errors.set(container.id, `storage driver is ${container.storageDriver}, not overlay2`);
      return false;
    });
    const fsUsage = await this.statfs(this.dataRoot);
    const mount = await this.xfsMount();
    if (!hasOption(mount, 'prjquota', 'pquota') || hasOption(mount, 'pqnoenforce')) {
      // The host cannot be served: say so for every container, keep the pool for status.
      const why =
        `XFS at ${mount.mountPoint} is mounted without enforced project quotas (${mount.superOptions.join(',')}): ` +
        'Docker cannot limit container sizes, nothing can be observed or grown (fix: mount it with -o pquota)';
      for (const container of overlay) errors.set(container.id, why);
      return {
        takenAtMs: nowMs,
        driver: 'overlay2',
        pool: filesystemPool(this.dataRoot, fsUsage, 0, false),
        containers: usages,
        errors,
      };
    }
    await this.resolveLayers(overlay, errors);
    const rows = await this.report();
    // a project id shared by several containers cannot be grown for one of them
    const holders = new Map<number, number>();
    for (const container of overlay) {
      const layer = this.layers.get(container.id);
      if (layer) holders.set(layer.projectId, (holders.get(layer.projectId) ?? 0) + 1);
    }

    this.filesystemTotalBytes = fsUsage.totalBytes;
    let committedBytes = 0;
    for (const container of overlay) {
      const layer = this.layers.get(container.id);
      // re-added below when this pass can vouch for it
      this.liveTargets.delete(container.id);
      if (!layer) continue;
      const row = rows.get(layer.projectId);
      const dockerLimited = container.storageOptSizeBytes !== null;
      const detail: Record<string, string | number> = {
        projectId: layer.projectId,
        layerDir: this.layerDir(layer.mountId),
        mountId: layer.mountId,
      };
      let sizeBytes: number | null = null;
      if (dockerLimited) {
        if (layer.projectId === 0) {
          errors.set(container.id, `layer ${layer.mountId} has no XFS project id although Docker limits it`);
          continue;
        }
        if ((holders.get(layer.projectId) ?? 0) > 1) {
          errors.set(container.id, `XFS project ${layer.projectId} is shared by several containers`);
          continue;
        }
        sizeBytes = row?.hardLimitBytes ?? null;
        if (sizeBytes !== null) {
          committedBytes += sizeBytes;
          this.liveTargets.set(container.id, {
            layerDir: this.layerDir(layer.mountId),
            projectId: layer.projectId,
            hardLimitBytes: sizeBytes,
          });
        }
      } else {
        detail.limit = 'no limit: created without --storage-opt size';
      }
      usages.set(container.id, {
        containerId: container.id,
        driver: 'overlay2',
        sizeBytes,
        // a project with no blocks at all may be missing from the report
        usedBytes: dockerLimited ? (row?.usedBytes ?? 0) : null,
        inodesUsed: null,
        inodesTotal: null,
        fsType: null,
        detail,
      });
    }
    return {
      takenAtMs: nowMs,
      driver: 'overlay2',
      pool: filesystemPool(this.dataRoot, fsUsage, committedBytes, false),
      containers: usages,
      errors,
    };
  }

  async readLiveUsage(containerIds: readonly string[]): Promise<ReadonlyMap<string, LiveUsage>> {
    const result = new Map<string, LiveUsage>();
    const statfs = this.statfs;
    const filesystemTotalBytes = this.filesystemTotalBytes;
    await Promise.all(
      containerIds.map(async (containerId) => {
        const target = this.liveTargets.get(containerId);
        if (!target) return;
        let usage: FilesystemUsage;
        try {
          usage = await statfs(target.layerDir);
        } catch {
          // the layer is gone (container removed): the regular pass notices
          return;
        }
        // a limit changed behind the agent's back, or a soft limit below the hard one: the
        // numbers are not the ones the policy works with, leave it to the regular pass
        if (!isProjectView(usage, target.hardLimitBytes, filesystemTotalBytes)) return;
        result.set(containerId, { usedBytes: usage.usedBytes, sizeBytes: usage.totalBytes });
      }),
    );
    return result;
  }

  /** After a verified grow the fast path must expect the new limit, not wait for the next pass. */
  private noteLimit(containerId: string, projectId: number, hardLimitBytes: number): void {
    const target = this.liveTargets.get(containerId);
    if (!target) return;
    if (target.projectId !== projectId) this.liveTargets.delete(containerId);
    else target.hardLimitBytes = hardLimitBytes;
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
    if (container.storageOptSizeBytes === null) {
      throw new Error(`container ${container.id} was created without a size limit: never grown`);
    }
    // fresh lookups before acting: a stale project id would raise another container's limit
    this.layers.delete(container.id);
    const errors = new Map<string, string>();
    await this.resolveLayers([container], errors);
    const layer = this.layers.get(container.id);
    if (!layer) throw new Error(errors.get(container.id) ?? `no layer for container ${container.id}`);
    const projectId = layer.projectId;
    const mount = await this.xfsMount();
    const result = await growProjectHardLimit(
      this.tools,
      {
        containerId: container.id,
        mountPoint: mount.mountPoint,
        projectId,
        requestedBytes: request.toBytes,
        dryRun,
      },
      progress,
    );
    if (!result.dryRun || result.noop) this.noteLimit(container.id, projectId, result.toBytes);
    return result;
  }

  async doctor(): Promise<DoctorCheck[]> {
    const checks: DoctorCheck[] = [];
    const root = this.dataRoot;
    for (const tool of ['xfs_quota', 'xfs_io'] as const) {
      try {
        const { stdout } = await this.deps.runner.run({
          tool,
          args: ['-V'],
          timeoutMs: this.deps.commandTimeoutMs,
        });
        checks.push({ name: `${tool} installed`, ok: true, severity: 'error', detail: stdout.trim() });
      } catch (error) {
        checks.push({
          name: `${tool} installed`,
          ok: false,
          severity: 'error',
          detail: errorMessage(error),
          fix: `apt-get install xfsprogs (or set binaries.${tool})`,
        });
      }
    }
    let mount: MountEntry | null = null;
    try {
      const usage = await statfsUsage(root);
      mount = await mountOf(root, this.options.mountInfoFile);
      // mountinfo names the filesystem; statfs agrees on a real host (its magic is shown on mismatch)
      const onXfs = mount?.fsType === 'xfs';
      checks.push({
        name: 'data root on XFS',
        ok: onXfs,
        severity: 'error',
        detail: onXfs
          ? `${root} is on XFS (${mount?.source} at ${mount?.mountPoint})`
          : `${root} is on ${mount?.fsType ?? 'an unknown filesystem'} (statfs type 0x${usage.typeMagic.toString(16)}${usage.typeMagic === FS_MAGIC.xfs ? ', XFS' : ''}), not XFS: overlay2 size limits need XFS with project quotas`,
      });
      if (!onXfs) mount = null;
    } catch (error) {
      checks.push({
        name: 'data root on XFS',
        ok: false,
        severity: 'error',
        detail: errorMessage(error),
      });
    }
    if (mount) {
      const enforced = hasOption(mount, 'prjquota', 'pquota');
      const accountingOnly = hasOption(mount, 'pqnoenforce');
      checks.push({
        name: 'XFS project quotas enforced',
        ok: enforced && !accountingOnly,
        severity: 'error',
        detail: enforced
          ? accountingOnly
            ? `${mount.mountPoint} accounts project quotas but does not enforce them (pqnoenforce)`
            : `${mount.mountPoint} mounted with ${mount.superOptions.join(',')}`
          : `${mount.mountPoint} is mounted without pquota/prjquota (${mount.superOptions.join(',')}): ` +
            'Docker cannot limit container size and there is nothing to grow',
        fix:
          enforced && !accountingOnly
            ? undefined
            : `mount ${mount.source} with -o pquota (fstab; for the root filesystem: rootflags=pquota on the kernel command line)`,
      });
    }
    checks.push(...(await this.unlimitedContainersCheck()));
    return checks;
  }

  private async unlimitedContainersCheck(): Promise<DoctorCheck[]> {
    try {
      const ids = await this.deps.docker.listContainerIds();
      const containers = (await Promise.all(ids.map((id) => this.deps.docker.inspectContainer(id)))).filter(
        (container): container is ContainerInfo => container !== null,
      );
      const unlimited = containers.filter((container) => container.storageOptSizeBytes === null);
      return [
        {
          name: 'containers have a size limit',
          ok: unlimited.length === 0,
          severity: 'warn',
          detail:
            unlimited.length === 0
              ? `all ${containers.length} containers have a size limit`
              : `${unlimited.length} of ${containers.length} containers have no size limit and are observed only, ` +
                `never grown: ${unlimited.map((container) => container.name).join(', ')}`,
          fix: unlimited.length === 0 ? undefined : 'create containers with --storage-opt size=<bytes>',
        },
      ];
    } catch (error) {
      return [
        {
          name: 'containers have a size limit',
          ok: false,
          severity: 'warn',
          detail: `could not list containers: ${errorMessage(error)}`,
        },
      ];
    }
  }
}
