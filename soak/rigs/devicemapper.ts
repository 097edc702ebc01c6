/**
 * The devicemapper rigs (need device-mapper: the qemu guest, see test/vm/soak-guest.ts):
 * `--storage-driver devicemapper` in direct-lvm mode (`devicemapper`: an LVM thin pool on a loop
 * device over a sparse file, `dm.thinpooldev`, deferred removal and deletion, as Docker documents
 * for production) or loop-lvm mode (`devicemapper-loop`: Docker's own sparse loop files).
 *
 * Every container has a thin device of at least `dm.basesize`; the base size is 32M with ext4
 * (the schedule's limits start at 32M, and a new XFS may not be that small), so a container
 * created without `--storage-opt size=` is a 32M container the agent may grow. Limits are the
 * sectors of the container's active thin device (`dmsetup table --target thin`, parsed by the
 * agent's parser; device name `docker-<maj>:<min>-<ino>-<mount id>`); a stopped container's device
 * is inactive, so it has no sample until it runs again, when limit-shrank checks that it came
 * back at its grown size. The pool is the thin pool's data (`dmsetup status`, blocks x block
 * size); the fill is a thin device of the rig's own in that pool, written with zeros, at a device
 * id Docker never reaches. Leftovers: thin devices of removed containers still active after
 * deferred removal had time to run.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import {
  DM_INFO_FIELDS,
  DM_INFO_SEPARATOR,
  SECTOR_BYTES,
  parseDmInfoColumns,
  parseDmsetupAllDevices,
  parseDmsetupOneDevice,
  parseThinPoolStatus,
  parseThinPoolTable,
} from '../../src/storage/devicemapper/parse.js';
import { TERMINAL_STEPS, type GrowStepName } from '../../src/storage/devicemapper/journal.js';
import { checkReleasedLock, type Violation } from '../invariants.js';
import { RIG_TOOLS, mountPointsAtOrBelow, runTool, type ToolRun } from './tool.js';
import type { PoolUsage, RigContainer, RigOptions, SoakRig } from './types.js';

const MiB = 1024 ** 2;
const TOOL_TIMEOUT_MS = 120_000;
/** Writing the fill (gigabytes of zeros) under TCG. */
const FILL_TIMEOUT_MS = 900_000;
export const DM_BASE_SIZE_BYTES = 32 * MiB;
/** dm-thin device ids are 24-bit; Docker counts up from 1, so the fill's ids sit near the top. */
const FILL_DEVICE_ID_BASE = 16_777_000;
/** Deferred removal runs in the background: how long leftovers waits for removed devices to go. */
const REMOVAL_SETTLE_MS = 30_000;

export type DmMode = 'direct-lvm' | 'loop-lvm';

interface DmContainer extends RigContainer {
  readonly mountId: string;
}

export interface DevicemapperRigDeps {
  run?: ToolRun;
  removalSettleMs?: number;
  /** /proc/self/mountinfo (a fake in unit tests). */
  readMountinfo?: () => string;
}

export class DevicemapperRig implements SoakRig {
  readonly backend: 'devicemapper' | 'devicemapper-loop';
  readonly dockerd: SoakRig['dockerd'];
  readonly defaultLimitBytes = DM_BASE_SIZE_BYTES;
  private readonly run: ToolRun;
  private readonly removalSettleMs: number;
  private readonly readMountinfo: () => string;
  /** direct-lvm: the volume group the rig makes (unique per process). */
  private readonly volumeGroup = `agsoak${process.pid}`;
  private loopDevice: string | null = null;
  private poolName: string | null = null;
  private readonly fills: { name: string; deviceId: number }[] = [];
  private readonly removedMountIds = new Set<string>();
  private readonly liveMountIds = new Set<string>();

