/**
 * The cheap probes behind the grown-underneath policy (src/policy/grown-underneath.ts): a device's
 * size and partition layout from sysfs (no process), the filesystem's own size (ext4: its
 * superblock, read directly; XFS: `xfs_growfs -n`; btrfs: `btrfs filesystem show`), and `pvs`.
 * {@link UnderneathProber} reads the filesystem size and `pvs` only when a device size seen in
 * sysfs changed since its last probe (and once at start): no process at rest. The changes made on
 * what it finds are in ./underneath.ts.
 */
import { open, readdir, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { CommandRunner } from '../../exec/runner.js';
import { isGrowableFilesystem, type GrowableFilesystem } from '../../policy/data-filesystem.js';
import type {
  PartitionRoom,
  PhysicalVolumeObservation,
  UnderneathObservation,
} from '../../policy/grown-underneath.js';
import { errorMessage } from '../../util/errors.js';
import { type BlockStack, type BlockStackPaths, DEFAULT_BLOCK_STACK_PATHS } from './block-stack.js';
import { parseBtrfsDevices } from './fs-grow.js';
import type { LogicalVolumeReport } from './lvm.js';

const MIB = 1024 * 1024;

async function readText(file: string): Promise<string | null> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (error) {
    // ENOTDIR: a plain file of the disk's sysfs directory asked for its `partition`
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw error;
  }
}

async function sectorsBytes(file: string): Promise<number | null> {
  const text = await readText(file);
  const sectors = text === null ? NaN : Number(text);
  return Number.isSafeInteger(sectors) ? sectors * 512 : null;
}

/** Kernel names as /dev shows them: loop0, vdb, sda1, nvme0n1p2, dm-3. */
const KERNEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/;

/**
 * The room after a partition on its disk: null when the device is no partition. A partition that
 * is not the last one on its disk has no room (another partition follows it). The last MiB of the
 * disk is not counted (the GPT backup header, alignment).
 */
export async function partitionRoomOf(deviceDir: string): Promise<PartitionRoom | null> {
  const dir = await realpath(deviceDir);
  const numberText = await readText(path.join(dir, 'partition'));
  if (numberText === null) return null;
  const diskDir = path.dirname(dir);
  const [start, size, diskSize] = await Promise.all([
    sectorsBytes(path.join(dir, 'start')),
    sectorsBytes(path.join(dir, 'size')),
    sectorsBytes(path.join(diskDir, 'size')),
  ]);
  if (start === null || size === null || diskSize === null) return null;
  const end = start + size;
  let lastEnd = end;
  for (const entry of await readdir(diskDir)) {
    const siblingDir = path.join(diskDir, entry);
    if ((await readText(path.join(siblingDir, 'partition'))) === null) continue;
    const [siblingStart, siblingSize] = await Promise.all([
      sectorsBytes(path.join(siblingDir, 'start')),
      sectorsBytes(path.join(siblingDir, 'size')),
    ]);
    if (siblingStart !== null && siblingSize !== null)
      lastEnd = Math.max(lastEnd, siblingStart + siblingSize);
  }
  return {
    kernelName: path.basename(dir),
    number: Number(numberText),
    diskKernelName: path.basename(diskDir),
    roomAfterBytes: lastEnd > end ? 0 : Math.max(0, diskSize - end - MIB),
  };
}

/** ext4's size from its superblock (1024 bytes at offset 1024): blocks count x block size. */
export function parseExt4SuperblockSizeBytes(superblock: Buffer): number {
  if (superblock.length < 0x154 || superblock.readUInt16LE(0x38) !== 0xef53)
    throw new Error('not an ext4 superblock (magic 0xEF53 missing)');
  const blockSize = 1024 * 2 ** superblock.readUInt32LE(24);
  const incompat64bit = (superblock.readUInt32LE(0x60) & 0x80) !== 0;
  const blocks = superblock.readUInt32LE(4) + (incompat64bit ? superblock.readUInt32LE(0x150) * 2 ** 32 : 0);
  return blocks * blockSize;
}

/**
 * Reads the ext4 superblock through the block device: ext4 keeps its metadata in the device's own
 * buffer cache, so this read sees an online resize at once.
 */
