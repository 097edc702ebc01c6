/**
 * The overlay2-on-XFS backend with a strict scripted runner fed with real outputs: xfs_io recorded
 * on a loop XFS on this host (test/fixtures/overlay-xfs/record-host.sh) and xfs_quota reports from
 * a real XFS-pquota VM (test/fixtures/overlay-xfs/*report*.txt; headers say where each came from).
 * The data root is a temp dir laid out like Docker's; the fixtures' /var/lib/docker is replaced by it.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ContainerInfo } from '../../src/docker/model.js';
import { silentLogger } from '../../src/log/logger.js';
import { FS_MAGIC, type FilesystemUsage } from '../../src/storage/filesystem.js';
import {
  buildLimitCommand,
  createOverlayXfsBackend,
  isProjectView,
} from '../../src/storage/overlay-xfs/index.js';
import { parseProjectQuotaReport } from '../../src/storage/overlay-xfs/parse-quota-report.js';
import { parseXfsIoStatProjectIds } from '../../src/storage/overlay-xfs/parse-xfs-io-stat.js';
import type { BackendDeps } from '../../src/storage/types.js';
import { fixture, ScriptedRunner } from '../support/scripted-runner.js';

const MiB = 1024 ** 2;

/** '# ' header lines, then stdout verbatim; stderr in <name>.stderr.txt. */
function recorded(name: string, dataRoot = '/var/lib/docker') {
  const lines = fixture(`overlay-xfs/${name}.txt`).split('\n');
  let index = 0;
  let exitCode = 0;
  for (
    ;
    index < lines.length && lines[index]?.startsWith('#') && !/^#\d/.test(lines[index] ?? '');
    index += 1
  ) {
    const exit = /^# exit: (\d+)/.exec(lines[index] ?? '');
    if (exit) exitCode = Number(exit[1]);
  }
  const stderrPath = path.resolve(import.meta.dirname, '..', 'fixtures', 'overlay-xfs', `${name}.stderr.txt`);
  const stderr = existsSync(stderrPath) ? fixture(`overlay-xfs/${name}.stderr.txt`) : '';
  const swap = (text: string) => text.split('/var/lib/docker').join(dataRoot);
  return { stdout: swap(lines.slice(index).join('\n')), stderr: swap(stderr), exitCode };
}

// the layer directories recorded by record-host.sh: A has project 3, B project 0
const statBatch = recorded('host-xfs-io-stat-batch').stdout;
const [layerA, layerB] = [...parseXfsIoStatProjectIds(statBatch).keys()].map((dir) => path.basename(dir));

function container(id: string, name: string, sizeBytes: number | null): ContainerInfo {
  return {
    id,
    name,
    image: 'autogrow-busybox:test',
    labels: {},
    state: 'running',
    running: true,
    pid: 4242,
    storageDriver: 'overlay2',
    graphDriverData: {},
    storageOptSizeBytes: sizeBytes,
  };
}
const limited = container('a'.repeat(64), 'limited', 64 * MiB);
const unlimited = container('b'.repeat(64), 'unlimited', null);

/** statfs answers by directory; a directory not listed fails like a removed one (ENOENT). */
type StatfsAnswers = Map<string, FilesystemUsage | Error>;

/** What statfs reports: `blocks` and `bavail` in 4 KiB filesystem blocks, as the kernel counts. */
function statfsView(
  totalBytes: number,
  usedBytes: number,
  typeMagic: number = FS_MAGIC.xfs,
): FilesystemUsage {
  return {
    typeMagic,
    totalBytes,
    availableBytes: totalBytes - usedBytes,
    usedBytes,
    totalInodes: 1_000_000,
    freeInodes: 999_000,
  };
}
/** The data root's XFS in the VM: 8 GiB (the scratch disk). */
const filesystemView = statfsView(8 * 1024 * MiB, 200 * MiB);

