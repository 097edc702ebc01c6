/**
 * A block device grown underneath the data filesystem: the pure policy, the probes' parsers (the
 * XFS geometry is the recorded `xfs_growfs` output; the ext4 superblock fields are laid out as in
 * the kernel's struct ext4_super_block; the pvs report has the recorded shape with the two fields
 * this code adds, dev_size and pe_start), the sysfs partition walk over a fake sysfs tree, the
 * prober's cost (no process while no size changed), and both changes under a kill between each
 * pair of steps, finished or shown unchanged by recovery (the data-filesystem-grow test's style).
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CommandResult, CommandRunner, CommandSpec } from '../../src/exec/runner.js';
import { silentLogger } from '../../src/log/logger.js';
import {
  attemptKey,
  decideUnderneath,
  type UnderneathObservation,
} from '../../src/policy/grown-underneath.js';
import type { BlockStack } from '../../src/storage/data-filesystem/block-stack.js';
import type { LogicalVolumeReport } from '../../src/storage/data-filesystem/lvm.js';
import {
  growFilesystemToDevice,
  isSafePvName,
  parseExt4SuperblockSizeBytes,
  parsePvsReport,
  parseXfsDataBytes,
  partitionRoomOf,
  pvresizeUnderneath,
  recoverUnderneathGrows,
  underneathJournalIn,
  UnderneathProber,
  type UnderneathGrowDeps,
} from '../../src/storage/data-filesystem/underneath.js';
import { GIB, MIB, recorded } from './data-filesystem-fixtures.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const tempDir = (prefix: string) => {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
};

const wholeDisk = (sizeBytes: number, fsSizeBytes: number | null): UnderneathObservation => ({
  mountPoint: '/var/lib/docker',
  fsType: 'ext4',
  readOnly: false,
  device: { devicePath: '/dev/vdb', sizeBytes, fsSizeBytes, partitionRoom: null },
  pvs: null,
  vgExtentBytes: null,
});
const onPv = (devSizeBytes: number, pvSizeBytes: number): UnderneathObservation => ({
  mountPoint: '/var/lib/docker',
  fsType: 'xfs',
  readOnly: false,
  device: null,
  pvs: [{ pvName: '/dev/vdc', devSizeBytes, pvSizeBytes, peStartBytes: MIB, partitionRoom: null }],
  vgExtentBytes: 4 * MIB,
});
const noHistory = { failedAt: new Set<string>() };

describe('decideUnderneath', () => {
  it('a whole disk larger than its filesystem: grow the filesystem to the device, without a threshold', () => {
    expect(decideUnderneath(wholeDisk(20 * GIB, 10 * GIB), noHistory)).toMatchObject({
      action: 'grow-filesystem',
      devicePath: '/dev/vdb',
      fromBytes: 10 * GIB,
      toBytes: 20 * GIB,
      unusedBytes: 10 * GIB,
    });
  });

  it('a filesystem that fills its device, or leaves less than the slack, is left alone', () => {
    expect(decideUnderneath(wholeDisk(10 * GIB, 10 * GIB), noHistory).action).toBe('none');
    expect(decideUnderneath(wholeDisk(10 * GIB, 10 * GIB - 8 * MIB), noHistory).action).toBe('none');
    expect(decideUnderneath(wholeDisk(10 * GIB, null), noHistory).action).toBe('none');
  });

  it('read-only, or a failed grow at the same device size: not tried (again)', () => {
    expect(decideUnderneath({ ...wholeDisk(20 * GIB, 10 * GIB), readOnly: true }, noHistory).action).toBe(
      'none',
    );
    const failedAt = new Set([attemptKey('/dev/vdb', 20 * GIB)]);
    expect(decideUnderneath(wholeDisk(20 * GIB, 10 * GIB), { failedAt }).action).toBe('none');
    // the device grew again: a new size is a new attempt
    expect(decideUnderneath(wholeDisk(30 * GIB, 10 * GIB), { failedAt }).action).toBe('grow-filesystem');
  });

  it('a partition whose disk grew: the agent does nothing, the fix is growpart', () => {
    const observation = wholeDisk(10 * GIB, 10 * GIB);
    observation.device!.partitionRoom = {
      kernelName: 'vda1',
      number: 1,
      diskKernelName: 'vda',
      roomAfterBytes: 5 * GIB,
    };
    const decision = decideUnderneath(observation, noHistory);
    expect(decision).toMatchObject({ action: 'manual', unusedBytes: 5 * GIB });
    expect(decision.action === 'manual' && decision.fix).toContain('growpart /dev/vda 1');
  });

  it('a PV on a grown device: pvresize; less than one extent more is nothing', () => {
    expect(decideUnderneath(onPv(20 * GIB, 10 * GIB - 4 * MIB), noHistory)).toMatchObject({
      action: 'pvresize',
      pvName: '/dev/vdc',
      fromBytes: 10 * GIB - 4 * MIB,
      toBytes: 20 * GIB - MIB,
    });
    // pv_size = dev_size - pe_start rounded down to extents: 3 MiB unused is the rounding
    expect(decideUnderneath(onPv(10 * GIB, 10 * GIB - 4 * MIB), noHistory)).toMatchObject({
      action: 'none',
      unusedBytes: 3 * MIB,
    });
  });

  it('a PV on a partition whose disk grew: growpart, then the agent pvresizes', () => {
    const observation = onPv(10 * GIB, 10 * GIB - 4 * MIB);
    observation.pvs![0]!.partitionRoom = {
      kernelName: 'vdc2',
      number: 2,
      diskKernelName: 'vdc',
      roomAfterBytes: 6 * GIB,
    };
    const decision = decideUnderneath(observation, noHistory);
    expect(decision.action).toBe('manual');
    expect(decision.action === 'manual' && decision.fix).toContain(
      'growpart /dev/vdc 2; then the agent runs pvresize',
    );
  });
});

describe('probe parsers', () => {
  it('ext4 superblock: blocks count x block size, with the high word when 64bit', () => {
    const superblock = Buffer.alloc(1024);
    superblock.writeUInt16LE(0xef53, 0x38);
    superblock.writeUInt32LE(262144, 4); // s_blocks_count_lo
    superblock.writeUInt32LE(2, 24); // s_log_block_size: 4096
    expect(parseExt4SuperblockSizeBytes(superblock)).toBe(GIB);
    superblock.writeUInt32LE(0x80, 0x60); // INCOMPAT_64BIT
    superblock.writeUInt32LE(1, 0x150); // s_blocks_count_hi
    expect(parseExt4SuperblockSizeBytes(superblock)).toBe((2 ** 32 + 262144) * 4096);
    expect(() => parseExt4SuperblockSizeBytes(Buffer.alloc(1024))).toThrow('0xEF53');
  });

  it('XFS geometry from the recorded xfs_growfs output: data bsize x blocks', () => {
    expect(parseXfsDataBytes(recorded('fs/xfs_growfs-nothing.txt'))).toBe(393216 * 4096);
    expect(() => parseXfsDataBytes('nonsense')).toThrow('no data section');
  });

  it('pvs report (the recorded shape with dev_size and pe_start)', () => {
    const report = JSON.parse(recorded('lvm/pvs.json')) as {
      report: Array<{ pv: Array<Record<string, string>> }>;
    };
    const row = report.report[0]!.pv[0]!;
    row.dev_size = String(10 * GIB);
    row.pe_start = String(MIB);
    expect(parsePvsReport(JSON.stringify(report))).toEqual([
      {
        pvName: '/dev/vdb',
        vg: 'agdata',
        pvSizeBytes: 8585740288,
        devSizeBytes: 10 * GIB,
        peStartBytes: MIB,
      },
    ]);
    row.dev_size = '1.5g';
    expect(() => parsePvsReport(JSON.stringify(report))).toThrow('dev_size');
  });

  it('PV names handed to pvresize are device paths only', () => {
    expect(isSafePvName('/dev/vdb')).toBe(true);
    expect(isSafePvName('/dev/mapper/crypt-pv')).toBe(true);
    for (const bad of ['-ff', 'vdb', '/dev/../etc/passwd', '/dev/vdb --yes', ''])
      expect(isSafePvName(bad), bad).toBe(false);
  });
});

/** A fake /sys/class/block layout: /sys/dev/block/<mm> links into /sys/block/<disk>/<part>. */
function fakeSysfs(
  partitions: Array<{ name: string; number: number; startSectors: number; sectors: number }>,
  diskSectors: number,
) {
  const root = tempDir('underneath-sysfs-');
  const disk = path.join(root, 'block', 'vda');
  mkdirSync(disk, { recursive: true });
  writeFileSync(path.join(disk, 'size'), `${diskSectors}\n`);
  const devBlock = path.join(root, 'dev', 'block');
  mkdirSync(devBlock, { recursive: true });
  symlinkSync(disk, path.join(devBlock, '254:0'));
  for (const partition of partitions) {
    const dir = path.join(disk, partition.name);
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'partition'), `${partition.number}\n`);
    writeFileSync(path.join(dir, 'start'), `${partition.startSectors}\n`);
    writeFileSync(path.join(dir, 'size'), `${partition.sectors}\n`);
    symlinkSync(dir, path.join(devBlock, `254:${partition.number}`));
  }
  return devBlock;
}