export async function readExt4SizeBytes(devicePath: string): Promise<number> {
  const handle = await open(devicePath, 'r');
  try {
    const buffer = Buffer.alloc(1024);
    await handle.read(buffer, 0, 1024, 1024);
    return parseExt4SuperblockSizeBytes(buffer);
  } finally {
    await handle.close();
  }
}

/** `xfs_growfs -n` prints the geometry (the same as xfs_info): `data = bsize=4096 blocks=N`. */
export function parseXfsDataBytes(stdout: string): number {
  const match = /^data\s+=\s+bsize=(\d+)\s+blocks=(\d+)/m.exec(stdout);
  if (!match) throw new Error('xfs_growfs -n: no data section');
  return Number(match[1]) * Number(match[2]);
}

export const PVS_FIELDS = ['pv_name', 'vg_name', 'pv_size', 'dev_size', 'pe_start'] as const;

export function pvsArgs(): string[] {
  return ['--reportformat', 'json', '--units', 'b', '--nosuffix', '-o', PVS_FIELDS.join(',')];
}

export interface PvsRow {
  pvName: string;
  vg: string;
  pvSizeBytes: number;
  devSizeBytes: number;
  peStartBytes: number;
}

/** Parses the JSON report of {@link pvsArgs}; rows of other VGs are kept (the caller filters). */
export function parsePvsReport(stdout: string): PvsRow[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new Error('pvs: the report is not JSON');
  }
  const report = (parsed as { report?: Array<{ pv?: unknown[] }> }).report;
  const rows = Array.isArray(report)
    ? report.flatMap((entry) => (Array.isArray(entry.pv) ? entry.pv : []))
    : [];
  return rows.map((raw) => {
    const row = raw as Record<string, unknown>;
    const bytes = (field: string) => {
      const value = row[field];
      const number = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
      if (!Number.isSafeInteger(number))
        throw new Error(`pvs: field ${field} is not a byte count: ${JSON.stringify(value)}`);
      return number;
    };
    const text = (field: string) => {
      const value = row[field];
      if (typeof value !== 'string') throw new Error(`pvs: field ${field} missing`);
      return value;
    };
    return {
      pvName: text('pv_name'),
      vg: text('vg_name'),
      pvSizeBytes: bytes('pv_size'),
      devSizeBytes: bytes('dev_size'),
      peStartBytes: bytes('pe_start'),
    };
  });
}

/** A PV name pvresize may be given: a device path, no `..`, no option-looking name. */
export function isSafePvName(name: string): boolean {
  return /^\/dev\/[A-Za-z0-9_.+/-]+$/.test(name) && !name.split('/').includes('..');
}

export async function readPvs(runner: CommandRunner, vg: string, timeoutMs?: number): Promise<PvsRow[]> {
  const result = await runner.run({ tool: 'pvs', args: pvsArgs(), timeoutMs });
  return parsePvsReport(result.stdout).filter((row) => row.vg === vg);
}

export interface UnderneathProbeDeps {
  runner: CommandRunner;
  commandTimeoutMs: number;
  blockStackPaths?: BlockStackPaths;
  readExt4SizeBytes?: (devicePath: string) => Promise<number>;
}

/** What the filesystem itself says its size is (its own tool or superblock). */
export async function filesystemSizeBytes(
  deps: UnderneathProbeDeps,
  fsType: GrowableFilesystem,
  devicePath: string,
  mountPoint: string,
): Promise<number> {
  switch (fsType) {
    case 'ext4':
      return (deps.readExt4SizeBytes ?? readExt4SizeBytes)(devicePath);
    case 'xfs': {
      const result = await deps.runner.run({
        tool: 'xfs_growfs',
        args: ['-n', mountPoint],
        timeoutMs: deps.commandTimeoutMs,
      });
      return parseXfsDataBytes(result.stdout);
    }
    case 'btrfs': {
      const devices = parseBtrfsDevices(
        (
          await deps.runner.run({
            tool: 'btrfs',
            args: ['filesystem', 'show', '--raw', mountPoint],
            timeoutMs: deps.commandTimeoutMs,
          })
        ).stdout,
      );
      const mine = devices.filter((device) => device.path === devicePath);
      const device = mine.length === 1 ? mine[0] : devices.length === 1 ? devices[0] : undefined;
      if (!device) throw new Error(`btrfs filesystem show lists no device ${devicePath}`);
      return device.sizeBytes;
    }
  }
}