function setup(mountOptions = 'rw,relatime,attr2,inode64,logbufs=8,logbsize=32k,prjquota') {
  const base = mkdtempSync(path.join(tmpdir(), 'agxunit-'));
  tempDirs.push(base);
  const dataRoot = path.join(base, 'docker');
  for (const [id, mountId] of [
    [limited.id, layerA],
    [unlimited.id, layerB],
  ] as const) {
    const dir = path.join(dataRoot, 'image', 'overlay2', 'layerdb', 'mounts', id);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'mount-id'), mountId ?? '');
    mkdirSync(path.join(dataRoot, 'overlay2', mountId ?? '', 'diff'), { recursive: true });
  }
  const mountInfoFile = path.join(base, 'mountinfo');
  writeFileSync(
    mountInfoFile,
    `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n` +
      `40 22 254:16 / ${dataRoot} rw,relatime shared:20 - xfs /dev/vdb ${mountOptions}\n`,
  );
  const runner = new ScriptedRunner();
  const deps: BackendDeps = {
    runner,
    docker: {
      info: async () => {
        throw new Error('not used');
      },
      listContainerIds: async () => [limited.id, unlimited.id],
      inspectContainer: async (id) => (id === limited.id ? limited : unlimited),
      ping: async () => true,
    },
    dockerInfo: {
      serverVersion: '20.10.24',
      apiVersion: '1.41',
      driver: 'overlay2',
      driverStatus: [],
      dockerRootDir: dataRoot,
      liveRestoreEnabled: false,
      containersRunning: 2,
    },
    logger: silentLogger(),
    stateDir: base,
    commandTimeoutMs: 5_000,
  };
  const statfsAnswers: StatfsAnswers = new Map([[dataRoot, filesystemView]]);
  const statfsCalls: string[] = [];
  const statfs = async (dir: string): Promise<FilesystemUsage> => {
    statfsCalls.push(dir);
    const answer = statfsAnswers.get(dir) ?? new Error(`ENOENT: no such file or directory, statfs '${dir}'`);
    if (answer instanceof Error) throw answer;
    return answer;
  };
  const backend = createOverlayXfsBackend(deps, { mountInfoFile, statfs });
  const dirA = path.join(dataRoot, 'overlay2', layerA ?? '');
  const dirB = path.join(dataRoot, 'overlay2', layerB ?? '');
  const report = ['-x', '-c', 'report -p -b -N -n', dataRoot];
  const fx = (name: string) => recorded(name, dataRoot);
  return { runner, backend, dataRoot, dirA, dirB, report, fx, statfsAnswers, statfsCalls };
}

const tempDirs: string[] = [];
let runners: ScriptedRunner[] = [];
afterEach(() => {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  for (const runner of runners) runner.assertDone();
  runners = [];
});
function track<T extends { runner: ScriptedRunner }>(value: T): T {
  runners.push(value.runner);
  return value;
}

describe('overlay-xfs parsers on real outputs', () => {
  it('reads project usage and limits in bytes from xfs_quota reports (header or not)', () => {
    const initial = parseProjectQuotaReport(recorded('reference-report-initial').stdout);
    expect(initial.get(3)).toEqual({
      projectId: 3,
      usedBytes: 8 * 1024,
      softLimitBytes: 100 * MiB,
      hardLimitBytes: 100 * MiB,
    });
    expect(initial.get(0)?.hardLimitBytes).toBeNull();
    const raised = parseProjectQuotaReport(recorded('reference-report-after-limit').stdout);
    expect(raised.get(3)).toMatchObject({ softLimitBytes: null, hardLimitBytes: 300 * MiB });
    expect(raised.get(3)?.usedBytes).toBe(101384 * 1024);
  });

  it('reads the reports recorded in the XFS-pquota VM: live usage, grown limit, persistence', () => {
    const initial = parseProjectQuotaReport(recorded('vm-report-initial').stdout);
    expect(initial.get(3)).toMatchObject({ softLimitBytes: 64 * MiB, hardLimitBytes: 64 * MiB });
    // 58 MiB written with dd, no sync: XFS counts delayed allocations at once
    expect(parseProjectQuotaReport(recorded('vm-report-filled').stdout).get(3)?.usedBytes).toBe(59404 * 1024);
    expect(parseProjectQuotaReport(recorded('vm-report-after-grow').stdout).get(3)).toMatchObject({
      softLimitBytes: null,
      hardLimitBytes: 128 * MiB,
    });
    // after docker restart and a dockerd restart the grown limit is still there
    expect(
      parseProjectQuotaReport(recorded('vm-report-after-dockerd-restart').stdout).get(3)?.hardLimitBytes,
    ).toBe(128 * MiB);
    // Docker's layer dirs: the limited container's has project 3, the unlimited one's 0
    expect([...parseXfsIoStatProjectIds(recorded('vm-xfs-io-stat-batch').stdout).values()]).toEqual([3, 0]);
  });

  it('refuses rows it does not understand (named projects, missing -b)', () => {
    expect(() => parseProjectQuotaReport('docker   8  0  0  00 [--------]\n')).toThrow(/unexpected line/);
  });

  it('reads project ids of several directories from one xfs_io stat', () => {
    const ids = parseXfsIoStatProjectIds(statBatch);
    expect([...ids.values()]).toEqual([3, 0]);
    expect(layerA).toMatch(/^[0-9a-f]{64}$/);
    // the unlabelled lsproj form gives the same ids, in order, but nothing to match them with
    expect(recorded('host-xfs-io-lsproj-batch').stdout.trim().split('\n')).toEqual([
      'projid = 3',
      'projid = 0',
    ]);
    // xfs_io stops at a directory that is gone
    expect(recorded('host-xfs-io-stat-missing').exitCode).toBe(1);
  });

  it('builds the limit command only from checked integers', () => {
    expect(buildLimitCommand(3, 314572800)).toBe('limit -p bsoft=0 bhard=314572800 3');
    expect(() => buildLimitCommand(0, 1)).toThrow(/project id/);
    expect(() => buildLimitCommand(2 ** 32 - 1, 1)).toThrow(/project id/);
    expect(() => buildLimitCommand(3, 1.5)).toThrow(/byte count/);
    expect(() => buildLimitCommand(Number('3; rm'), 1)).toThrow(/project id/);
  });
});