  constructor(
    private readonly mode: DmMode,
    private readonly options: RigOptions,
    deps: DevicemapperRigDeps = {},
  ) {
    this.run = deps.run ?? runTool;
    this.removalSettleMs = deps.removalSettleMs ?? REMOVAL_SETTLE_MS;
    this.readMountinfo = deps.readMountinfo ?? (() => readFileSync('/proc/self/mountinfo', 'utf8'));
    this.backend = mode === 'direct-lvm' ? 'devicemapper' : 'devicemapper-loop';
    const common = [`dm.basesize=${DM_BASE_SIZE_BYTES / MiB}M`, 'dm.fs=ext4'];
    const modeOpts =
      mode === 'direct-lvm'
        ? [
            `dm.thinpooldev=/dev/mapper/${this.volumeGroup}-thinpool`,
            'dm.use_deferred_removal=true',
            'dm.use_deferred_deletion=true',
          ]
        : [`dm.loopdatasize=${Math.floor(options.poolBytes / MiB)}M`, 'dm.loopmetadatasize=256M'];
    this.dockerd = {
      storageDriver: 'devicemapper',
      dataRoot: path.join(options.workDir, 'docker'),
      extraArgs: [...common, ...modeOpts].map((opt) => `--storage-opt=${opt}`),
    };
    if (mode === 'direct-lvm') this.poolName = `${this.volumeGroup}-thinpool`;
  }

  private lvm(args: string[]): Promise<string> {
    return this.run(RIG_TOOLS.lvm, args, TOOL_TIMEOUT_MS);
  }

  async create(): Promise<void> {
    mkdirSync(this.dockerd.dataRoot, { recursive: true });
    if (this.mode === 'loop-lvm') return;
    // as test/vm/guest/setup-env.sh makes docker-dm-lvm, on a loop device instead of /dev/vdb
    const image = path.join(this.options.workDir, 'pv.img');
    const metadataMiB = 64;
    await this.run(
      RIG_TOOLS.truncate,
      ['-s', String(this.options.poolBytes + 2 * metadataMiB * MiB + 64 * MiB), image],
      TOOL_TIMEOUT_MS,
    );
    this.loopDevice = (await this.run(RIG_TOOLS.losetup, ['-f', '--show', image], TOOL_TIMEOUT_MS)).trim();
    const vg = this.volumeGroup;
    await this.lvm(['pvcreate', '-q', this.loopDevice]);
    await this.lvm(['vgcreate', '-q', vg, this.loopDevice]);
    await this.lvm([
      'lvcreate',
      '-q',
      '-y',
      '--wipesignatures',
      'y',
      '-n',
      'thinpool',
      vg,
      '-L',
      `${Math.floor(this.options.poolBytes / MiB)}M`,
    ]);
    await this.lvm([
      'lvcreate',
      '-q',
      '-y',
      '--wipesignatures',
      'y',
      '-n',
      'thinpoolmeta',
      vg,
      '-L',
      `${metadataMiB}M`,
    ]);
    await this.lvm([
      'lvconvert',
      '-q',
      '-y',
      '--zero',
      'n',
      '-c',
      '512K',
      '--thinpool',
      `${vg}/thinpool`,
      '--poolmetadata',
      `${vg}/thinpoolmeta`,
    ]);
    await this.run(RIG_TOOLS.udevadm, ['settle'], TOOL_TIMEOUT_MS);
  }

  async destroy(): Promise<void> {
    const ignore = () => undefined;
    // dockerd leaves its data root bind-mounted onto itself when it stops, with the devices of
    // containers it did not unmount below it (seen in the guest: rmdir of the data root failed
    // with EBUSY and the soak died before writing its figures)
    for (const mountPoint of mountPointsAtOrBelow(this.dockerd.dataRoot, this.readMountinfo())) {
      await this.run(RIG_TOOLS.umount, [mountPoint], TOOL_TIMEOUT_MS).catch(() =>
        this.run(RIG_TOOLS.umount, ['-l', mountPoint], TOOL_TIMEOUT_MS).catch(ignore),
      );
    }
    await this.detachHolds().catch(ignore);
    const pool = await this.pool().catch(() => null);
    for (const fill of this.fills.splice(0)) {
      await this.run(RIG_TOOLS.dmsetup, ['remove', fill.name], TOOL_TIMEOUT_MS).catch(ignore);
    }
    if (this.mode === 'direct-lvm') {
      await this.lvm(['vgremove', '-q', '-f', this.volumeGroup]).catch(ignore);
      if (this.loopDevice) {
        await this.lvm(['pvremove', '-q', '-f', this.loopDevice]).catch(ignore);
        await this.run(RIG_TOOLS.losetup, ['-d', this.loopDevice], TOOL_TIMEOUT_MS).catch(ignore);
      }
      return;
    }
    // loop-lvm: dockerd leaves its pool (and devices) active over its loop files; remove them
    if (!pool) return;
    const prefix = pool.replace(/-pool$/, '-');
    const names = await this.run(RIG_TOOLS.dmsetup, ['ls'], TOOL_TIMEOUT_MS).catch(() => '');
    for (const line of names.split('\n')) {
      const name = line.split(/\s+/)[0] ?? '';
      if (name.startsWith(prefix) && name !== pool)
        await this.run(RIG_TOOLS.dmsetup, ['remove', name], TOOL_TIMEOUT_MS).catch(ignore);
    }
    await this.run(RIG_TOOLS.dmsetup, ['remove', pool], TOOL_TIMEOUT_MS).catch(ignore);
    const files = ['data', 'metadata'].map((file) =>
      path.join(this.dockerd.dataRoot, 'devicemapper', 'devicemapper', file),
    );
    for (const file of files) {
      const loops = await this.run(RIG_TOOLS.losetup, ['-j', file], TOOL_TIMEOUT_MS).catch(() => '');
      for (const loop of loops
        .split('\n')
        .map((line) => line.split(':')[0] ?? '')
        .filter(Boolean)) {
        await this.run(RIG_TOOLS.losetup, ['-d', loop], TOOL_TIMEOUT_MS).catch(ignore);
      }
    }
  }

