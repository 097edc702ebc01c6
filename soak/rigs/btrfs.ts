/**
 * The btrfs rig (the host; every run): a loop-mounted btrfs with qgroups as dockerd's data root,
 * `--storage-driver btrfs`. Limits are the qgroups' `max_referenced` in sysfs (read by the soak,
 * not by the agent); the pool is the btrfs (statfs), filled with `fallocate`; leftovers are level-0
 * qgroups whose subvolume is gone.
 */
import { readFileSync, readdirSync, statfsSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { LoopBtrfs } from '../../bench/lib/dockerd.js';
import { checkQgroups, type Violation } from '../invariants.js';
import { RIG_TOOLS, runTool } from './tool.js';
import type { PoolUsage, RigContainer, RigOptions, SoakRig } from './types.js';

const TOOL_TIMEOUT_MS = 60_000;
/** Deleted subvolumes are dropped by the btrfs cleaner later; this long for `subvolume sync`. */
const SUBVOLUME_SYNC_TIMEOUT_MS = 120_000;

interface BtrfsContainer extends RigContainer {
  /** /sys/fs/btrfs/<uuid>/qgroups/0_<subvolume> */
  readonly qgroupDir: string;
}

export class BtrfsRig implements SoakRig {
  readonly backend = 'btrfs' as const;
  readonly dockerd: SoakRig['dockerd'];
  readonly defaultLimitBytes = null;
  private readonly btrfs: LoopBtrfs;
  private fsUuid = '';
  private fillFiles = 0;

  constructor(options: RigOptions) {
    this.btrfs = new LoopBtrfs(options.poolBytes, path.join(options.workDir, 'fs'));
    this.dockerd = { storageDriver: 'btrfs', dataRoot: this.btrfs.mountPoint, extraArgs: [] };
  }

  private get mountPoint(): string {
    return this.btrfs.mountPoint;
  }

  async create(): Promise<void> {
    await this.btrfs.create();
    const show = await runTool(RIG_TOOLS.btrfs, ['filesystem', 'show', this.mountPoint], TOOL_TIMEOUT_MS);
    const uuid = /uuid: (\S+)/.exec(show)?.[1];
    if (!uuid) throw new Error(`no btrfs uuid in: ${show}`);
    this.fsUuid = uuid;
  }

  async destroy(): Promise<void> {
    await this.btrfs.destroy().catch(() => undefined);
  }

  async register(containerId: string): Promise<RigContainer> {
    const mountId = readFileSync(
      path.join(this.mountPoint, 'image', 'btrfs', 'layerdb', 'mounts', containerId, 'mount-id'),
      'utf8',
    ).trim();
    const rootId = await runTool(
      RIG_TOOLS.btrfs,
      ['inspect-internal', 'rootid', path.join(this.mountPoint, 'btrfs', 'subvolumes', mountId)],
      TOOL_TIMEOUT_MS,
    );
    const qgroupDir = `/sys/fs/btrfs/${this.fsUuid}/qgroups/0_${rootId.trim()}`;
    const container: BtrfsContainer = { containerId, removedPrefix: `${qgroupDir}/`, qgroupDir };
    return container;
  }

  forget(): void {
    // the qgroup goes with the subvolume; leftovers() checks that it did
  }

  async readLimits(containers: readonly RigContainer[]): Promise<Map<string, number>> {
    const limits = new Map<string, number>();
    for (const container of containers) {
      try {
        const text = readFileSync(
          path.join((container as BtrfsContainer).qgroupDir, 'max_referenced'),
          'utf8',
        );
        // "none" (no limit) is NaN: not a limit
        const value = Number(text);
        if (Number.isFinite(value) && value > 0) limits.set(container.containerId, value);
      } catch {
        // the qgroup is gone (container removed meanwhile)
      }
    }
    return limits;
  }

  /**
   * statfs counts a write only once it is allocated on disk; until writeback, data in the page
   * cache is held as a data-space reservation (`bytes_may_use`) that statfs still shows as free.
   * The agent counts those reservations against the pool (a container's in-flight bytes are its
   * headroom), so the soak must too: measured in the 60-minute soak (seed 2026), statfs alone
   * showed 35.9 MB above the reserve while ~20 MB of it was a writer's dirty data, and the
   * write-error invariant blamed the agent for refusing a grow the pool could not hold.
   */
  async poolUsage(): Promise<PoolUsage> {
    const stats = statfsSync(this.mountPoint);
    const reservedBytes = this.fsUuid === '' ? 0 : this.readDataReservationBytes();
    return {
      totalBytes: stats.blocks * stats.bsize,
      freeBytes: stats.bavail * stats.bsize - reservedBytes,
    };
  }

  private readDataReservationBytes(): number {
    try {
      const text = readFileSync(`/sys/fs/btrfs/${this.fsUuid}/allocation/data/bytes_may_use`, 'utf8');
      const value = Number(text);
      return Number.isFinite(value) && value > 0 ? value : 0;
    } catch {
      return 0; // an older kernel without the counter: statfs alone, as before
    }
  }

  async fillPool(bytes: number): Promise<void> {
    this.fillFiles += 1;
    await runTool(
      RIG_TOOLS.fallocate,
      ['-l', String(bytes), path.join(this.mountPoint, `soak-fill-${this.fillFiles}`)],
      TOOL_TIMEOUT_MS,
    );
    // statfs shows the space taken only once btrfs committed it
    await runTool(RIG_TOOLS.btrfs, ['filesystem', 'sync', this.mountPoint], TOOL_TIMEOUT_MS);
  }

  async drainPool(): Promise<void> {
    for (const entry of readdirSync(this.mountPoint)) {
      if (entry.startsWith('soak-fill-')) unlinkSync(path.join(this.mountPoint, entry));
    }
    await runTool(RIG_TOOLS.btrfs, ['filesystem', 'sync', this.mountPoint], TOOL_TIMEOUT_MS);
  }

  /** Removed containers must not leave limited qgroups behind. */
  async leftovers(atMs: number): Promise<Violation[]> {
    await runTool(RIG_TOOLS.btrfs, ['subvolume', 'sync', this.mountPoint], SUBVOLUME_SYNC_TIMEOUT_MS);
    const qgroups = await runTool(
      RIG_TOOLS.btrfs,
      ['qgroup', 'show', '--raw', this.mountPoint],
      TOOL_TIMEOUT_MS,
    );
    const subvolumes = await runTool(
      RIG_TOOLS.btrfs,
      ['subvolume', 'list', this.mountPoint],
      TOOL_TIMEOUT_MS,
    );
    const qgroupIds = qgroups
      .split('\n')
      .map((line) => line.trim().split(/\s+/)[0] ?? '')
      .filter((id) => /^0\/\d+$/.test(id));
    const subvolumeIds = subvolumes
      .split('\n')
      .map((line) => Number(/^ID (\d+)/.exec(line)?.[1]))
      .filter((id) => Number.isFinite(id));
    return checkQgroups(atMs, qgroupIds, subvolumeIds, 0);
  }

  agentPoolLines(): string[] {
    return [];
  }

  checkAgentState(): { allowed: RegExp[]; violations: Violation[] } {
    return { allowed: [], violations: [] };
  }

  figures(): Record<string, number> {
    return {};
  }
}
