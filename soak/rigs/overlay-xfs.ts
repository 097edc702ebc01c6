/**
 * The overlay2-on-XFS rig (needs a kernel with XFS project quotas: the qemu guest, see
 * test/vm/soak-guest.ts): a loop XFS mounted `prjquota` as dockerd's data root,
 * `--storage-driver overlay2`, so `--storage-opt size=` gives each limited container an XFS project
 * with a hard limit. Limits are read from the kernel with `xfs_quota -x -c 'report -p -b -N -n'`
 * and parsed by the same parser the agent's overlay backend uses (project ids from `xfs_io stat`
 * of the layer directory likewise); the pool is the XFS (statfs), filled with `fallocate` at its
 * root (project 0, outside every container's quota).
 *
 * Leftovers: the project of a removed container must keep the limit it had just after the
 * removal. A limit that changes later means the agent grew a container that was gone (acted on a
 * stale inventory). Docker's own leftovers (it may keep a removed layer's project limit) are not
 * the agent's and are only counted.
 */
import { mkdirSync, readFileSync, readdirSync, statfsSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { parseProjectQuotaReport } from '../../src/storage/overlay-xfs/parse-quota-report.js';
import { parseXfsIoStatProjectIds } from '../../src/storage/overlay-xfs/parse-xfs-io-stat.js';
import { quotaReportArgs } from '../../src/storage/overlay-xfs/project-quota.js';
import { checkLimitsAfterRemoval, type RemovedProject, type Violation } from '../invariants.js';
import { RIG_TOOLS, mountPointsAtOrBelow, runTool, type ToolRun } from './tool.js';
import type { PoolUsage, RigContainer, RigOptions, SoakRig } from './types.js';

const TOOL_TIMEOUT_MS = 60_000;
/** A grow in flight when `docker rm` returned may still land this long after it. */
const REMOVAL_GRACE_MS = 5_000;

/** Seams for the unit test (test/unit/soak-rigs.test.ts): the tools and the grace after a removal. */
export interface OverlayXfsRigDeps {
  run?: ToolRun;
  removalGraceMs?: number;
}

interface XfsContainer extends RigContainer {
  /** 0: Docker gave the layer no project (created without --storage-opt size). */
  readonly projectId: number;
}

export class OverlayXfsRig implements SoakRig {
  readonly backend = 'overlay-xfs' as const;
  readonly dockerd: SoakRig['dockerd'];
  readonly defaultLimitBytes = null;
  private readonly imageFile: string;
  private readonly mountPoint: string;
  private fillFiles = 0;
  /** Projects of removed containers, by project id (Docker may reuse one after a restart). */
  private readonly removed = new Map<number, RemovedProject>();
  /** Projects of the containers alive now. */
  private readonly liveProjects = new Set<number>();
  private readonly pendingReads = new Set<Promise<void>>();
  /** Projects Docker left with a limit after their container was removed (a figure, not a violation). */
  dockerLeftLimited = 0;
  private removedProjects = 0;

  private readonly run: ToolRun;
  private readonly removalGraceMs: number;

  constructor(
    private readonly options: RigOptions,
    deps: OverlayXfsRigDeps = {},
  ) {
    this.run = deps.run ?? runTool;
    this.removalGraceMs = deps.removalGraceMs ?? REMOVAL_GRACE_MS;
    this.imageFile = path.join(options.workDir, 'xfs.img');
    this.mountPoint = path.join(options.workDir, 'xfs');
    this.dockerd = { storageDriver: 'overlay2', dataRoot: this.mountPoint, extraArgs: [] };
  }

  async create(): Promise<void> {
    await this.run(
      RIG_TOOLS.truncate,
      ['-s', String(this.options.poolBytes), this.imageFile],
      TOOL_TIMEOUT_MS,
    );
    await this.run(RIG_TOOLS.mkfsXfs, ['-q', '-f', this.imageFile], TOOL_TIMEOUT_MS);
    mkdirSync(this.mountPoint, { recursive: true });
    // prjquota: enforced project quotas, what Docker's overlay2 needs for --storage-opt size
    await this.run(
      RIG_TOOLS.mount,
      ['-o', 'loop,prjquota', this.imageFile, this.mountPoint],
      TOOL_TIMEOUT_MS,
    );
  }

  async destroy(): Promise<void> {
    await Promise.allSettled([...this.pendingReads]);
    // dockerd may leave the data root (the XFS) bind-mounted onto itself, as it does on
    // devicemapper in the guest: every mount there goes, the deepest first, the XFS last
    const mountPoints = mountPointsAtOrBelow(this.mountPoint, readFileSync('/proc/self/mountinfo', 'utf8'));
    for (const mountPoint of mountPoints.length > 0 ? mountPoints : [this.mountPoint]) {
      await this.run(RIG_TOOLS.umount, ['-l', mountPoint], TOOL_TIMEOUT_MS).catch(() => undefined);
    }
  }

  async register(containerId: string, limited: boolean): Promise<RigContainer> {
    const mountId = readFileSync(
      path.join(this.mountPoint, 'image', 'overlay2', 'layerdb', 'mounts', containerId, 'mount-id'),
      'utf8',
    ).trim();
    const layerDir = path.join(this.mountPoint, 'overlay2', mountId);
    let projectId = 0;
    if (limited) {
      const stat = await this.run(RIG_TOOLS.xfsIo, ['-r', '-c', 'stat', layerDir], TOOL_TIMEOUT_MS);
      projectId = parseXfsIoStatProjectIds(stat).get(layerDir) ?? 0;
      if (projectId === 0) throw new Error(`${layerDir} has no XFS project although Docker limits it`);
      // Docker reused a removed container's project id: it is this container's now
      this.removed.delete(projectId);
      this.liveProjects.add(projectId);
    }
    const container: XfsContainer = { containerId, removedPrefix: `${layerDir}/`, projectId };
    return container;
  }

  forget(container: RigContainer): void {
    const { projectId, containerId } = container as XfsContainer;
    if (projectId === 0) return;
    this.liveProjects.delete(projectId);
    // the limit it keeps is the one read after the grace (a grow started before the rm may land)
    const read = (async () => {
      await new Promise((resolve) => setTimeout(resolve, this.removalGraceMs));
      try {
        const rows = await this.report();
        if (this.liveProjects.has(projectId)) return; // reused meanwhile
        this.removed.set(projectId, {
          containerId,
          projectId,
          limitAfterRemovalBytes: rows.get(projectId) ?? null,
        });
      } catch {
        // unmounted at the end: nothing to compare
      }
    })();
    this.pendingReads.add(read);
    void read.finally(() => this.pendingReads.delete(read));
  }

  /** project id -> hard limit in bytes (projects without a hard limit are absent). */
  private async report(): Promise<Map<number, number>> {
    const stdout = await this.run(RIG_TOOLS.xfsQuota, quotaReportArgs(this.mountPoint), TOOL_TIMEOUT_MS);
    const limits = new Map<number, number>();
    for (const [projectId, row] of parseProjectQuotaReport(stdout)) {
      if (row.hardLimitBytes !== null) limits.set(projectId, row.hardLimitBytes);
    }
    return limits;
  }

  async readLimits(containers: readonly RigContainer[]): Promise<Map<string, number>> {
    const limited = containers.filter((container) => (container as XfsContainer).projectId !== 0);
    const limits = new Map<string, number>();
    if (limited.length === 0) return limits;
    const rows = await this.report();
    for (const container of limited) {
      const limit = rows.get((container as XfsContainer).projectId);
      if (limit !== undefined) limits.set(container.containerId, limit);
    }
    return limits;
  }

  async poolUsage(): Promise<PoolUsage> {
    const stats = statfsSync(this.mountPoint);
    return { totalBytes: stats.blocks * stats.bsize, freeBytes: stats.bavail * stats.bsize };
  }

  async fillPool(bytes: number): Promise<void> {
    this.fillFiles += 1;
    // XFS allocates fallocate'd extents at once: statfs shows them without a sync
    await this.run(
      RIG_TOOLS.fallocate,
      ['-l', String(bytes), path.join(this.mountPoint, `soak-fill-${this.fillFiles}`)],
      TOOL_TIMEOUT_MS,
    );
  }

  async drainPool(): Promise<void> {
    for (const entry of readdirSync(this.mountPoint)) {
      if (entry.startsWith('soak-fill-')) unlinkSync(path.join(this.mountPoint, entry));
    }
  }

  async leftovers(atMs: number): Promise<Violation[]> {
    await Promise.allSettled([...this.pendingReads]);
    const rows = await this.report();
    const removed = [...this.removed.values()];
    this.removedProjects = removed.length;
    this.dockerLeftLimited = removed.filter((project) => rows.has(project.projectId)).length;
    return checkLimitsAfterRemoval(atMs, removed, rows);
  }

  agentPoolLines(): string[] {
    return [];
  }

  checkAgentState(): { allowed: RegExp[]; violations: Violation[] } {
    return { allowed: [], violations: [] };
  }

  figures(): Record<string, number> {
    return {
      removedProjects: this.removedProjects,
      removedProjectsDockerLeftLimited: this.dockerLeftLimited,
    };
  }
}
