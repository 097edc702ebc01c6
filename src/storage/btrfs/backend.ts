/**
 * The btrfs storage backend: Docker's btrfs driver gives every container layer its own subvolume
 * and limits `--storage-opt size=` with a qgroup limit on referenced bytes (max_rfer; verified on
 * the real system: Docker sets "Max referenced", "Max exclusive" stays none).
 *
 * Per pass, whatever the container count:
 *   - one `btrfs qgroup show --raw -re <dataRoot>` (limits, committed usage, quotas still on?);
 *   - live usage from sysfs file reads (referenced + reservations; see sysfs.ts for why);
 *   - mount ids from Docker's layer store (file reads, cached per container);
 *   - `btrfs subvolume list <dataRoot>` only when a mount id not seen before appears;
 *   - statfs of the data root for the pool.
 *
 * Between passes the fill guard reads the live counters of containers near their limit through
 * `readLiveUsage` (sysfs file reads only, for the qgroups the last pass resolved).
 *
 * Grow: `btrfs qgroup limit <bytes> 0/<subvolid> <dataRoot>`, re-read and verify (sysfs
 * max_referenced when live counters are available, else `qgroup show`), then rewrite Docker's
 * quota file atomically so `docker restart` re-applies the grown limit. With live counters, one
 * process (the limit itself): the layer's qgroup was matched by `subvolume list` and its path
 * cross-checked against `qgroup show` by the last whole-host pass, and a layer's subvolume never
 * changes (mount ids are random and never reused). Without them, `qgroup show` cross-checks the
 * path before acting and verifies after.
 */
import { errorMessage } from '../../util/errors.js';
import { withGrowProgress, type GrowProgress } from '../grow-error.js';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { assertContainerId, isLayerHash, isSafeUint } from '../../docker/ids.js';
import type { ContainerInfo } from '../../docker/model.js';
import { isCommandError } from '../../exec/runner.js';
import { FS_MAGIC, filesystemPool, statfsUsage } from '../filesystem.js';
import { assertDataRoot, pathUnderDataRoot, readMountId } from '../layerdb.js';
import type { DoctorCheck } from '../../contracts/doctor-check.js';
import type {
  BackendDeps,
  ContainerUsage,
  GrowRequest,
  GrowResult,
  GrowStep,
  LiveUsage,
  Observation,
  ObserveOptions,
  StorageBackend,
} from '../types.js';
import { parseFilesystemUuid } from './parse-filesystem-show.js';
import { isQuotasDisabledError, parseQgroupShow, type QgroupRow } from './parse-qgroup-show.js';
import { dockerSubvolumesByMountId, parseSubvolumeList } from './parse-subvolume-list.js';
import { quotaFilePath, readQuotaFile, writeQuotaFile } from './quota-file.js';
import type { QgroupId } from './parse-qgroup-show.js';
import {
  DEFAULT_BTRFS_SYSFS_ROOT,
  FilesystemChangeReader,
  LiveQgroupReader,
  qgroupSysfsDir,
  readLiveQgroup,
  readLiveQgroupUsage,
  readQuotaFlags,
} from './sysfs.js';

export interface BtrfsBackendOptions {
  /** sysfs root for live qgroup counters; null: use `qgroup show`'s committed numbers only. */
  sysfsRoot?: string | null;
  /** Replaces the quota file writer (fault injection in tests). */
  writeQuotaFile?: (dataRoot: string, mountId: string, bytes: number) => void;
  /**
   * Live check before acting that a directory is a btrfs subvolume root (default: inode 256).
   * Replaced only by unit tests, whose data root is an ordinary directory.
   */
  checkSubvolumeRoot?: (dir: string) => Promise<void>;
}

/** The inode number of every btrfs subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID). */
const SUBVOLUME_ROOT_INODE = 256;

async function assertSubvolumeRoot(dir: string): Promise<void> {
  const stats = await stat(dir);
  if (!stats.isDirectory() || stats.ino !== SUBVOLUME_ROOT_INODE) {
    throw new Error(`${dir} is not a btrfs subvolume root (inode ${stats.ino})`);
  }
}