  /**
   * The pool's dm name: the LV's (direct-lvm) or Docker's `docker-<maj>:<min>-<ino>-pool` (loop-lvm).
   * Docker names its container devices `docker-<maj>:<min>-<ino>-<mount id>` with the pool's
   * prefix, so the pool is found from a device of a container this rig registered: the guest runs
   * the control after the soak in the same boot, and a pool the soak could not remove (an open
   * device) stays beside the control's (seen in the guest: the control then read no pool at all,
   * excused every write error as "pool at its reserve" and did not bite). Before any container,
   * only a single loop-lvm pool is taken as this one.
   */
  private async pool(): Promise<string> {
    if (this.poolName) return this.poolName;
    const mountIds = new Set([...this.liveMountIds, ...this.removedMountIds]);
    if (mountIds.size > 0) {
      for (const name of (await this.thinDevices()).keys()) {
        const match = /^(docker-\d+:\d+-\d+)-([0-9a-f]{64})$/.exec(name);
        if (match && mountIds.has(match[2] as string)) {
          this.poolName = `${match[1] as string}-pool`;
          return this.poolName;
        }
      }
    }
    const listed = await this.run(RIG_TOOLS.dmsetup, ['ls', '--target', 'thin-pool'], TOOL_TIMEOUT_MS);
    const pools = listed
      .split('\n')
      .map((line) => line.split(/\s+/)[0] ?? '')
      .filter((name) => /^docker-\d+:\d+-\d+-pool$/.test(name));
    if (pools.length !== 1)
      throw new Error(`expected one Docker loop-lvm thin pool, found: ${pools.join(' ') || 'none'}`);
    // not cached: a stale pool of an earlier run may be the only one listed before dockerd made its own
    return pools[0] as string;
  }

  async register(containerId: string): Promise<RigContainer> {
    const mountId = readFileSync(
      path.join(this.dockerd.dataRoot, 'image', 'devicemapper', 'layerdb', 'mounts', containerId, 'mount-id'),
      'utf8',
    ).trim();
    if (!/^[0-9a-f]{64}$/.test(mountId))
      throw new Error(`mount id ${JSON.stringify(mountId)} of ${containerId}`);
    this.removedMountIds.delete(mountId);
    this.liveMountIds.add(mountId);
    const container: DmContainer = { containerId, removedPrefix: null, mountId };
    return container;
  }

  forget(container: RigContainer): void {
    const { mountId } = container as DmContainer;
    this.liveMountIds.delete(mountId);
    this.removedMountIds.add(mountId);
  }

  /** Active thin devices: name -> length in bytes (single-segment devices only). */
  private async thinDevices(): Promise<Map<string, number>> {
    const text = await this.run(RIG_TOOLS.dmsetup, ['table', '--target', 'thin'], TOOL_TIMEOUT_MS);
    const sizes = new Map<string, number>();
    // a device Docker is making or removing has no table yet: dmsetup prints `name: ` alone, which
    // the agent's parser refuses as a whole (seen in the guest, loop-lvm: the agent lost that pass)
    const withTables = text
      .split('\n')
      .filter((line) => !/^\S+:\s*$/.test(line))
      .join('\n');
    for (const [name, segments] of parseDmsetupAllDevices(withTables)) {
      const [segment] = segments;
      if (segments.length === 1 && segment) sizes.set(name, segment.lengthSectors * SECTOR_BYTES);
    }
    return sizes;
  }