describe('partitionRoomOf (sysfs)', () => {
  const GIB_SECTORS = GIB / 512;
  it('the last partition of a grown disk has the room after it (less the last MiB)', async () => {
    const devBlock = fakeSysfs(
      [
        { name: 'vda1', number: 1, startSectors: 2048, sectors: GIB_SECTORS },
        { name: 'vda2', number: 2, startSectors: 2048 + GIB_SECTORS, sectors: GIB_SECTORS },
      ],
      4 * GIB_SECTORS,
    );
    expect(await partitionRoomOf(path.join(devBlock, '254:2'))).toEqual({
      kernelName: 'vda2',
      number: 2,
      diskKernelName: 'vda',
      roomAfterBytes: 4 * GIB - (2048 * 512 + 2 * GIB) - MIB,
    });
    // a partition with another after it has no room; the disk itself is no partition
    expect(await partitionRoomOf(path.join(devBlock, '254:1'))).toMatchObject({ roomAfterBytes: 0 });
    expect(await partitionRoomOf(path.join(devBlock, '254:0'))).toBeNull();
  });
});

/** A runner that answers from a mutable world and counts what it ran. */
class CountingRunner implements CommandRunner {
  readonly calls: string[] = [];
  constructor(private readonly answer: (spec: CommandSpec) => string) {}
  async run(spec: CommandSpec): Promise<CommandResult> {
    this.calls.push(`${spec.tool} ${spec.args.join(' ')}`);
    return { stdout: this.answer(spec), stderr: '', exitCode: 0, durationMs: 0 };
  }
}