/** Thrown when quotas are off: nothing can be observed or grown. */
export class BtrfsQuotasDisabledError extends Error {
  override readonly name = 'BtrfsQuotasDisabledError';
}

interface ResolvedContainer {
  container: ContainerInfo;
  mountId: string;
  subvolumeId: number;
}

export function createBtrfsBackend(deps: BackendDeps, options: BtrfsBackendOptions = {}): StorageBackend {
  return new BtrfsBackend(deps, options);
}

class BtrfsBackend implements StorageBackend {
  readonly driver = 'btrfs' as const;
  private readonly dataRoot: string;
  private readonly sysfsRoot: string | null;
  private readonly writeQuota: (dataRoot: string, mountId: string, bytes: number) => void;
  private readonly checkSubvolumeRoot: (dir: string) => Promise<void>;
  /** containerId -> mountId (a container's layer never changes). Pruned to the containers seen. */
  private readonly mountIds = new Map<string, string>();
  /** mountId -> subvolume id (null: ambiguous), from the last `subvolume list`. */
  private subvolumes = new Map<string, number | null>();
  /** Mount ids the last `subvolume list` did not have: no re-list until a new unknown one appears. */
  private missingMountIds = new Set<string>();
  /** undefined: not looked up yet; null: unavailable (sysfs live usage off). */
  private fsUuid: string | null | undefined;
  /** Size-limited containers whose live counters the last observe() read: the guard's fast path. */
  private liveQgroups = new Map<string, QgroupId>();
  /** Open descriptors for the guard's looks (created with the filesystem uuid). */
  private liveReader: LiveQgroupReader | null = null;

  constructor(
    private readonly deps: BackendDeps,
    options: BtrfsBackendOptions,
  ) {
    this.dataRoot = assertDataRoot(deps.dockerInfo.dockerRootDir);
    this.sysfsRoot = options.sysfsRoot === undefined ? DEFAULT_BTRFS_SYSFS_ROOT : options.sysfsRoot;
    this.writeQuota = options.writeQuotaFile ?? writeQuotaFile;
    this.checkSubvolumeRoot = options.checkSubvolumeRoot ?? assertSubvolumeRoot;
  }

  private async btrfs(args: string[]) {
    return this.deps.runner.run({ tool: 'btrfs', args, timeoutMs: this.deps.commandTimeoutMs });
  }

  private qgroupShowArgs(): string[] {
    return ['qgroup', 'show', '--raw', '-re', this.dataRoot];
  }

  /** One `btrfs qgroup show`, keyed by "level/id". */
  private async qgroupShow(): Promise<Map<string, QgroupRow>> {
    let stdout: string;
    try {
      ({ stdout } = await this.btrfs(this.qgroupShowArgs()));
    } catch (error) {
      if (isCommandError(error) && error.kind === 'exit' && isQuotasDisabledError(error.stderr)) {
        throw new BtrfsQuotasDisabledError(
          `btrfs quotas are disabled on ${this.dataRoot}: container size limits are not enforced and ` +
            `cannot be observed or grown (fix: btrfs quota enable ${this.dataRoot})`,
        );
      }
      throw error;
    }
    return new Map(parseQgroupShow(stdout).map((row) => [row.qgroupKey, row]));
  }

  private async refreshSubvolumes(): Promise<void> {
    const { stdout } = await this.btrfs(['subvolume', 'list', this.dataRoot]);
    this.subvolumes = dockerSubvolumesByMountId(parseSubvolumeList(stdout));
    this.missingMountIds = new Set();
  }

  private async mountIdOf(containerId: string): Promise<string> {
    const cached = this.mountIds.get(containerId);
    if (cached) return cached;
    const mountId = await readMountId(this.dataRoot, 'btrfs', containerId);
    this.mountIds.set(containerId, mountId);
    return mountId;
  }

