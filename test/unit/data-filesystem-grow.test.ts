/**
 * The data-filesystem grower and its recovery, against a scripted runner fed with the outputs
 * recorded in the VM (lvs JSON re-serialised with the sizes of the simulated LV; lvextend, resize2fs,
 * xfs_growfs and btrfs outputs verbatim), and a kill of the agent between each pair of steps:
 * the journal as it stood at the kill plus the world (LV and filesystem sizes) as it stood, then a
 * fresh recovery, which must finish the grow or show that nothing changed, never leave it half done.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CommandError,
  type CommandResult,
  type CommandRunner,
  type CommandSpec,
} from '../../src/exec/runner.js';
import { silentLogger } from '../../src/log/logger.js';
import type { GrowableFilesystem } from '../../src/policy/data-filesystem.js';
import {
  DataFsGrowError,
  growDataFilesystem,
  type DataFsGrowDeps,
} from '../../src/storage/data-filesystem/grow.js';
import { DataFsJournal } from '../../src/storage/data-filesystem/journal.js';
import { recoverDataFilesystemGrows } from '../../src/storage/data-filesystem/recover.js';
import {
  GIB,
  lvsReport,
  recorded,
  recordedBlockStackPaths,
  type RecordedFs,
} from './data-filesystem-fixtures.js';

const FROM = GIB;
const TO = 1.5 * GIB;
/** statfs totals recorded before and after the 1 GiB -> 1.5 GiB grows (df/before.txt, df/after.txt). */
const FS_TOTAL: Record<RecordedFs, { before: number; after: number }> = {
  ext4: { before: 1020702720, after: 1548623872 },
  xfs: { before: 1006632960, after: 1543503872 },
  btrfs: { before: 1073741824, after: 1610612736 },
};

class Killed extends Error {}

/** The simulated LV and filesystem, changed by the commands the way the real ones changed them. */
interface World {
  lvBytes: number;
  fsBytes: number;
  vgFreeBytes: number;
}

/**
 * A strict runner over a {@link World}: every command must be one the grower is expected to run,
 * each answers with its recorded output. `killAt` = n kills the agent at the n-th event (a command
 * or a statfs), `before` or `after` its effect: from then on every call throws {@link Killed} and the
 * journal is frozen as it was.
 */
class WorldRunner implements CommandRunner {
  events = 0;
  killed = false;
  readonly calls: string[] = [];
  journalAtKill: string | null = null;
  constructor(
    readonly fs: RecordedFs,
    readonly world: World,
    readonly journalFile: string,
    readonly kill: { at: number; when: 'before' | 'after' } | null = null,
    readonly failures: Partial<Record<string, { stderr: string; exitCode: number }>> = {},
  ) {}