describe('overlay-xfs backend', () => {
  it('observes with one report per pass; project ids are looked up once, in one xfs_io', async () => {
    const { runner, backend, dirA, dirB, report, fx } = track(setup());
    runner.expect('xfs_io', ['-r', '-c', 'stat', dirA, dirB], fx('host-xfs-io-stat-batch'));
    runner.expect('xfs_quota', report, fx('vm-report-initial'));
    const first = await backend.observe([limited, unlimited], 5);
    expect(first.errors).toEqual(new Map());
    expect(first.containers.get(limited.id)).toMatchObject({
      sizeBytes: 64 * MiB,
      usedBytes: 8 * 1024,
      detail: { projectId: 3, mountId: layerA },
    });
    expect(first.containers.get(unlimited.id)).toMatchObject({ sizeBytes: null, usedBytes: null });
    expect(first.pool).toMatchObject({ kind: 'filesystem', committedBytes: 64 * MiB });

    runner.expect('xfs_quota', report, fx('vm-report-after-grow'));
    const callsBefore = runner.calls.length;
    const second = await backend.observe([limited, unlimited], 6);
    expect(runner.calls.length - callsBefore).toBe(1);
    expect(second.containers.get(limited.id)?.sizeBytes).toBe(128 * MiB);
  });

  it('a directory removed meanwhile does not blind the pass', async () => {
    const { runner, backend, dirA, dirB, report, fx } = track(setup());
    runner.expect('xfs_io', ['-r', '-c', 'stat', dirA, dirB], fx('host-xfs-io-stat-missing'));
    runner.expect('xfs_io', ['-r', '-c', 'stat', dirA], fx('host-xfs-io-stat-one'));
    runner.expect('xfs_io', ['-r', '-c', 'stat', dirB], fx('host-xfs-io-stat-missing'));
    runner.expect('xfs_quota', report, fx('vm-report-initial'));
    const observation = await backend.observe([limited, unlimited], 0);
    expect(observation.containers.get(limited.id)?.sizeBytes).toBe(64 * MiB);
    expect(observation.errors.get(unlimited.id)).toMatch(/project id lookup failed/);
  });

  it('grows with a computed limit command and verifies it in the report', async () => {
    const { runner, backend, dirA, report, fx, dataRoot } = track(setup());
    runner.expect('xfs_io', ['-r', '-c', 'stat', dirA], fx('host-xfs-io-stat-one'));
    runner.expect('xfs_quota', report, fx('vm-report-initial'));
    runner.expect('xfs_quota', ['-x', '-c', 'limit -p bsoft=0 bhard=134217728 3', dataRoot], {});
    runner.expect('xfs_quota', report, fx('vm-report-after-grow'));
    const result = await backend.grow({
      container: limited,
      fromBytes: 64 * MiB,
      toBytes: 128 * MiB,
      dryRun: false,
    });
    expect(result).toMatchObject({ fromBytes: 64 * MiB, toBytes: 128 * MiB, noop: false });
  });

  it('dry run: the exact plan, nothing changed', async () => {
    const { runner, backend, dirA, report, fx, dataRoot } = track(setup());
    runner.expect('xfs_io', ['-r', '-c', 'stat', dirA], fx('host-xfs-io-stat-one'));
    runner.expect('xfs_quota', report, fx('vm-report-initial'));
    const plan = await backend.grow({
      container: limited,
      fromBytes: 64 * MiB,
      toBytes: 128 * MiB,
      dryRun: true,
    });
    expect(plan.steps[0]?.argv).toEqual([
      'xfs_quota',
      '-x',
      '-c',
      'limit -p bsoft=0 bhard=134217728 3',
      dataRoot,
    ]);
  });

  it('a limit that did not take is a failed grow', async () => {
    const { runner, backend, dirA, report, fx, dataRoot } = track(setup());
    runner.expect('xfs_io', ['-r', '-c', 'stat', dirA], fx('host-xfs-io-stat-one'));
    runner.expect('xfs_quota', report, fx('vm-report-initial'));
    runner.expect('xfs_quota', ['-x', '-c', 'limit -p bsoft=0 bhard=134217728 3', dataRoot], {});
    runner.expect('xfs_quota', report, fx('vm-report-initial'));
    await expect(
      backend.grow({ container: limited, fromBytes: 64 * MiB, toBytes: 128 * MiB, dryRun: false }),
    ).rejects.toMatchObject({
      message: expect.stringMatching(/shows hard limit 67108864 instead of 134217728/),
      step: 'read back',
      deviceState: 'unknown',
    });
  });

  it('a failed xfs_quota limit is a failed grow', async () => {
    const { runner, backend, dirA, report, fx, dataRoot } = track(setup());
    runner.expect('xfs_io', ['-r', '-c', 'stat', dirA], fx('host-xfs-io-stat-one'));
    runner.expect('xfs_quota', report, fx('vm-report-initial'));
    runner.expect('xfs_quota', ['-x', '-c', 'limit -p bsoft=0 bhard=134217728 3', dataRoot], {
      exitCode: 1,
      stderr: 'xfs_quota: cannot set limits: Function not implemented',
    });
    await expect(
      backend.grow({ container: limited, fromBytes: 64 * MiB, toBytes: 128 * MiB, dryRun: false }),
    ).rejects.toMatchObject({
      message: expect.stringMatching(/cannot set limits/),
      step: 'xfs_quota limit',
      deviceState: 'unchanged',
    });
  });

  it('never shrinks, rounds targets up to 4 KiB, refuses unlimited containers', async () => {
    const { runner, backend, dirA, report, fx } = track(setup());
    runner.expect('xfs_io', ['-r', '-c', 'stat', dirA], fx('host-xfs-io-stat-one'));
    runner.expect('xfs_quota', report, fx('vm-report-after-grow'));
    const noop = await backend.grow({
      container: limited,
      fromBytes: 128 * MiB,
      toBytes: 96 * MiB,
      dryRun: false,
    });
    expect(noop).toMatchObject({ noop: true, toBytes: 128 * MiB });
    runner.expect('xfs_io', ['-r', '-c', 'stat', dirA], fx('host-xfs-io-stat-one'));
    runner.expect('xfs_quota', report, fx('vm-report-initial'));
    const plan = await backend.grow({
      container: limited,
      fromBytes: 64 * MiB,
      toBytes: 128 * MiB - 1000,
      dryRun: true,
    });
    expect(plan.steps[0]?.argv?.[3]).toBe(`limit -p bsoft=0 bhard=${128 * MiB} 3`);
    await expect(
      backend.grow({ container: unlimited, fromBytes: 0, toBytes: 128 * MiB, dryRun: false }),
    ).rejects.toThrow(/without a size limit/);
  });

  it('doctor: XFS without pquota cannot be served, with the fix', async () => {
    const { runner, backend } = track(setup('rw,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota'));
    runner.expect('xfs_quota', ['-V'], { stdout: 'xfs_quota version 6.1.0\n' });
    runner.expect('xfs_io', ['-V'], { stdout: 'xfs_io version 6.1.0\n' });
    const checks = await backend.doctor();
    const byName = new Map(checks.map((check) => [check.name, check]));
    expect(byName.get('data root on XFS')?.ok).toBe(true);
    expect(byName.get('XFS project quotas enforced')).toMatchObject({ ok: false, severity: 'error' });
    expect(byName.get('XFS project quotas enforced')?.fix).toMatch(/-o pquota/);
    expect(byName.get('containers have a size limit')?.detail).toContain('unlimited');
  });

  it('observe says for every container that XFS without pquota cannot be served', async () => {
    const { backend } = track(setup('rw,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota'));
    const observation = await backend.observe([limited, unlimited], 0);
    expect(observation.containers.size).toBe(0);
    expect(observation.errors.get(unlimited.id)).toMatch(/without enforced project quotas.*-o pquota/);
    expect(observation.pool?.kind).toBe('filesystem');
  });

  it('doctor: pquota mounted is served; pqnoenforce is not', async () => {
    const served = track(setup());
    served.runner.expect('xfs_quota', ['-V'], { stdout: 'xfs_quota version 6.1.0\n' });
    served.runner.expect('xfs_io', ['-V'], { stdout: 'xfs_io version 6.1.0\n' });
    const ok = await served.backend.doctor();
    expect(ok.find((check) => check.name === 'XFS project quotas enforced')?.ok).toBe(true);
    const accounting = track(setup('rw,relatime,attr2,inode64,prjquota,pqnoenforce'));
    accounting.runner.expect('xfs_quota', ['-V'], { stdout: 'xfs_quota version 6.1.0\n' });
    accounting.runner.expect('xfs_io', ['-V'], { stdout: 'xfs_io version 6.1.0\n' });
    const notEnforced = await accounting.backend.doctor();
    expect(notEnforced.find((check) => check.name === 'XFS project quotas enforced')?.detail).toMatch(
      /does not enforce/,
    );
  });
});