  private subvolumeIdOf(mountId: string): number {
    const id = this.subvolumes.get(mountId);
    if (id === null) throw new Error(`layer ${mountId} matches more than one btrfs subvolume`);
    if (id === undefined) {
      throw new Error(
        `no btrfs subvolume for layer ${mountId} under ${this.dataRoot} (btrfs subvolume list)`,
      );
    }
    return id;
  }

  /** Re-lists subvolumes only when some mount id is new (not known, not already known missing). */
  private async ensureSubvolumes(mountIds: Iterable<string>): Promise<void> {
    const unknown = [...mountIds].filter((id) => !this.subvolumes.has(id) && !this.missingMountIds.has(id));
    if (unknown.length === 0) return;
    await this.refreshSubvolumes();
    for (const id of unknown) if (!this.subvolumes.has(id)) this.missingMountIds.add(id);
  }

  /** The qgroup row must describe this layer's subvolume when btrfs prints paths (cross-check). */
  private checkRowPath(row: QgroupRow, mountId: string): void {
    if (row.path === null || row.path === '') return;
    if (row.path !== `btrfs/subvolumes/${mountId}` && !row.path.endsWith(`/btrfs/subvolumes/${mountId}`)) {
      // the cached mapping is stale: forget it so the next pass lists subvolumes again
      this.subvolumes.delete(mountId);
      throw new Error(`qgroup ${row.qgroupKey} belongs to ${row.path}, not to layer ${mountId}`);
    }
  }

  private async resolveFsUuid(): Promise<string | null> {
    if (this.fsUuid !== undefined) return this.fsUuid;
    if (this.sysfsRoot === null) return (this.fsUuid = null);
    try {
      const { stdout } = await this.btrfs(['filesystem', 'show', '--raw', this.dataRoot]);
      this.fsUuid = parseFilesystemUuid(stdout);
    } catch (error) {
      this.deps.logger.warn(
        { err: error, dataRoot: this.dataRoot },
        'btrfs live usage unavailable: usage lags until the next transaction commit',
      );
      this.fsUuid = null;
    }
    return this.fsUuid;
  }

  async observe(
    containers: readonly ContainerInfo[],
    nowMs: number,
    options: ObserveOptions = {},
  ): Promise<Observation> {
    const errors = new Map<string, string>();
    const usages = new Map<string, ContainerUsage>();
    const resolved: { container: ContainerInfo; mountId: string }[] = [];
    const partial = options.partial === true;

    if (!partial) {
      const seen = new Set(containers.map((container) => container.id));
      for (const id of this.mountIds.keys()) if (!seen.has(id)) this.mountIds.delete(id);
    }

    for (const container of containers) {
      if (container.storageDriver !== 'btrfs') {
        errors.set(container.id, `storage driver is ${container.storageDriver}, not btrfs`);
        continue;
      }
      try {
        resolved.push({ container, mountId: await this.mountIdOf(container.id) });
      } catch (error) {
        errors.set(container.id, `layer lookup failed: ${errorMessage(error)}`);
      }
    }

    const fsUsage = await statfsUsage(this.dataRoot);
    if (partial && errors.size === 0) {
      const fromSysfs = await this.observeFromSysfs(resolved);
      if (fromSysfs) {
        return {
          takenAtMs: nowMs,
          driver: 'btrfs',
          pool: filesystemPool(this.dataRoot, fsUsage, fromSysfs.committedBytes, false),
          containers: fromSysfs.usages,
          errors,
        };
      }
    }
    let rows: Map<string, QgroupRow>;
    try {
      await this.ensureSubvolumes(resolved.map((entry) => entry.mountId));
      rows = await this.qgroupShow();
    } catch (error) {
      if (!(error instanceof BtrfsQuotasDisabledError)) throw error;
      // The host cannot be served: say so for every container, keep the pool for status.
      for (const { container } of resolved) errors.set(container.id, error.message);
      return {
        takenAtMs: nowMs,
        driver: 'btrfs',
        pool: filesystemPool(this.dataRoot, fsUsage, 0, false),
        containers: usages,
        errors,
      };
    }
    const fsUuid = await this.resolveFsUuid();

    let committedBytes = 0;
    const liveQgroups = new Map<string, QgroupId>();
    for (const { container, mountId } of resolved) {
      try {
        const subvolumeId = this.subvolumeIdOf(mountId);
        const row = rows.get(`0/${subvolumeId}`);
        if (!row)
          throw new Error(`no qgroup 0/${subvolumeId} for layer ${mountId} (quotas enabled after create?)`);
        this.checkRowPath(row, mountId);
        const live =
          fsUuid && this.sysfsRoot ? await readLiveQgroupUsage(this.sysfsRoot, fsUuid, row.qgroupId) : null;
        // Only a limit Docker made (and persists in its quota file) counts as the container's size.
        const dockerLimited = container.storageOptSizeBytes !== null;
        const sizeBytes = dockerLimited ? row.maxReferencedBytes : null;
        if (sizeBytes !== null) committedBytes += sizeBytes;
        if (live && dockerLimited) liveQgroups.set(container.id, row.qgroupId);
        const usage = this.containerUsage(container.id, mountId, row.qgroupKey, sizeBytes, {
          committedReferencedBytes: row.referencedBytes,
          live,
        });
        if (!dockerLimited) {
          usage.detail.limit = 'no limit: created without --storage-opt size';
          if (row.maxReferencedBytes !== null) usage.detail.qgroupLimitBytes = row.maxReferencedBytes;
        }
        usages.set(container.id, usage);
      } catch (error) {
        errors.set(container.id, errorMessage(error));
      }
    }

    // A partial pass (one container: a guard look, a manual grow) updates its containers; a
    // whole-host pass replaces the map, so containers that are gone drop out.
    if (partial) {
      for (const { container } of resolved) this.liveQgroups.delete(container.id);
      for (const [id, qgroup] of liveQgroups) this.liveQgroups.set(id, qgroup);
    } else {
      this.liveQgroups = liveQgroups;
      this.liveReader?.retain(liveQgroups.values());
    }

    return {
      takenAtMs: nowMs,
      driver: 'btrfs',
      pool: filesystemPool(this.dataRoot, fsUsage, committedBytes, false),
      containers: usages,
      errors,
    };
  }