  async readLimits(containers: readonly RigContainer[]): Promise<Map<string, number>> {
    const limits = new Map<string, number>();
    if (containers.length === 0) return limits;
    const devices = await this.thinDevices();
    const byMountId = new Map<string, number>();
    for (const [name, bytes] of devices) {
      const mountId = /-([0-9a-f]{64})$/.exec(name)?.[1];
      if (mountId) byMountId.set(mountId, bytes);
    }
    for (const container of containers) {
      const bytes = byMountId.get((container as DmContainer).mountId);
      if (bytes !== undefined) limits.set(container.containerId, bytes);
    }
    return limits;
  }

  async poolUsage(): Promise<PoolUsage> {
    const pool = await this.pool();
    const [tableSegment] = parseDmsetupOneDevice(
      await this.run(RIG_TOOLS.dmsetup, ['table', pool], TOOL_TIMEOUT_MS),
    );
    const [statusSegment] = parseDmsetupOneDevice(
      await this.run(RIG_TOOLS.dmsetup, ['status', pool], TOOL_TIMEOUT_MS),
    );
    if (!tableSegment || !statusSegment) throw new Error(`no table or status for ${pool}`);
    const blockBytes = parseThinPoolTable(tableSegment).dataBlockSizeSectors * SECTOR_BYTES;
    const status = parseThinPoolStatus(statusSegment);
    if (status.dataTotalBlocks === null || status.dataUsedBlocks === null)
      throw new Error(`${pool} is in Fail mode`);
    return {
      totalBytes: status.dataTotalBlocks * blockBytes,
      freeBytes: (status.dataTotalBlocks - status.dataUsedBlocks) * blockBytes,
    };
  }

  async fillPool(bytes: number): Promise<void> {
    const pool = await this.pool();
    const deviceId = FILL_DEVICE_ID_BASE + this.fills.length;
    const name = `agsoak-fill-${process.pid}-${this.fills.length}`;
    const sectors = Math.floor(bytes / SECTOR_BYTES);
    await this.run(RIG_TOOLS.dmsetup, ['message', pool, '0', `create_thin ${deviceId}`], TOOL_TIMEOUT_MS);
    this.fills.push({ name, deviceId });
    await this.run(
      RIG_TOOLS.dmsetup,
      ['create', name, '--table', `0 ${sectors} thin /dev/mapper/${pool} ${deviceId}`],
      TOOL_TIMEOUT_MS,
    );
    // a thin device takes pool blocks only where it is written
    await this.run(
      RIG_TOOLS.dd,
      [
        'if=/dev/zero',
        `of=/dev/mapper/${name}`,
        'bs=1M',
        `count=${Math.floor(bytes / MiB)}`,
        'oflag=direct',
        'status=none',
      ],
      FILL_TIMEOUT_MS,
    );
  }

  async drainPool(): Promise<void> {
    if (this.fills.length === 0) return;
    const pool = await this.pool();
    for (const fill of this.fills.splice(0)) {
      await this.run(RIG_TOOLS.dmsetup, ['remove', fill.name], TOOL_TIMEOUT_MS);
      await this.run(RIG_TOOLS.dmsetup, ['message', pool, '0', `delete ${fill.deviceId}`], TOOL_TIMEOUT_MS);
    }
  }

  /**
   * The agent's kernel holds (loop devices over a grown container device, kept open across the
   * container's stop until dockerd restarts; src/storage/devicemapper/holds.ts) outlive the agent
   * and dockerd: a held device cannot be removed, nor its pool (seen in the guest: the loop-lvm
   * pool and a held device stayed after the soak). Detaches the loops over this rig's containers'
   * devices only.
   */
  private async detachHolds(): Promise<void> {
    const mountIds = new Set([...this.liveMountIds, ...this.removedMountIds]);
    const info = parseDmInfoColumns(
      await this.run(
        RIG_TOOLS.dmsetup,
        ['info', '-c', '--noheadings', '--separator', DM_INFO_SEPARATOR, '-o', DM_INFO_FIELDS],
        TOOL_TIMEOUT_MS,
      ),
    );
    const ours = new Set<string>();
    for (const device of info.values()) {
      const mountId = /-([0-9a-f]{64})$/.exec(device.name)?.[1];
      if (mountId === undefined || !mountIds.has(mountId)) continue;
      ours.add(`/dev/dm-${device.minor}`);
      ours.add(`/dev/mapper/${device.name}`);
    }
    const loops = await this.run(
      RIG_TOOLS.losetup,
      ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'],
      TOOL_TIMEOUT_MS,
    );
    for (const line of loops.split('\n')) {
      const [loop, backFile] = line.trim().split(/\s+/);
      if (loop && backFile && ours.has(backFile))
        await this.run(RIG_TOOLS.losetup, ['-d', loop], TOOL_TIMEOUT_MS).catch(() => undefined);
    }
  }