describe('overlay-xfs live usage (statfs of the layer directory, no process)', () => {
  // the numbers of vm-report-filled: project 3 at 59404 KiB of its 64 MiB hard limit
  const filledBytes = 59404 * 1024;

  /** One pass over both containers with the given report, so the backend knows project 3's limit. */
  async function observed(reportFixture = 'vm-report-filled') {
    const context = track(setup());
    context.runner.expect(
      'xfs_io',
      ['-r', '-c', 'stat', context.dirA, context.dirB],
      context.fx('host-xfs-io-stat-batch'),
    );
    context.runner.expect('xfs_quota', context.report, context.fx(reportFixture));
    const observation = await context.backend.observe([limited, unlimited], 0);
    expect(observation.errors).toEqual(new Map());
    return context;
  }

  it('the project view of a limited container: its usage and its hard limit, no command run', async () => {
    const { runner, backend, dirA, dirB, statfsAnswers, statfsCalls } = await observed();
    statfsAnswers.set(dirA, statfsView(64 * MiB, filledBytes + 3 * MiB));
    // the unlimited container's dir has no project: statfs shows the whole filesystem
    statfsAnswers.set(dirB, filesystemView);
    const callsBefore = runner.calls.length;
    statfsCalls.length = 0;
    const live = await backend.readLiveUsage?.([limited.id, unlimited.id, 'c'.repeat(64)]);
    expect(live).toEqual(new Map([[limited.id, { usedBytes: filledBytes + 3 * MiB, sizeBytes: 64 * MiB }]]));
    expect(runner.calls.length).toBe(callsBefore);
    // only the limited container's layer is looked at
    expect(statfsCalls).toEqual([dirA]);
  });

  it('numbers that are not the project hard limit are left to the regular pass', async () => {
    const { backend, dirA, statfsAnswers } = await observed();
    const read = async (usage: FilesystemUsage) => {
      statfsAnswers.set(dirA, usage);
      return (await backend.readLiveUsage?.([limited.id]))?.get(limited.id);
    };
    expect(await read(statfsView(64 * MiB, filledBytes))).toEqual({
      usedBytes: filledBytes,
      sizeBytes: 64 * MiB,
    });
    // no PROJINHERIT / quota not enforced: the kernel shows the whole filesystem
    expect(await read(filesystemView)).toBeUndefined();
    // a soft limit below the hard one: the kernel shows the soft limit
    expect(await read(statfsView(48 * MiB, filledBytes))).toBeUndefined();
    // a limit raised behind the agent's back: not the size the policy works with
    expect(await read(statfsView(96 * MiB, filledBytes))).toBeUndefined();
    // not XFS (something mounted over the layer dir)
    expect(await read(statfsView(64 * MiB, filledBytes, FS_MAGIC.btrfs))).toBeUndefined();
  });

  it('never throws for one container: a removed layer is simply absent', async () => {
    const { backend, dirA, statfsAnswers } = await observed();
    statfsAnswers.set(dirA, new Error("ENOENT: no such file or directory, statfs 'layer'"));
    await expect(backend.readLiveUsage?.([limited.id, unlimited.id])).resolves.toEqual(new Map());
  });

  it('before any pass, and on XFS without enforced project quotas, nothing is read', async () => {
    const fresh = track(setup());
    fresh.statfsAnswers.set(fresh.dirA, statfsView(64 * MiB, filledBytes));
    expect(await fresh.backend.readLiveUsage?.([limited.id])).toEqual(new Map());
    expect(fresh.statfsCalls).toEqual([]);

    const noQuota = track(setup('rw,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota'));
    noQuota.statfsAnswers.set(noQuota.dirA, statfsView(64 * MiB, filledBytes));
    await noQuota.backend.observe([limited, unlimited], 0);
    expect(await noQuota.backend.readLiveUsage?.([limited.id])).toEqual(new Map());
    expect(noQuota.statfsCalls).toEqual([noQuota.dataRoot]);
  });

  it('after a grow the new limit is expected at once; a later report that lacks the limit drops it', async () => {
    const { runner, backend, dirA, report, fx, dataRoot, statfsAnswers } =
      await observed('vm-report-initial');
    statfsAnswers.set(dirA, statfsView(128 * MiB, 8 * 1024));
    // the limit is already 128 MiB in the kernel, the agent still expects 64 MiB
    expect(await backend.readLiveUsage?.([limited.id])).toEqual(new Map());
    runner.expect('xfs_io', ['-r', '-c', 'stat', dirA], fx('host-xfs-io-stat-one'));
    runner.expect('xfs_quota', report, fx('vm-report-initial'));
    runner.expect('xfs_quota', ['-x', '-c', 'limit -p bsoft=0 bhard=134217728 3', dataRoot], {});
    runner.expect('xfs_quota', report, fx('vm-report-after-grow'));
    await backend.grow({ container: limited, fromBytes: 64 * MiB, toBytes: 128 * MiB, dryRun: false });
    expect(await backend.readLiveUsage?.([limited.id])).toEqual(
      new Map([[limited.id, { usedBytes: 8 * 1024, sizeBytes: 128 * MiB }]]),
    );
    // a pass whose report has no row for the project (no limit known): no fast path for it
    runner.expect('xfs_quota', report, {
      stdout: '#0                2212          0          0     00 [--------]\n',
    });
    await backend.observe([limited, unlimited], 1);
    expect(await backend.readLiveUsage?.([limited.id])).toEqual(new Map());
  });

  it('a partial pass keeps the other containers; a whole pass drops the ones it did not see', async () => {
    const { runner, backend, dirA, report, fx, statfsAnswers } = await observed();
    statfsAnswers.set(dirA, statfsView(64 * MiB, filledBytes));
    runner.allow('xfs_quota', report, fx('vm-report-filled'));
    // a pass for one container (a start event) does not blind the fast path for the others
    await backend.observe([unlimited], 1, { partial: true });
    expect((await backend.readLiveUsage?.([limited.id]))?.get(limited.id)?.sizeBytes).toBe(64 * MiB);
    // nor forgets their project ids: the next whole pass runs no xfs_io
    const callsBefore = runner.calls.length;
    await backend.observe([limited, unlimited], 2);
    expect(runner.calls.slice(callsBefore).map((call) => call.tool)).toEqual(['xfs_quota']);
    // stopped or removed: a whole pass without it drops it (memory stays that of the running set)
    await backend.observe([unlimited], 3);
    expect(await backend.readLiveUsage?.([limited.id])).toEqual(new Map());
  });

  it('isProjectView: the hard limit up to the report rounding, below the filesystem size, XFS only', () => {
    const fsTotal = 8 * 1024 * MiB;
    expect(isProjectView(statfsView(64 * MiB, MiB), 64 * MiB, fsTotal)).toBe(true);
    // the report shows KiB rounded down, statfs whole blocks (e.g. 512-byte blocks)
    expect(isProjectView(statfsView(64 * MiB + 512, MiB), 64 * MiB, fsTotal)).toBe(true);
    expect(isProjectView(statfsView(64 * MiB + 1024, MiB), 64 * MiB, fsTotal)).toBe(false);
    expect(isProjectView(statfsView(64 * MiB - 4096, MiB), 64 * MiB, fsTotal)).toBe(false);
    // a limit at or above the filesystem size: the kernel shows the filesystem, not the project
    expect(isProjectView(statfsView(fsTotal, MiB), fsTotal, fsTotal)).toBe(false);
    expect(isProjectView(statfsView(64 * MiB, MiB, FS_MAGIC.btrfs), 64 * MiB, fsTotal)).toBe(false);
  });
});