  /**
   * A partial pass (the fill guard's, or a manual grow's) of containers the last whole-host pass already
   * matched to their qgroups (path cross-checked there; a layer's subvolume never changes): read
   * from sysfs alone, no process, so the guard's urgent path costs one process (the grow). Null
   * when any container is not matched that way; the caller then takes the full path.
   */
  private async observeFromSysfs(
    resolved: readonly { container: ContainerInfo; mountId: string }[],
  ): Promise<{ usages: Map<string, ContainerUsage>; committedBytes: number } | null> {
    const fsUuid = this.fsUuid;
    if (!fsUuid || this.sysfsRoot === null || resolved.length === 0) return null;
    const usages = new Map<string, ContainerUsage>();
    let committedBytes = 0;
    for (const { container, mountId } of resolved) {
      const qgroup = this.liveQgroups.get(container.id);
      if (!qgroup || container.storageOptSizeBytes === null) return null;
      // the guard's look just read it: its descriptors are open
      const live = await this.liveReaderFor(fsUuid, this.sysfsRoot).read(qgroup);
      if (!live || live.maxReferencedBytes === null) return null;
      committedBytes += live.maxReferencedBytes;
      usages.set(
        container.id,
        this.containerUsage(container.id, mountId, `${qgroup.level}/${qgroup.id}`, live.maxReferencedBytes, {
          committedReferencedBytes: live.referencedBytes,
          live,
        }),
      );
    }
    return { usages, committedBytes };
  }