const pvsJson = (rows: Array<{ pv: string; vg: string; pvBytes: number; devBytes: number }>) =>
  JSON.stringify({
    report: [
      {
        pv: rows.map((row) => ({
          pv_name: row.pv,
          vg_name: row.vg,
          pv_size: String(row.pvBytes),
          dev_size: String(row.devBytes),
          pe_start: String(MIB),
        })),
      },
    ],
  });

describe('UnderneathProber', () => {
  function stackOn(
    sysDevBlock: string,
    majorMinor: string,
    deviceSizeBytes: number,
    dmName: string | null,
  ): BlockStack {
    void sysDevBlock;
    return {
      dataRoot: '/var/lib/docker',
      mountPoint: '/var/lib/docker',
      fsType: 'xfs',
      source: dmName ? `/dev/mapper/${dmName}` : '/dev/loop0',
      readOnly: false,
      deviceMajorMinor: majorMinor,
      deviceSizeBytes,
      dmName,
      lvm: dmName ? { vg: 'agloop', lv: 'docker' } : null,
      notLvmReason: null,
    };
  }

  it('whole device: the filesystem size is read once per device size (no process at rest)', async () => {
    const root = tempDir('underneath-probe-');
    const devBlock = path.join(root, 'dev', 'block');
    const loop = path.join(root, 'block', 'loop0');
    mkdirSync(loop, { recursive: true });
    mkdirSync(devBlock, { recursive: true });
    symlinkSync(loop, path.join(devBlock, '7:0'));
    const runner = new CountingRunner(() => recorded('fs/xfs_growfs-nothing.txt'));
    const prober = new UnderneathProber({
      runner,
      commandTimeoutMs: 1000,
      blockStackPaths: { mountInfoFile: '', sysDevBlock: devBlock },
    });
    const first = await prober.observe(stackOn(devBlock, '7:0', 1536 * MIB, null), null);
    expect(first.device).toMatchObject({
      devicePath: '/dev/loop0',
      sizeBytes: 1536 * MIB,
      fsSizeBytes: 1536 * MIB,
    });
    await prober.observe(stackOn(devBlock, '7:0', 1536 * MIB, null), null);
    expect(runner.calls).toEqual(['xfs_growfs -n /var/lib/docker']);
    // the device grew: read again
    const grown = await prober.observe(stackOn(devBlock, '7:0', 3 * GIB, null), null);
    expect(runner.calls).toHaveLength(2);
    expect(decideUnderneath(grown, noHistory).action).toBe('grow-filesystem');
  });

  it('LV: pvs runs once, and again only when a slave device of the LV changes size', async () => {
    const root = tempDir('underneath-probe-');
    const devBlock = path.join(root, 'dev', 'block');
    const dm = path.join(root, 'block', 'dm-0');
    const loop = path.join(root, 'block', 'loop1');
    mkdirSync(path.join(dm, 'slaves'), { recursive: true });
    mkdirSync(loop, { recursive: true });
    mkdirSync(devBlock, { recursive: true });
    symlinkSync(dm, path.join(devBlock, '253:0'));
    symlinkSync(loop, path.join(dm, 'slaves', 'loop1'));
    writeFileSync(path.join(loop, 'size'), `${(512 * MIB) / 512}\n`);
    const world = { devBytes: 512 * MIB };
    const runner = new CountingRunner(() =>
      pvsJson([
        { pv: '/dev/loop1', vg: 'agloop', pvBytes: 508 * MIB, devBytes: world.devBytes },
        { pv: '/dev/vdb', vg: 'other', pvBytes: GIB, devBytes: 2 * GIB },
      ]),
    );
    const lv = { vg: 'agloop', lv: 'docker', vgExtentBytes: 4 * MIB } as LogicalVolumeReport;
    const prober = new UnderneathProber({
      runner,
      commandTimeoutMs: 1000,
      blockStackPaths: { mountInfoFile: '', sysDevBlock: devBlock },
    });
    const stack = stackOn(devBlock, '253:0', 508 * MIB, 'agloop-docker');
    const first = await prober.observe(stack, lv);
    expect(first.pvs?.map((pv) => pv.pvName)).toEqual(['/dev/loop1']);
    expect(decideUnderneath(first, noHistory).action).toBe('none');
    await prober.observe(stack, lv);
    expect(runner.calls).toHaveLength(1);
    // truncate + losetup -c: sysfs shows the new size, pvs its dev_size
    world.devBytes = 1536 * MIB;
    writeFileSync(path.join(loop, 'size'), `${world.devBytes / 512}\n`);
    const grown = await prober.observe(stack, lv);
    expect(runner.calls).toHaveLength(2);
    expect(decideUnderneath(grown, noHistory)).toMatchObject({ action: 'pvresize', pvName: '/dev/loop1' });
  });
});

