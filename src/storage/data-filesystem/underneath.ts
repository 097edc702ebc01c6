/**
 * A block device that grew underneath the data filesystem (src/policy/grown-underneath.ts decides):
 * the cheap probes that feed that policy, and its two changes, each journaled write-ahead like the
 * LV grow (./grow.ts) in its own journal (`<stateDir>/data-filesystem-underneath-journal.jsonl`),
 * one command per step, argument arrays, re-read after acting:
 *  - grow-filesystem: the filesystem's online grow into its own device (./fs-grow.ts), verified by
 *    statfs. Steps: intent, fs-grown, done.
 *  - pvresize: `pvresize <pv>` (no size: the PV fills its device, never shrinks a grown device),
 *    verified by `pvs`. Steps: intent, pv-resized, done. The LV grow that follows is the normal one.
 * {@link recoverUnderneathGrows} finishes or rolls back what a killed agent left, from what the
 * mount table, statfs and `pvs` say now.
 *
 * Cost: the device's size is a sysfs read each look; the filesystem's own size (ext4: its
 * superblock, read directly; XFS: `xfs_growfs -n`; btrfs: `btrfs filesystem show`) and `pvs` are
 * read only when a device size seen in sysfs changed since the last probe (and once at start).
 */
import { open, readdir, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { CommandRunner } from '../../exec/runner.js';
import type { Logger } from '../../log/logger.js';
import { isGrowableFilesystem, type GrowableFilesystem } from '../../policy/data-filesystem.js';
import type {
  PartitionRoom,
  PhysicalVolumeObservation,
  UnderneathObservation,
} from '../../policy/grown-underneath.js';
import { errorMessage } from '../../util/errors.js';
import { withDeviceLock } from '../devicemapper/lock.js';
import {
  readBlockStack,
  type BlockStack,
  type BlockStackPaths,
  DEFAULT_BLOCK_STACK_PATHS,
} from './block-stack.js';
import { fsGrowCommand, parseBtrfsDevices } from './fs-grow.js';
import { DataFsJournal } from './journal.js';
import type { LogicalVolumeReport } from './lvm.js';

const MIB = 1024 * 1024;
const LVM_TIMEOUT_FLOOR_MS = 120_000;
const FS_GROW_TIMEOUT_FLOOR_MS = 300_000;

// ---------------------------------------------------------------------------------------------
// probes

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

// ---------------------------------------------------------------------------------------------
// the two changes, journaled

export type UnderneathIntent =
  | {
      kind: 'device-fs';
      intentId: string;
      devicePath: string;
      majorMinor: string;
      fsType: GrowableFilesystem;
      mountPoint: string;
      deviceBytes: number;
      fsBeforeBytes: number;
      why: string;
    }
  | {
      kind: 'pv-resize';
      intentId: string;
      vg: string;
      pvName: string;
      fromPvBytes: number;
      devBytes: number;
      why: string;
    };

export type UnderneathJournal = DataFsJournal<UnderneathIntent>;

export function underneathJournalIn(stateDir: string, nowMs?: () => number): UnderneathJournal {
  return new DataFsJournal<UnderneathIntent>(
    path.join(stateDir, 'data-filesystem-underneath-journal.jsonl'),
    nowMs,
  );
}

export interface UnderneathGrowDeps {
  runner: CommandRunner;
  journal: UnderneathJournal;
  stateDir: string;
  statfsTotalBytes(mountPoint: string): Promise<number>;
  logger: Logger;
  commandTimeoutMs: number;
  nowMs(): number;
  blockStackPaths?: BlockStackPaths;
}

export interface UnderneathGrowResult {
  fromBytes: number;
  toBytes: number;
  noop: boolean;
}

/** Where a failed change left the system (as DataFsGrowError's state). */
export class UnderneathGrowError extends Error {
  override readonly name = 'UnderneathGrowError';
  constructor(
    message: string,
    readonly step: string,
    readonly state: 'unchanged' | 'pending',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

let intentCounter = 0;
const newIntentId = (deps: UnderneathGrowDeps) => `${deps.nowMs()}-${process.pid}-u${(intentCounter += 1)}`;

function deviceLockKey(devicePath: string): string {
  return `datafs-dev-${path.basename(devicePath)}`;
}

function pvLockKey(vg: string): string {
  return `datafs-pv-${vg}`;
}

/** The planned command lines, for the dry run and status. */
export function plannedUnderneathCommands(
  action: { action: 'grow-filesystem'; devicePath: string } | { action: 'pvresize'; pvName: string },
  fsType: string,
  mountPoint: string,
): string[] {
  if (action.action === 'pvresize') return [`pvresize ${action.pvName}`];
  if (fsType === 'btrfs') return [`btrfs filesystem resize <devid>:max ${mountPoint}`];
  if (!isGrowableFilesystem(fsType)) return [];
  const { tool, args } = fsGrowCommand(fsType, action.devicePath, mountPoint, null);
  return [[tool, ...args].join(' ')];
}

/** The filesystem grow and its statfs verification (idempotent: recovery runs it again). */
async function completeDeviceFsGrow(
  deps: UnderneathGrowDeps,
  intent: Extract<UnderneathIntent, { kind: 'device-fs' }>,
): Promise<number> {
  let tool = 'btrfs filesystem show';
  try {
    let devid: number | null = null;
    if (intent.fsType === 'btrfs') {
      const devices = parseBtrfsDevices(
        (
          await deps.runner.run({
            tool: 'btrfs',
            args: ['filesystem', 'show', '--raw', intent.mountPoint],
            timeoutMs: deps.commandTimeoutMs,
          })
        ).stdout,
      );
      const mine = devices.filter((device) => device.path === intent.devicePath);
      devid = (mine.length === 1 ? mine[0] : devices.length === 1 ? devices[0] : undefined)?.devid ?? null;
      if (devid === null) throw new Error(`no btrfs device ${intent.devicePath}`);
    }
    const command = fsGrowCommand(intent.fsType, intent.devicePath, intent.mountPoint, devid);
    tool = command.tool;
    await deps.runner.run({
      tool: command.tool,
      args: command.args,
      timeoutMs: Math.max(deps.commandTimeoutMs, FS_GROW_TIMEOUT_FLOOR_MS),
    });
  } catch (error) {
    deps.journal.record(intent.intentId, 'failed', `${tool}: ${errorMessage(error)}`);
    throw new UnderneathGrowError(
      `${intent.devicePath}: ${tool} failed (the filesystem stays usable at its old size; retried later): ${errorMessage(error)}`,
      tool,
      'pending',
      { cause: error },
    );
  }
  deps.journal.record(intent.intentId, 'fs-grown');
  const after = await deps.statfsTotalBytes(intent.mountPoint);
  if (after <= intent.fsBeforeBytes || after > intent.deviceBytes) {
    const detail = `verify: filesystem ${after} bytes (before ${intent.fsBeforeBytes}, device ${intent.deviceBytes})`;
    // the tool ran and said nothing was wrong, yet nothing changed: roll back, do not loop on it
    deps.journal.record(intent.intentId, after === intent.fsBeforeBytes ? 'rolled-back' : 'failed', detail);
    throw new UnderneathGrowError(
      `${intent.devicePath}: ${detail}`,
      'verify',
      after === intent.fsBeforeBytes ? 'unchanged' : 'pending',
    );
  }
  deps.journal.record(intent.intentId, 'done', `filesystem ${after} bytes`);
  return after;
}

/** Grows the filesystem on its own (whole) device into the space the device gained. */
export async function growFilesystemToDevice(
  deps: UnderneathGrowDeps,
  request: {
    devicePath: string;
    majorMinor: string;
    fsType: GrowableFilesystem;
    mountPoint: string;
    deviceBytes: number;
    why: string;
  },
): Promise<UnderneathGrowResult> {
  return withDeviceLock(deps.stateDir, deviceLockKey(request.devicePath), async () => {
    const fsBeforeBytes = await deps.statfsTotalBytes(request.mountPoint);
    const intent = { kind: 'device-fs' as const, intentId: newIntentId(deps), ...request, fsBeforeBytes };
    deps.journal.begin(intent);
    deps.logger.info(
      { device: request.devicePath, deviceBytes: request.deviceBytes, fsBeforeBytes, why: request.why },
      'growing the data filesystem into its grown device',
    );
    const after = await completeDeviceFsGrow(deps, intent);
    deps.logger.info({ device: request.devicePath, fsBytes: after }, 'data filesystem grown into its device');
    return { fromBytes: fsBeforeBytes, toBytes: after, noop: false };
  });
}

async function pvRow(deps: UnderneathGrowDeps, vg: string, pvName: string): Promise<PvsRow> {
  const rows = await readPvs(deps.runner, vg, Math.max(deps.commandTimeoutMs, LVM_TIMEOUT_FLOOR_MS));
  const row = rows.find((candidate) => candidate.pvName === pvName);
  if (!row) throw new Error(`pvs lists no PV ${pvName} in VG ${vg}`);
  return row;
}

/** `pvresize <pv>`, then pvs: the PV fills the device it sits on (never shrinks: re-read first). */
async function completePvResize(
  deps: UnderneathGrowDeps,
  intent: Extract<UnderneathIntent, { kind: 'pv-resize' }>,
): Promise<number> {
  let pvresizeError: unknown = null;
  try {
    await deps.runner.run({
      tool: 'pvresize',
      args: [intent.pvName],
      timeoutMs: Math.max(deps.commandTimeoutMs, LVM_TIMEOUT_FLOOR_MS),
    });
  } catch (error) {
    pvresizeError = error;
  }
  let after: PvsRow;
  try {
    after = await pvRow(deps, intent.vg, intent.pvName);
  } catch (error) {
    deps.journal.record(intent.intentId, 'failed', `pvs after pvresize: ${errorMessage(error)}`);
    throw new UnderneathGrowError(
      `${intent.pvName}: cannot re-read the PV: ${errorMessage(error)}`,
      'pvs',
      'pending',
      {
        cause: error,
      },
    );
  }
  if (after.pvSizeBytes <= intent.fromPvBytes) {
    const why = pvresizeError
      ? errorMessage(pvresizeError)
      : `PV still ${after.pvSizeBytes} bytes after pvresize`;
    deps.journal.record(intent.intentId, 'rolled-back', `pvresize: ${why}`);
    throw new UnderneathGrowError(
      `${intent.pvName}: pvresize failed (nothing changed): ${why}`,
      'pvresize',
      'unchanged',
      {
        cause: pvresizeError,
      },
    );
  }
  deps.journal.record(intent.intentId, 'pv-resized');
  deps.journal.record(intent.intentId, 'done', `PV ${after.pvSizeBytes} bytes`);
  return after.pvSizeBytes;
}

/** Resizes a PV of the data LV's VG to its grown device. */
export async function pvresizeUnderneath(
  deps: UnderneathGrowDeps,
  request: { vg: string; pvName: string; why: string },
): Promise<UnderneathGrowResult> {
  if (!isSafePvName(request.pvName))
    throw new Error(`not a PV device path: ${JSON.stringify(request.pvName)}`);
  return withDeviceLock(deps.stateDir, pvLockKey(request.vg), async () => {
    const before = await pvRow(deps, request.vg, request.pvName);
    if (before.devSizeBytes - before.peStartBytes - before.pvSizeBytes < MIB)
      return { fromBytes: before.pvSizeBytes, toBytes: before.pvSizeBytes, noop: true };
    const intent = {
      kind: 'pv-resize' as const,
      intentId: newIntentId(deps),
      vg: request.vg,
      pvName: request.pvName,
      fromPvBytes: before.pvSizeBytes,
      devBytes: before.devSizeBytes,
      why: request.why,
    };
    deps.journal.begin(intent);
    deps.logger.info(
      {
        pv: request.pvName,
        fromBytes: before.pvSizeBytes,
        deviceBytes: before.devSizeBytes,
        why: request.why,
      },
      'resizing a PV whose device grew',
    );
    const after = await completePvResize(deps, intent);
    deps.logger.info({ pv: request.pvName, pvBytes: after }, 'PV resized');
    return { fromBytes: before.pvSizeBytes, toBytes: after, noop: false };
  });
}

export interface UnderneathRecoveryReport {
  intentId: string;
  subject: string;
  outcome: 'completed' | 'rolled-back' | 'pending';
  detail: string;
}

/** Finishes what a killed or failed change left (never throws; a failure stays pending). */
export async function recoverUnderneathGrows(deps: UnderneathGrowDeps): Promise<UnderneathRecoveryReport[]> {
  const reports: UnderneathRecoveryReport[] = [];
  for (const { intent, steps } of deps.journal.pending()) {
    const subject = intent.kind === 'device-fs' ? intent.devicePath : `PV ${intent.pvName}`;
    const report = (outcome: UnderneathRecoveryReport['outcome'], detail: string) =>
      reports.push({ intentId: intent.intentId, subject, outcome, detail });
    try {
      if (intent.kind === 'pv-resize') {
        await withDeviceLock(deps.stateDir, pvLockKey(intent.vg), async () => {
          const now = await pvRow(deps, intent.vg, intent.pvName);
          if (now.pvSizeBytes > intent.fromPvBytes) {
            if (!steps.includes('pv-resized')) deps.journal.record(intent.intentId, 'pv-resized');
            deps.journal.record(intent.intentId, 'done', `recovered: PV ${now.pvSizeBytes} bytes`);
            report('completed', `PV ${now.pvSizeBytes} bytes`);
            return;
          }
          const after = await completePvResize(deps, intent);
          report('completed', `pvresize run again: PV ${after} bytes`);
        });
        continue;
      }
      await withDeviceLock(deps.stateDir, deviceLockKey(intent.devicePath), async () => {
        const stack = await readBlockStack(
          intent.mountPoint,
          deps.blockStackPaths ?? DEFAULT_BLOCK_STACK_PATHS,
        );
        if (stack.mountPoint !== intent.mountPoint || stack.deviceMajorMinor !== intent.majorMinor) {
          report(
            'pending',
            `${intent.mountPoint} is not mounted from ${intent.devicePath} now: the grow waits until it is`,
          );
          return;
        }
        const after = await completeDeviceFsGrow(deps, intent);
        report('completed', `filesystem ${after} bytes`);
      });
    } catch (error) {
      const unchanged = error instanceof UnderneathGrowError && error.state === 'unchanged';
      report(unchanged ? 'rolled-back' : 'pending', errorMessage(error));
    }
  }
  for (const entry of reports)
    (entry.outcome === 'pending' ? deps.logger.warn.bind(deps.logger) : deps.logger.info.bind(deps.logger))(
      { ...entry },
      'data filesystem grown-underneath recovery',
    );
  if (reports.some((entry) => entry.outcome !== 'pending')) deps.journal.compact();
  return reports;
}