  /** One container's usage, the same from `qgroup show` + sysfs and from sysfs alone. */
  private containerUsage(
    containerId: string,
    mountId: string,
    qgroupKey: string,
    sizeBytes: number | null,
    counters: {
      committedReferencedBytes: number;
      /** Live counters; null: `qgroup show`'s committed numbers only. */
      live: { referencedBytes: number; reservedBytes: number } | null;
    },
  ): ContainerUsage & { detail: Record<string, string | number> } {
    const { live } = counters;
    const detail: Record<string, string | number> = {
      qgroup: qgroupKey,
      subvolume: pathUnderDataRoot(this.dataRoot, 'btrfs', 'subvolumes', mountId),
      mountId,
      committedReferencedBytes: counters.committedReferencedBytes,
      usageSource: live ? 'sysfs' : 'qgroup-show',
    };
    if (live) detail.reservedBytes = live.reservedBytes;
    return {
      containerId,
      driver: 'btrfs',
      sizeBytes,
      usedBytes: live ? live.referencedBytes + live.reservedBytes : counters.committedReferencedBytes,
      ...(live ? { inFlightBytes: live.reservedBytes, readLive: true } : {}),
      inodesUsed: null,
      inodesTotal: null,
      fsType: null,
      detail,
    };
  }

  private changeReader: FilesystemChangeReader | null = null;

  private liveReaderFor(fsUuid: string, sysfsRoot: string): LiveQgroupReader {
    this.liveReader ??= new LiveQgroupReader(sysfsRoot, fsUuid);
    return this.liveReader;
  }

  /** The filesystem's space counters as one token (sysfs.ts FilesystemChangeReader); no process. */
  readChangeToken(): string | null {
    const fsUuid = this.fsUuid;
    if (!fsUuid || this.sysfsRoot === null) return null;
    this.changeReader ??= new FilesystemChangeReader(this.sysfsRoot, fsUuid);
    return this.changeReader.read();
  }

  async readLiveUsage(containerIds: readonly string[]): Promise<ReadonlyMap<string, LiveUsage>> {
    const result = new Map<string, LiveUsage>();
    const fsUuid = this.fsUuid;
    if (!fsUuid || this.sysfsRoot === null) return result;
    const reader = this.liveReaderFor(fsUuid, this.sysfsRoot);
    for (const containerId of containerIds) {
      const qgroup = this.liveQgroups.get(containerId);
      if (!qgroup) continue;
      try {
        const live = await reader.read(qgroup);
        if (!live || live.maxReferencedBytes === null) continue;
        result.set(containerId, {
          usedBytes: live.referencedBytes + live.reservedBytes,
          sizeBytes: live.maxReferencedBytes,
        });
      } catch {
        // a qgroup removed between two looks: the regular pass sees the container is gone
      }
    }
    return result;
  }

  /** Where a grow reads the live limit: sysfs (no process) once the pass found it working. */
  private limitSysfsPath(target: ResolvedContainer): string | null {
    if (!this.fsUuid || this.sysfsRoot === null) return null;
    return path.join(
      qgroupSysfsDir(this.sysfsRoot, this.fsUuid, { level: 0, id: target.subvolumeId }),
      'max_referenced',
    );
  }

  /**
   * The limit the kernel enforces now. From sysfs when the live counters work: no process, so a
   * grow in a race with a fast writer costs one process (the limit itself); the qgroup's path was
   * cross-checked by the pass that decided the grow, and a layer's subvolume never changes. Else
   * from `qgroup show`, with the path cross-check.
   */
  private async readLimit(
    target: ResolvedContainer,
  ): Promise<{ qgroupKey: string; limitBytes: number | null }> {
    const qgroupKey = `0/${target.subvolumeId}`;
    if (this.fsUuid && this.sysfsRoot !== null) {
      const live = await readLiveQgroup(this.sysfsRoot, this.fsUuid, { level: 0, id: target.subvolumeId });
      if (live) return { qgroupKey, limitBytes: live.maxReferencedBytes };
    }
    const row = await this.readRow(target);
    return { qgroupKey: row.qgroupKey, limitBytes: row.maxReferencedBytes };
  }