class Killed extends Error {}

/** The simulated device, filesystem and PV; each command changes them as the real ones do. */
interface World {
  fsBytes: number;
  pvBytes: number;
}
const DEVICE_BYTES = 1536 * MIB;
const FS_BEFORE = 384 * MIB;
const PV_BEFORE = 508 * MIB;
const PV_AFTER = DEVICE_BYTES - 4 * MIB;

class WorldRunner implements CommandRunner {
  events = 0;
  killed = false;
  readonly calls: string[] = [];
  journalAtKill: string | null = null;
  constructor(
    readonly world: World,
    readonly journalFile: string,
    readonly kill: { at: number; when: 'before' | 'after' } | null = null,
  ) {}

  private step<T>(effect: () => T): T {
    if (this.killed) throw new Killed('agent already killed');
    const index = this.events;
    this.events += 1;
    const kill = this.kill?.at === index ? this.kill.when : null;
    if (kill === 'before') this.die();
    const result = effect();
    if (kill === 'after') this.die();
    return result;
  }

  private die(): never {
    this.killed = true;
    this.journalAtKill = existsSync(this.journalFile) ? readFileSync(this.journalFile, 'utf8') : '';
    throw new Killed('agent killed');
  }

  async run(spec: CommandSpec): Promise<CommandResult> {
    const line = `${spec.tool} ${spec.args.join(' ')}`;
    return this.step(() => {
      this.calls.push(line);
      const ok = (stdout: string): CommandResult => ({ stdout, stderr: '', exitCode: 0, durationMs: 0 });
      if (line === 'resize2fs /dev/loop0') {
        const already = this.world.fsBytes === DEVICE_BYTES;
        this.world.fsBytes = DEVICE_BYTES;
        return ok(already ? recorded('fs/resize2fs-nothing.txt') : recorded('fs/resize2fs.txt'));
      }
      if (spec.tool === 'pvs')
        return ok(
          pvsJson([{ pv: '/dev/loop1', vg: 'agloop', pvBytes: this.world.pvBytes, devBytes: DEVICE_BYTES }]),
        );
      if (line === 'pvresize /dev/loop1') {
        this.world.pvBytes = PV_AFTER;
        return ok(
          '  Physical volume "/dev/loop1" changed\n  1 physical volume(s) resized or updated / 0 physical volume(s) not resized\n',
        );
      }
      throw new Error(`unexpected command: ${line}`);
    });
  }