  /** Counts an event; kills before or after `effect` when this is the chosen one. */
  step<T>(effect: () => T): T {
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
      const lv = `agdata/data-${this.fs}`;
      const failure = this.failures[spec.tool];
      if (failure) {
        throw new CommandError({
          tool: spec.tool,
          args: spec.args,
          exitCode: failure.exitCode,
          signal: null,
          stderr: failure.stderr,
          timedOut: false,
          spawnFailed: false,
        });
      }
      const ok = (stdout: string): CommandResult => ({ stdout, stderr: '', exitCode: 0, durationMs: 0 });
      if (spec.tool === 'lvs' && spec.args.at(-1) === lv) {
        return ok(lvsReport(this.fs, { lvBytes: this.world.lvBytes, vgFreeBytes: this.world.vgFreeBytes }));
      }
      if (spec.tool === 'lvextend' && spec.args.join(' ') === `-L ${TO}b ${lv}`) {
        this.world.vgFreeBytes -= TO - this.world.lvBytes;
        this.world.lvBytes = TO;
        return ok(recorded(`lvm/lvextend-${this.fs}.txt`));
      }
      const grown = () => {
        const growTo = this.world.lvBytes >= TO ? FS_TOTAL[this.fs].after : this.world.fsBytes;
        const already = this.world.fsBytes === growTo;
        this.world.fsBytes = growTo;
        return already;
      };
      if (
        this.fs === 'ext4' &&
        spec.tool === 'resize2fs' &&
        line === `resize2fs /dev/mapper/agdata-data--ext4`
      ) {
        return grown() ? ok(recorded('fs/resize2fs-nothing.txt')) : ok(recorded('fs/resize2fs.txt'));
      }
      if (this.fs === 'xfs' && line === 'xfs_growfs /mnt/xfs') {
        return grown() ? ok(recorded('fs/xfs_growfs-nothing.txt')) : ok(recorded('fs/xfs_growfs.txt'));
      }
      if (this.fs === 'btrfs' && line === 'btrfs filesystem show --raw /mnt/btrfs') {
        return ok(recorded('btrfs/filesystem-show.txt'));
      }
      if (this.fs === 'btrfs' && line === 'btrfs filesystem resize 1:max /mnt/btrfs') {
        grown();
        return ok(recorded('fs/btrfs-resize.txt'));
      }
      throw new Error(`unexpected command: ${line}`);
    });
  }

  statfsTotalBytes = async (mountPoint: string): Promise<number> =>
    this.step(() => {
      if (mountPoint !== `/mnt/${this.fs}`) throw new Error(`statfs of ${mountPoint}`);
      return this.world.fsBytes;
    });
}

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function setup(fs: RecordedFs) {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'datafs-state-'));
  const blockStackPaths = recordedBlockStackPaths();
  dirs.push(stateDir, blockStackPaths.root);
  const journal = DataFsJournal.inStateDir(stateDir, () => 1_000);
  const world: World = { lvBytes: FROM, fsBytes: FS_TOTAL[fs].before, vgFreeBytes: 5364514816 };
  const deps = (runner: WorldRunner): DataFsGrowDeps => ({
    runner,
    journal,
    stateDir,
    statfsTotalBytes: runner.statfsTotalBytes,
    logger: silentLogger(),
    commandTimeoutMs: 30_000,
    nowMs: () => 1_000,
  });
  return { stateDir, blockStackPaths, journal, world, deps };
}

const request = (fs: RecordedFs) => ({
  lvm: { vg: 'agdata', lv: `data-${fs}` },
  dmName: `agdata-data--${fs}`,
  kernelName: null,
  fsType: fs as GrowableFilesystem,
  mountPoint: `/mnt/${fs}`,
  toLvBytes: TO,
  why: 'test',
});