  /** Mount id, subvolume id, and a live check that the subvolume directory is a subvolume root. */
  private async resolveForAction(container: ContainerInfo): Promise<ResolvedContainer> {
    assertContainerId(container.id);
    // fresh read, not the cache: acting on a stale layer id would touch another container
    const mountId = await readMountId(this.dataRoot, 'btrfs', container.id);
    this.mountIds.set(container.id, mountId);
    if (!this.subvolumes.has(mountId)) await this.refreshSubvolumes();
    const subvolumeId = this.subvolumeIdOf(mountId);
    if (!isSafeUint(subvolumeId) || subvolumeId < SUBVOLUME_ROOT_INODE) {
      throw new Error(`implausible subvolume id ${subvolumeId} for layer ${mountId}`);
    }
    await this.checkSubvolumeRoot(pathUnderDataRoot(this.dataRoot, 'btrfs', 'subvolumes', mountId));
    return { container, mountId, subvolumeId };
  }

  private async readRow(target: ResolvedContainer): Promise<QgroupRow> {
    const row = (await this.qgroupShow()).get(`0/${target.subvolumeId}`);
    if (!row) throw new Error(`qgroup 0/${target.subvolumeId} not found`);
    this.checkRowPath(row, target.mountId);
    return row;
  }

  grow(request: GrowRequest): Promise<GrowResult> {
    return withGrowProgress((progress) => this.growStepByStep(request, progress));
  }

  private async growStepByStep(request: GrowRequest, progress: GrowProgress): Promise<GrowResult> {
    const { container, dryRun } = request;
    const toBytes = request.toBytes;
    if (!isSafeUint(toBytes) || toBytes <= 0)
      throw new Error(`grow target is not a positive byte count: ${toBytes}`);
    if (container.storageOptSizeBytes === null) {
      throw new Error(`container ${container.id} was created without a size limit: never grown`);
    }
    const target = await this.resolveForAction(container);
    const before = await this.readLimit(target);
    const liveLimit = before.limitBytes;
    if (liveLimit === null) {
      throw new Error(
        `qgroup ${before.qgroupKey} of container ${container.id} has no referenced limit: never grown`,
      );
    }
    const quotaFile = quotaFilePath(this.dataRoot, target.mountId);
    const fileBytes = await readQuotaFile(this.dataRoot, target.mountId);
    if (fileBytes === null) {
      throw new Error(`${quotaFile} does not exist: Docker does not limit this container, never grown`);
    }

    if (liveLimit >= toBytes) {
      // Never shrink. But a crash between the limit and the file write leaves the file behind
      // the live limit: repair it, or the next start would reset the limit.
      const steps: GrowStep[] = [];
      if (fileBytes < liveLimit) {
        steps.push({ name: `write ${quotaFile} = ${liveLimit}` });
        progress.at('repair quota file', 'limit-set-file-pending');
        if (!dryRun) {
          this.writeQuota(this.dataRoot, target.mountId, liveLimit);
          this.deps.logger.warn(
            { containerId: container.id, quotaFile, fileBytes, liveLimitBytes: liveLimit },
            'btrfs quota file was behind the live limit: repaired',
          );
        }
      }
      return {
        containerId: container.id,
        fromBytes: liveLimit,
        toBytes: liveLimit,
        steps,
        dryRun,
        noop: true,
      };
    }

    const limitArgs = ['qgroup', 'limit', String(toBytes), `0/${target.subvolumeId}`, this.dataRoot];
    const sysfsLimit = this.limitSysfsPath(target);
    const steps: GrowStep[] = [
      { name: 'btrfs qgroup limit', argv: ['btrfs', ...limitArgs] },
      sysfsLimit
        ? { name: `read ${sysfsLimit}` }
        : { name: 'btrfs qgroup show', argv: ['btrfs', ...this.qgroupShowArgs()] },
      { name: `write ${quotaFile} = ${toBytes}` },
    ];
    if (dryRun) {
      return { containerId: container.id, fromBytes: liveLimit, toBytes, steps, dryRun: true, noop: false };
    }

    // 1. the live limit (a single ioctl: it took or it did not)
    progress.at('btrfs qgroup limit', 'unchanged');
    await this.btrfs(limitArgs);
    // 2. re-read: the limit must now be exactly what we asked for
    progress.at('read back', 'unknown');
    const { qgroupKey, limitBytes: limitAfterBytes } = await this.readLimit(target);
    if (limitAfterBytes !== toBytes) {
      throw new Error(
        `btrfs qgroup limit reported success but qgroup ${qgroupKey} shows max referenced ` +
          `${limitAfterBytes ?? 'none'} instead of ${toBytes}`,
      );
    }
    // 3. persistence: only a limit that took is written for Docker to re-apply
    progress.at('write quota file', 'limit-set-file-pending');
    try {
      this.writeQuota(this.dataRoot, target.mountId, toBytes);
    } catch (error) {
      throw new Error(
        `qgroup ${qgroupKey} now limits container ${container.id} to ${toBytes} bytes, but writing ` +
          `${quotaFile} failed (${errorMessage(error)}): the next container start would reset the ` +
          `limit to ${fileBytes} bytes; the next grow or agent start repairs the file`,
      );
    }
    const persisted = await readQuotaFile(this.dataRoot, target.mountId);
    if (persisted !== toBytes) {
      throw new Error(`${quotaFile} reads back ${persisted ?? 'nothing'} after writing ${toBytes}`);
    }
    return {
      containerId: container.id,
      fromBytes: liveLimit,
      toBytes: limitAfterBytes,
      steps,
      dryRun: false,
      noop: false,
    };
  }