  statfsTotalBytes = async (mountPoint: string): Promise<number> =>
    this.step(() => {
      if (mountPoint !== '/mnt/disk') throw new Error(`statfs of ${mountPoint}`);
      return this.world.fsBytes;
    });
}

function setupGrow() {
  const stateDir = tempDir('underneath-state-');
  const root = tempDir('underneath-mounts-');
  const sysDevBlock = path.join(root, 'dev', 'block');
  mkdirSync(path.join(sysDevBlock, '7:0'), { recursive: true });
  writeFileSync(path.join(sysDevBlock, '7:0', 'dev'), '7:0\n');
  writeFileSync(path.join(sysDevBlock, '7:0', 'size'), `${DEVICE_BYTES / 512}\n`);
  const mountInfoFile = path.join(root, 'mountinfo');
  writeFileSync(
    mountInfoFile,
    `${recorded('proc/mountinfo.txt').trimEnd()}\n90 25 7:0 / /mnt/disk rw,relatime - ext4 /dev/loop0 rw\n`,
  );
  const journal = underneathJournalIn(stateDir, () => 1_000);
  const world: World = { fsBytes: FS_BEFORE, pvBytes: PV_BEFORE };
  const deps = (runner: WorldRunner): UnderneathGrowDeps => ({
    runner,
    journal,
    stateDir,
    statfsTotalBytes: runner.statfsTotalBytes,
    logger: silentLogger(),
    commandTimeoutMs: 30_000,
    nowMs: () => 1_000,
    blockStackPaths: { mountInfoFile, sysDevBlock, realpath: async (file) => file },
  });
  return { journal, world, deps };
}