describe.each(['ext4', 'xfs', 'btrfs'] as const)('growDataFilesystem on %s', (fs) => {
  it('lvextend, re-read, online grow, statfs: journaled intent to done', async () => {
    const { world, journal, deps } = setup(fs);
    const runner = new WorldRunner(fs, world, journal.file);
    const result = await growDataFilesystem(deps(runner), request(fs));
    expect(result).toMatchObject({
      fromLvBytes: FROM,
      toLvBytes: TO,
      fsBeforeBytes: FS_TOTAL[fs].before,
      fsAfterBytes: FS_TOTAL[fs].after,
      noop: false,
    });
    const fsGrow = {
      ext4: ['resize2fs /dev/mapper/agdata-data--ext4'],
      xfs: ['xfs_growfs /mnt/xfs'],
      btrfs: ['btrfs filesystem show --raw /mnt/btrfs', 'btrfs filesystem resize 1:max /mnt/btrfs'],
    }[fs];
    expect(runner.calls.map((call) => (call.split(' ')[0] === 'lvs' ? 'lvs' : call))).toEqual([
      'lvs',
      `lvextend -L ${TO}b agdata/data-${fs}`,
      'lvs',
      ...fsGrow,
    ]);
    const steps = readFileSync(journal.file, 'utf8')
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { step: string }).step);
    expect(steps).toEqual(['intent', 'lv-extended', 'fs-grown', 'done']);
    expect(journal.pending()).toEqual([]);
    expect(journal.lastGrow()?.atMs).toBe(1_000);
  });

  it('a target at or below the live size changes nothing (never shrinks)', async () => {
    const { world, journal, deps } = setup(fs);
    world.lvBytes = TO;
    const runner = new WorldRunner(fs, world, journal.file);
    const result = await growDataFilesystem(deps(runner), request(fs));
    expect(result.noop).toBe(true);
    expect(runner.calls).toHaveLength(1);
    expect(existsSync(journal.file)).toBe(false);
  });

  it('VG exhausted: lvextend fails with the recorded error, nothing changed, nothing pending', async () => {
    const { world, journal, deps } = setup(fs);
    const runner = new WorldRunner(fs, world, journal.file, null, {
      lvextend: { stderr: recorded('lvm/lvextend-vg-exhausted.stderr.txt'), exitCode: 5 },
    });
    const error = await growDataFilesystem(deps(runner), request(fs)).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(DataFsGrowError);
    expect(error).toMatchObject({ step: 'lvextend', state: 'unchanged' });
    expect((error as Error).message).toContain('Insufficient free space');
    expect(world).toMatchObject({ lvBytes: FROM, fsBytes: FS_TOTAL[fs].before });
    expect(journal.pending()).toEqual([]);
  });

  it('a failed filesystem grow stays pending and the next recovery finishes it', async () => {
    const { world, journal, deps, blockStackPaths } = setup(fs);
    const tool = fs === 'ext4' ? 'resize2fs' : fs === 'xfs' ? 'xfs_growfs' : 'btrfs';
    const failing = new WorldRunner(fs, world, journal.file, null, {
      [tool]: { stderr: 'simulated', exitCode: 1 },
    });
    const error = await growDataFilesystem(deps(failing), request(fs)).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ state: 'lv-grown-fs-pending' });
    expect(journal.pending()).toHaveLength(1);
    const runner = new WorldRunner(fs, world, journal.file);
    const reports = await recoverDataFilesystemGrows({ ...deps(runner), blockStackPaths });
    expect(reports).toMatchObject([{ outcome: 'completed' }]);
    expect(world).toMatchObject({ lvBytes: TO, fsBytes: FS_TOTAL[fs].after });
    expect(journal.pending()).toEqual([]);
  });

  it('a kill between each pair of steps is finished or shown unchanged by recovery at restart', async () => {
    // how many events a whole grow has
    const probe = setup(fs);
    const counter = new WorldRunner(fs, probe.world, probe.journal.file);
    await growDataFilesystem(probe.deps(counter), request(fs));
    const outcomes = new Set<string>();
    for (let at = 0; at < counter.events; at += 1) {
      for (const when of ['before', 'after'] as const) {
        const { world, journal, deps, blockStackPaths } = setup(fs);
        const doomed = new WorldRunner(fs, world, journal.file, { at, when });
        await expect(growDataFilesystem(deps(doomed), request(fs))).rejects.toThrow();
        // the dead agent wrote nothing after its kill
        if (doomed.journalAtKill === null) throw new Error(`kill ${when} event ${at} never happened`);
        writeFileSync(journal.file, doomed.journalAtKill);
        const atKill = { ...world };
        const runner = new WorldRunner(fs, world, journal.file);
        const reports = await recoverDataFilesystemGrows({ ...deps(runner), blockStackPaths });
        const where = `kill ${when} event ${at} (${doomed.calls.at(-1) ?? 'statfs'}), world at kill ${JSON.stringify(atKill)}`;
        expect(journal.pending(), where).toEqual([]);
        if (atKill.lvBytes === FROM) {
          // lvextend never ran: nothing changed, nothing to finish
          expect(world, where).toMatchObject({ lvBytes: FROM, fsBytes: FS_TOTAL[fs].before });
          expect(
            reports.every((report) => report.outcome === 'rolled-back'),
            where,
          ).toBe(true);
          outcomes.add(reports.length === 0 ? 'nothing-journaled' : 'rolled-back');
        } else {
          expect(world, where).toMatchObject({ lvBytes: TO, fsBytes: FS_TOTAL[fs].after });
          expect(
            reports.map((report) => report.outcome),
            where,
          ).toEqual(['completed']);
          outcomes.add('completed');
        }
      }
    }
    // every kind of interruption was exercised (the last event, the verifying statfs, is followed
    // by the 'done' record only: a kill after that is the kill of a finished grow)
    expect([...outcomes].sort()).toEqual(['completed', 'nothing-journaled', 'rolled-back']);
  });
});