  /**
   * At agent start: a crash between `qgroup limit` and the file write leaves the quota file behind
   * the live limit, so the next start would shrink the container back. Bring such files up to the
   * live limit (never down).
   */
  async recover(containers: readonly ContainerInfo[]): Promise<void> {
    const limited = containers.filter(
      (container) => container.storageDriver === 'btrfs' && container.storageOptSizeBytes !== null,
    );
    if (limited.length === 0) return;
    const targets: { container: ContainerInfo; mountId: string }[] = [];
    for (const container of limited) {
      try {
        targets.push({ container, mountId: await this.mountIdOf(container.id) });
      } catch (error) {
        this.deps.logger.warn(
          { containerId: container.id, err: error },
          'btrfs recover: layer lookup failed',
        );
      }
    }
    await this.ensureSubvolumes(targets.map((target) => target.mountId));
    const rows = await this.qgroupShow();
    for (const { container, mountId } of targets) {
      try {
        const subvolumeId = this.subvolumeIdOf(mountId);
        const row = rows.get(`0/${subvolumeId}`);
        if (!row || row.maxReferencedBytes === null) continue;
        this.checkRowPath(row, mountId);
        const fileBytes = await readQuotaFile(this.dataRoot, mountId);
        if (fileBytes === null) continue;
        if (fileBytes < row.maxReferencedBytes) {
          this.writeQuota(this.dataRoot, mountId, row.maxReferencedBytes);
          this.deps.logger.warn(
            { containerId: container.id, fileBytes, liveLimitBytes: row.maxReferencedBytes },
            'btrfs quota file was behind the live limit: repaired',
          );
        } else if (fileBytes > row.maxReferencedBytes) {
          this.deps.logger.warn(
            { containerId: container.id, fileBytes, liveLimitBytes: row.maxReferencedBytes },
            'btrfs quota file is above the live limit: Docker applies it at the next start',
          );
        }
      } catch (error) {
        this.deps.logger.warn(
          { containerId: container.id, err: error },
          'btrfs recover failed for container',
        );
      }
    }
  }