  /** Thin devices of removed containers that are still active once deferred removal had its time. */
  async leftovers(atMs: number): Promise<Violation[]> {
    const deadline = Date.now() + this.removalSettleMs;
    for (;;) {
      const active = [...(await this.thinDevices()).keys()].filter((name) => {
        const mountId = /-([0-9a-f]{64})$/.exec(name)?.[1];
        return mountId !== undefined && this.removedMountIds.has(mountId) && !this.liveMountIds.has(mountId);
      });
      if (active.length === 0 || Date.now() >= deadline) {
        return active.map((name) => ({
          invariant: 'leak' as const,
          atMs,
          detail: `thin device ${name} of a removed container is still active`,
        }));
      }
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  }

  agentPoolLines(): string[] {
    // 20 containers of up to 512M on a 4 GiB pool are 2.5x overcommitted: the default 2.0 would
    // refuse grows the invariants expect (test/vm/guest/dm-sequence.sh sets 20 too)
    return ['maxOvercommit: 20'];
  }

  checkAgentState(stateDir: string, atMs: number): { allowed: RegExp[]; violations: Violation[] } {
    const violations: Violation[] = [];
    const locksDir = path.join(stateDir, 'locks');
    if (existsSync(locksDir)) {
      for (const entry of readdirSync(locksDir)) {
        if (!entry.endsWith('.lock.d')) {
          violations.push({ invariant: 'leak', atMs, detail: `state directory still holds locks/${entry}` });
          continue;
        }
        violations.push(
          ...checkReleasedLock(atMs, `locks/${entry}`, readdirSync(path.join(locksDir, entry))),
        );
      }
    }
    const intents = path.join(stateDir, 'devicemapper-intents.jsonl');
    if (existsSync(intents)) violations.push(...checkGrowIntents(atMs, readFileSync(intents, 'utf8')));
    return {
      // the agent's devicemapper backend keeps these across restarts by design (its write-ahead
      // grow journal, the grown devices persistence re-creates, one lock directory per device)
      allowed: [/^devicemapper-intents\.jsonl$/, /^devicemapper-grown\.json$/, /^locks$/],
      violations,
    };
  }

  figures(): Record<string, number> {
    return { removedDevices: this.removedMountIds.size };
  }
}

/**
 * The devicemapper grow journal (`devicemapper-intents.jsonl`, src/storage/devicemapper/journal.ts)
 * after the agent's clean stop: every intent must have reached a terminal step (done, rolled back,
 * abandoned); one that did not is a grow the agent left half made. A line that is not a JSON
 * record is a leak too (the agent writes whole lines, fsync'd).
 */
export function checkGrowIntents(atMs: number, text: string): Violation[] {
  const violations: Violation[] = [];
  const steps = new Map<string, { device: string; steps: GrowStepName[] }>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let record: {
      step?: GrowStepName;
      intentId?: string;
      intent?: { intentId?: string; deviceName?: string; poolName?: string };
    };
    try {
      record = JSON.parse(line) as typeof record;
    } catch {
      violations.push({
        invariant: 'leak',
        atMs,
        detail: `devicemapper-intents.jsonl: not a JSON record: ${line.slice(0, 80)}`,
      });
      continue;
    }
    if (record.step === 'intent' && record.intent?.intentId) {
      steps.set(record.intent.intentId, {
        device: record.intent.deviceName ?? record.intent.poolName ?? '?',
        steps: [],
      });
    } else if (record.intentId && record.step) {
      steps.get(record.intentId)?.steps.push(record.step);
    }
  }
  for (const [intentId, entry] of steps) {
    if (entry.steps.some((step) => TERMINAL_STEPS.has(step))) continue;
    violations.push({
      invariant: 'leak',
      atMs,
      detail: `devicemapper grow ${intentId} of ${entry.device} unfinished after the clean stop (steps: ${entry.steps.join(', ') || 'none'})`,
    });
  }
  return violations;
}