const CHANGES = {
  'grow-filesystem': (deps: UnderneathGrowDeps) =>
    growFilesystemToDevice(deps, {
      devicePath: '/dev/loop0',
      majorMinor: '7:0',
      fsType: 'ext4',
      mountPoint: '/mnt/disk',
      deviceBytes: DEVICE_BYTES,
      why: 'test',
    }),
  pvresize: (deps: UnderneathGrowDeps) =>
    pvresizeUnderneath(deps, { vg: 'agloop', pvName: '/dev/loop1', why: 'test' }),
};
const before = (world: World, change: keyof typeof CHANGES) =>
  change === 'pvresize' ? world.pvBytes === PV_BEFORE : world.fsBytes === FS_BEFORE;
const done = (world: World, change: keyof typeof CHANGES) =>
  change === 'pvresize' ? world.pvBytes === PV_AFTER : world.fsBytes === DEVICE_BYTES;

describe.each(['grow-filesystem', 'pvresize'] as const)('%s into a grown device', (change) => {
  it('runs one command, verifies, journals intent to done', async () => {
    const { world, journal, deps } = setupGrow();
    const runner = new WorldRunner(world, journal.file);
    const result = await CHANGES[change](deps(runner));
    expect(result.noop).toBe(false);
    expect(done(world, change)).toBe(true);
    expect(runner.calls.filter((call) => !call.startsWith('pvs'))).toEqual(
      change === 'pvresize' ? ['pvresize /dev/loop1'] : ['resize2fs /dev/loop0'],
    );
    const steps = readFileSync(journal.file, 'utf8')
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { step: string }).step);
    expect(steps).toEqual(['intent', change === 'pvresize' ? 'pv-resized' : 'fs-grown', 'done']);
    expect(journal.pending()).toEqual([]);
  });

  it('a kill between each pair of steps is finished or shown unchanged by recovery at restart', async () => {
    const probe = setupGrow();
    const counter = new WorldRunner(probe.world, probe.journal.file);
    await CHANGES[change](probe.deps(counter));
    const outcomes = new Set<string>();
    for (let at = 0; at < counter.events; at += 1) {
      for (const when of ['before', 'after'] as const) {
        const { world, journal, deps } = setupGrow();
        const doomed = new WorldRunner(world, journal.file, { at, when });
        await expect(CHANGES[change](deps(doomed))).rejects.toThrow();
        if (doomed.journalAtKill === null) throw new Error(`kill ${when} event ${at} never happened`);
        writeFileSync(journal.file, doomed.journalAtKill);
        const atKill = { ...world };
        const reports = await recoverUnderneathGrows(deps(new WorldRunner(world, journal.file)));
        const where = `kill ${when} event ${at} (${doomed.calls.at(-1) ?? 'statfs'}), world at kill ${JSON.stringify(atKill)}`;
        expect(journal.pending(), where).toEqual([]);
        if (reports.length === 0) {
          // killed before the intent was written: nothing changed, nothing to finish
          expect(before(world, change), where).toBe(true);
          outcomes.add('nothing-journaled');
        } else {
          // recovery finishes it: the intent says the device grew, and the command is idempotent
          expect(
            reports.map((report) => report.outcome),
            where,
          ).toEqual(['completed']);
          expect(done(world, change), where).toBe(true);
          outcomes.add(before(atKill, change) ? 'completed-from-unchanged' : 'completed');
        }
      }
    }
    expect([...outcomes].sort()).toEqual(['completed', 'completed-from-unchanged', 'nothing-journaled']);
  });
});