  async doctor(): Promise<DoctorCheck[]> {
    const checks: DoctorCheck[] = [];
    const root = this.dataRoot;
    try {
      const { stdout } = await this.btrfs(['--version']);
      checks.push({ name: 'btrfs-progs installed', ok: true, severity: 'error', detail: stdout.trim() });
    } catch (error) {
      checks.push({
        name: 'btrfs-progs installed',
        ok: false,
        severity: 'error',
        detail: errorMessage(error),
        fix: 'apt-get install btrfs-progs (or set binaries.btrfs)',
      });
      return checks;
    }
    try {
      const usage = await statfsUsage(root);
      const onBtrfs = usage.typeMagic === FS_MAGIC.btrfs;
      checks.push({
        name: 'data root on btrfs',
        ok: onBtrfs,
        severity: 'error',
        detail: onBtrfs
          ? `${root} is on btrfs`
          : `${root} is not on btrfs (statfs type 0x${usage.typeMagic.toString(16)})`,
      });
    } catch (error) {
      checks.push({
        name: 'data root on btrfs',
        ok: false,
        severity: 'error',
        detail: errorMessage(error),
      });
      return checks;
    }
    let rows: Map<string, QgroupRow> | null = null;
    try {
      rows = await this.qgroupShow();
      checks.push({
        name: 'btrfs quotas enabled',
        ok: true,
        severity: 'error',
        detail: `qgroups on ${root}`,
      });
    } catch (error) {
      checks.push({
        name: 'btrfs quotas enabled',
        ok: false,
        severity: 'error',
        detail:
          error instanceof BtrfsQuotasDisabledError
            ? error.message
            : `btrfs qgroup show failed: ${errorMessage(error)}`,
        fix: `btrfs quota enable ${root} (then recreate containers that need a size limit)`,
      });
    }
    const fsUuid = await this.resolveFsUuid();
    if (fsUuid && this.sysfsRoot) {
      const flags = await readQuotaFlags(this.sysfsRoot, fsUuid);
      checks.push({
        name: 'btrfs live qgroup usage (sysfs)',
        ok: flags.enabled !== null,
        severity: 'warn',
        detail:
          flags.enabled !== null
            ? `${path.join(this.sysfsRoot, fsUuid, 'qgroups')} readable`
            : 'no qgroups in sysfs: usage lags until the next transaction commit (up to 30 s)',
      });
      if (flags.inconsistent !== null) {
        checks.push({
          name: 'btrfs qgroups consistent',
          ok: !flags.inconsistent,
          severity: 'warn',
          detail: flags.inconsistent
            ? 'qgroup accounting is marked inconsistent: usage and limits are unreliable'
            : 'qgroup accounting consistent',
          fix: flags.inconsistent ? `btrfs quota rescan -w ${root}` : undefined,
        });
      }
    } else {
      checks.push({
        name: 'btrfs live qgroup usage (sysfs)',
        ok: false,
        severity: 'warn',
        detail: 'filesystem uuid unknown: usage lags until the next transaction commit (up to 30 s)',
      });
    }
    checks.push(...(await this.containerChecks(rows)));
    return checks;
  }

  /** Containers Docker does not limit, and quota files behind their live limits. */
  private async containerChecks(rows: Map<string, QgroupRow> | null): Promise<DoctorCheck[]> {
    let containers: ContainerInfo[];
    try {
      const ids = await this.deps.docker.listContainerIds();
      containers = (await Promise.all(ids.map((id) => this.deps.docker.inspectContainer(id)))).filter(
        (container): container is ContainerInfo => container !== null,
      );
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
    const unlimited = containers.filter((container) => container.storageOptSizeBytes === null);
    const checks: DoctorCheck[] = [
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
    if (!rows) return checks;
    const behind: string[] = [];
    for (const container of containers) {
      if (container.storageOptSizeBytes === null) continue;
      try {
        const mountId = await this.mountIdOf(container.id);
        if (!isLayerHash(mountId)) continue;
        await this.ensureSubvolumes([mountId]);
        const row = rows.get(`0/${this.subvolumeIdOf(mountId)}`);
        const fileBytes = await readQuotaFile(this.dataRoot, mountId);
        if (row?.maxReferencedBytes && fileBytes !== null && fileBytes < row.maxReferencedBytes) {
          behind.push(`${container.name} (file ${fileBytes} < live ${row.maxReferencedBytes})`);
        }
      } catch {
        // a container removed meanwhile: nothing to check
      }
    }
    checks.push({
      name: 'btrfs quota files match live limits',
      ok: behind.length === 0,
      severity: 'warn',
      detail:
        behind.length === 0
          ? 'every quota file holds at least the live limit'
          : `quota files behind the live limit (docker restart would shrink them back): ${behind.join(', ')}`,
      fix: behind.length === 0 ? undefined : 'start the agent (it repairs the files at start)',
    });
    return checks;
  }
}