/**
 * Probes for {@link UnderneathObservation}, remembering the last answer: the filesystem size and
 * `pvs` are read again only when a device size in sysfs changed (or after {@link invalidate}).
 */
export class UnderneathProber {
  private fsProbe: { key: string; fsSizeBytes: number | null } | null = null;
  private pvProbe: { key: string; pvs: PvsRow[] } | null = null;
  /** The last probe error (a status and doctor line), null when the last probe worked. */
  lastError: string | null = null;

  constructor(private readonly deps: UnderneathProbeDeps) {}

  invalidate(): void {
    this.fsProbe = null;
    this.pvProbe = null;
  }

  private get sysDevBlock(): string {
    return (this.deps.blockStackPaths ?? DEFAULT_BLOCK_STACK_PATHS).sysDevBlock;
  }

  async observe(stack: BlockStack, lv: LogicalVolumeReport | null): Promise<UnderneathObservation> {
    const base: UnderneathObservation = {
      mountPoint: stack.mountPoint,
      fsType: stack.fsType,
      readOnly: stack.readOnly,
      device: null,
      pvs: null,
      vgExtentBytes: lv?.vgExtentBytes ?? null,
    };
    try {
      this.lastError = null;
      if (!stack.deviceMajorMinor) return base;
      const deviceDir = path.join(this.sysDevBlock, stack.deviceMajorMinor);
      if (stack.dmName === null && isGrowableFilesystem(stack.fsType) && stack.deviceSizeBytes !== null) {
        const kernelName = path.basename(await realpath(deviceDir));
        if (!KERNEL_NAME.test(kernelName))
          throw new Error(`odd kernel device name ${JSON.stringify(kernelName)}`);
        const devicePath = `/dev/${kernelName}`;
        const key = `${stack.deviceMajorMinor}@${stack.deviceSizeBytes}@${stack.mountPoint}`;
        if (this.fsProbe?.key !== key) {
          this.fsProbe = {
            key,
            fsSizeBytes: await filesystemSizeBytes(this.deps, stack.fsType, devicePath, stack.mountPoint),
          };
        }
        return {
          ...base,
          device: {
            devicePath,
            sizeBytes: stack.deviceSizeBytes,
            fsSizeBytes: this.fsProbe.fsSizeBytes,
            partitionRoom: await partitionRoomOf(deviceDir),
          },
        };
      }
      if (!stack.lvm || !lv) return base;
      // the PVs under the LV: its dm device's slaves, sized in sysfs (no process)
      const slavesDir = path.join(deviceDir, 'slaves');
      const slaves = (await readdir(slavesDir).catch(() => [] as string[])).filter((name) =>
        KERNEL_NAME.test(name),
      );
      const slaveInfo = await Promise.all(
        slaves.map(async (name) => ({
          name,
          sizeBytes: await sectorsBytes(path.join(slavesDir, name, 'size')),
          room: await partitionRoomOf(path.join(slavesDir, name)).catch(() => null),
        })),
      );
      const key = `${lv.vg}:${slaveInfo
        .map((slave) => `${slave.name}@${slave.sizeBytes}`)
        .sort()
        .join(',')}`;
      if (this.pvProbe?.key !== key) {
        this.pvProbe = { key, pvs: await readPvs(this.deps.runner, lv.vg, this.deps.commandTimeoutMs) };
      }
      const roomByPath = new Map(slaveInfo.map((slave) => [`/dev/${slave.name}`, slave.room]));
      const pvs: PhysicalVolumeObservation[] = this.pvProbe.pvs.map((row) => ({
        pvName: row.pvName,
        devSizeBytes: row.devSizeBytes,
        pvSizeBytes: row.pvSizeBytes,
        peStartBytes: row.peStartBytes,
        partitionRoom: roomByPath.get(row.pvName) ?? null,
      }));
      return { ...base, pvs };
    } catch (error) {
      this.lastError = errorMessage(error);
      this.invalidate();
      return base;
    }
  }
}
