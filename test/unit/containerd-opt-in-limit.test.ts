/**
 * Opt-in limits on the containerd image store (label autogrow.size): the backend on a recorded
 * dockerd 28.5.2 container (test/fixtures/docker/containerd/: docker info, the container's
 * mountinfo) whose snapshotter root sits on an XFS mounted with prjquota, every command scripted
 * with its exact argv and answered with real xfs_io / xfs_quota output recorded in the guest on
 * that store (test/fixtures/docker/containerd/xfs/, by test/guest/containerd-xfs.test.ts; paths
 * rewritten to this rig's temp dir, ids and KiB rewritten where a case needs other numbers). Checks: the first limit (limit first, then project, then read-backs), usage from
 * the one report per pass (no walk), dry-run sets nothing, grow verifies and never shrinks, an
 * agent restart finds the project on the inode, and a host without XFS pquota says why.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mapDockerInfo } from '../../src/docker/mapping.js';
import type { ContainerInfo } from '../../src/docker/model.js';
import { silentLogger } from '../../src/log/logger.js';
import { renderStatus } from '../../src/cli/render-status.js';
import { createContainerdBackend } from '../../src/storage/containerd/index.js';
import {
  AGENT_PROJECT_ID_BASE,
  initialLimitBytes,
  nextAgentProjectId,
  sizeLabel,
  snapshotDirOf,
} from '../../src/storage/containerd/opt-in-limit.js';
import { buildProjectSetupCommand } from '../../src/storage/overlay-xfs/project-quota.js';
import { nodeWalkFs, type WalkFs } from '../../src/storage/containerd/layer-walk.js';
import type { FilesystemUsage } from '../../src/storage/filesystem.js';
import type { BackendDeps, StorageBackend } from '../../src/storage/types.js';
import { ScriptedRunner, fixture } from '../support/scripted-runner.js';

const RECORDED_ROOT = '/tmp/agd-rNNx/root';
const ID = 'c'.repeat(64);
const MiB = 1024 ** 2;
const PROJECT = AGENT_PROJECT_ID_BASE;
const REPORT = ['-x', '-c', 'report -p -b -N -n', '/'];

let base: string;
let dataRoot: string;
let procRoot: string;
let upperDir: string;
let snapshotDir: string;
let lstatCalls: number;
let selfMountinfo: string;

/** A recorded output without its `# ...` provenance header. */
function recorded(name: string): string {
  return fixture(name)
    .split('\n')
    .filter((line) => !line.startsWith('# '))
    .join('\n');
}

/** The recorded `xfs_io -r -c stat` block of one directory, for `dir` with `projectId`. */
function xfsIoStat(dir: string, projectId: number): string {
  const block = recorded('docker/containerd/xfs/xfs-io-stat-limited.txt').split(/(?=^fd\.path = )/m)[1]!;
  return block
    .replace(/^fd\.path = ".*"$/m, `fd.path = "${dir}"`)
    .replace(/^fsxattr\.projid = \d+$/m, `fsxattr.projid = ${projectId}`);
}

/** The recorded report's row of project 0 (what is not in any project), plus rows for agent projects. */
function report(extraRows: string[] = []): string {
  const projectZero = recorded('docker/containerd/xfs/report-control.txt')
    .split('\n')
    .filter((line) => line.startsWith('#0 '));
  return `${[...projectZero, ...extraRows].join('\n')}\n`;
}

/** A row in the recorded layout (`#1000000001      59396          0      65536     00 [--------]`). */
function row(projectId: number, usedKiB: number, hardKiB: number): string {
  return `#${projectId}      ${usedKiB}          0      ${hardKiB}     00 [--------]`;
}

function container(labels: Record<string, string> = { 'autogrow.size': '64M' }): ContainerInfo {
  return {
    id: ID,
    name: 'ctr-limited',
    image: 'busybox',
    labels,
    state: 'running',
    running: true,
    pid: 4242,
    storageDriver: 'overlayfs',
    graphDriverData: {},
    storageOptSizeBytes: null,
  };
}

function backend(runner: ScriptedRunner): StorageBackend {
  const info = mapDockerInfo(
    { ...JSON.parse(fixture('docker/containerd/info.json')), DockerRootDir: dataRoot },
    JSON.parse(fixture('docker/containerd/version.json')),
  );
  writeFileSync(path.join(procRoot, 'self-mountinfo'), selfMountinfo);
  const deps = {
    logger: silentLogger(),
    dockerInfo: info,
    runner,
    commandTimeoutMs: 5000,
  } as unknown as BackendDeps;
  const countingFs: WalkFs = {
    readdir: (dir) => nodeWalkFs.readdir(dir),
    lstat: (file) => {
      lstatCalls += 1;
      return nodeWalkFs.lstat(file);
    },
  };
  return createContainerdBackend(deps, {
    procRoot,
    mountInfoFile: path.join(procRoot, 'self-mountinfo'),
    walkFs: countingFs,
    statfs: (): Promise<FilesystemUsage> =>
      Promise.resolve({
        typeMagic: 0x58465342,
        totalBytes: 10 * 1024 * MiB,
        availableBytes: 9 * 1024 * MiB,
        usedBytes: 1024 * MiB,
        totalInodes: 1000,
        freeInodes: 900,
      }),
  });
}

const XFS_PQUOTA =
  '1 0 8:16 / / rw,relatime - xfs /dev/vdb rw,attr2,inode64,logbufs=8,logbsize=32k,prjquota\n';

beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'ctrd-optin-'));
  dataRoot = path.join(base, 'root');
  procRoot = path.join(base, 'proc');
  snapshotDir = path.join(dataRoot, 'containerd/daemon/io.containerd.snapshotter.v1.overlayfs/snapshots/3');
  upperDir = path.join(snapshotDir, 'fs');
  mkdirSync(upperDir, { recursive: true });
  mkdirSync(path.join(snapshotDir, 'work'), { recursive: true });
  mkdirSync(path.join(procRoot, '4242'), { recursive: true });
  const mountinfo = fixture('docker/containerd/mountinfo-container.txt').replaceAll(RECORDED_ROOT, dataRoot);
  writeFileSync(path.join(procRoot, '4242', 'mountinfo'), mountinfo);
  writeFileSync(path.join(upperDir, 'written'), Buffer.alloc(2 * MiB, 1));
  selfMountinfo = XFS_PQUOTA;
  lstatCalls = 0;
});

afterEach(() => rmSync(base, { recursive: true, force: true }));

/** The commands of a pass that gives the labelled container its first limit. */
function scriptFirstLimit(runner: ScriptedRunner, limitBytes = 64 * MiB): void {
  runner
    .expect('xfs_io', ['-r', '-c', 'stat', snapshotDir], { stdout: xfsIoStat(snapshotDir, 0) })
    .expect('xfs_quota', REPORT, { stdout: report() })
    .expect('xfs_quota', ['-x', '-c', `limit -p bsoft=0 bhard=${limitBytes} ${PROJECT}`, '/'])
    .expect('xfs_quota', REPORT, { stdout: report([row(PROJECT, 0, limitBytes / 1024)]) })
    .expect('xfs_quota', ['-x', '-c', `project -s -p ${snapshotDir} ${PROJECT}`, '/'])
    .expect('xfs_io', ['-r', '-c', 'stat', snapshotDir], { stdout: xfsIoStat(snapshotDir, PROJECT) })
    .expect('xfs_quota', REPORT, { stdout: report([row(PROJECT, 2056, limitBytes / 1024)]) });
}

describe('containerd opt-in limits (autogrow.size) on XFS with prjquota', () => {
  it('gives a labelled container its own project and limit, then reads usage from the report only', async () => {
    const runner = new ScriptedRunner();
    scriptFirstLimit(runner);
    const ctrd = backend(runner);
    const first = await ctrd.observe([container()], 1_000);
    runner.assertDone();
    expect(first.errors.size).toBe(0);
    expect(first.containers.get(ID)).toMatchObject({
      sizeBytes: 64 * MiB,
      usedBytes: 2056 * 1024,
      detail: { projectId: PROJECT, usedSource: 'xfs project quota', snapshot: '3' },
    });
    expect(first.pool?.committedBytes).toBe(64 * MiB);
    // status: the limited container with its size and used, the unlimited one without, the pool
    const status = renderStatus(
      {
        startedAtMs: 1_000,
        durationMs: 5,
        driver: 'containerd',
        dryRun: true,
        pool: first.pool,
        containers: [
          {
            containerId: ID,
            name: 'ctr-limited',
            driver: 'containerd',
            usage: first.containers.get(ID) ?? null,
            ruleName: 'label',
            maxSizeBytes: 100 * 1024 * MiB,
            decision: { kind: 'skip', reason: 'below-threshold' },
            timeToFullSeconds: null,
            labelWarnings: [],
            backoffUntilMs: null,
            thresholdRatio: 0.85,
            cooldownUntilMs: null,
          },
        ],
        probes: [],
        errors: [],
      } as unknown as Parameters<typeof renderStatus>[0],
      { nowMs: 1_000 },
    );
    expect(status).toMatch(/ctr-limited\s+containerd\s+64MiB\s+2\.01MiB\s/);
    expect(status).toContain('committed 64MiB');
    expect(status).toContain('grow at 85%');

    // steady state: one report, no xfs_io, no walk
    runner.expect('xfs_quota', REPORT, { stdout: report([row(PROJECT, 40_000, 65_536)]) });
    lstatCalls = 0;
    const second = await ctrd.observe([container()], 2_000);
    runner.assertDone();
    expect(second.containers.get(ID)).toMatchObject({ sizeBytes: 64 * MiB, usedBytes: 40_000 * 1024 });
    expect(lstatCalls).toBe(0);
  });

  it('a dry-run pass (status) sets nothing and says the limit comes at the next pass', async () => {
    const runner = new ScriptedRunner();
    runner
      .expect('xfs_io', ['-r', '-c', 'stat', snapshotDir], { stdout: xfsIoStat(snapshotDir, 0) })
      .expect('xfs_quota', REPORT, { stdout: report() });
    const observation = await backend(runner).observe([container()], 1_000, { dryRun: true });
    runner.assertDone();
    const usage = observation.containers.get(ID);
    expect(usage?.sizeBytes).toBeNull();
    expect(usage?.usedBytes).toBeGreaterThanOrEqual(2 * MiB);
    expect(usage?.detail['limit']).toMatch(/limit not set yet/);
  });

  it("grows with a fresh project id check and the report's read-back; never shrinks", async () => {
    const runner = new ScriptedRunner();
    scriptFirstLimit(runner);
    const ctrd = backend(runner);
    await ctrd.observe([container()], 1_000);
    runner
      .expect('xfs_io', ['-r', '-c', 'stat', snapshotDir], { stdout: xfsIoStat(snapshotDir, PROJECT) })
      .expect('xfs_quota', REPORT, { stdout: report([row(PROJECT, 60_000, 65_536)]) })
      .expect('xfs_quota', ['-x', '-c', `limit -p bsoft=0 bhard=${96 * MiB} ${PROJECT}`, '/'])
      .expect('xfs_quota', REPORT, { stdout: report([row(PROJECT, 60_000, 98_304)]) });
    const grown = await ctrd.grow({
      container: container(),
      fromBytes: 64 * MiB,
      toBytes: 96 * MiB,
      dryRun: false,
    });
    expect(grown).toMatchObject({ fromBytes: 64 * MiB, toBytes: 96 * MiB, noop: false });
    // asked for less than the live limit: nothing is run but the two reads
    runner
      .expect('xfs_io', ['-r', '-c', 'stat', snapshotDir], { stdout: xfsIoStat(snapshotDir, PROJECT) })
      .expect('xfs_quota', REPORT, { stdout: report([row(PROJECT, 60_000, 98_304)]) });
    const noop = await ctrd.grow({
      container: container(),
      fromBytes: 64 * MiB,
      toBytes: 80 * MiB,
      dryRun: false,
    });
    expect(noop).toMatchObject({ toBytes: 96 * MiB, noop: true });
    runner.assertDone();
  });

  it('refuses to grow when the snapshot no longer carries the project it had', async () => {
    const runner = new ScriptedRunner();
    scriptFirstLimit(runner);
    const ctrd = backend(runner);
    await ctrd.observe([container()], 1_000);
    runner.expect('xfs_io', ['-r', '-c', 'stat', snapshotDir], { stdout: xfsIoStat(snapshotDir, 7) });
    await expect(
      ctrd.grow({ container: container(), fromBytes: 64 * MiB, toBytes: 96 * MiB, dryRun: false }),
    ).rejects.toThrow(/now has XFS project 7/);
    runner.assertDone();
  });

  it('after an agent restart finds the project on the inode and sets nothing again', async () => {
    const runner = new ScriptedRunner();
    runner
      .expect('xfs_io', ['-r', '-c', 'stat', snapshotDir], { stdout: xfsIoStat(snapshotDir, PROJECT) })
      .expect('xfs_quota', REPORT, { stdout: report([row(PROJECT, 90_000, 98_304)]) });
    // even without its label (labels cannot change, but the project is the truth)
    const observation = await backend(runner).observe([container({})], 1_000);
    runner.assertDone();
    expect(observation.containers.get(ID)).toMatchObject({ sizeBytes: 96 * MiB, usedBytes: 90_000 * 1024 });
  });

  it('reads the recorded reports of the guest run as they came: filled, grown, after the restarts', async () => {
    const PROJECT_FILL = PROJECT + 1;
    const expectations: [string, number, number][] = [
      ['report-filled', 59_396 * 1024, 64 * MiB],
      ['report-after-grow', 59_396 * 1024, 128 * MiB],
      ['report-after-dockerd-restart', 100_360 * 1024, 128 * MiB],
    ];
    for (const [name, usedBytes, sizeBytes] of expectations) {
      const runner = new ScriptedRunner();
      runner
        .expect('xfs_io', ['-r', '-c', 'stat', snapshotDir], { stdout: xfsIoStat(snapshotDir, PROJECT_FILL) })
        .expect('xfs_quota', REPORT, { stdout: recorded(`docker/containerd/xfs/${name}.txt`) });
      const observation = await backend(runner).observe([container()], 1_000);
      runner.assertDone();
      expect(observation.containers.get(ID), name).toMatchObject({ usedBytes, sizeBytes });
      // the removed control container's project keeps its limit record: not counted as committed
      expect(observation.pool?.committedBytes, name).toBe(sizeBytes);
    }
  });

  it('takes the next id above every agent id the report shows', async () => {
    const runner = new ScriptedRunner();
    runner
      .expect('xfs_io', ['-r', '-c', 'stat', snapshotDir], { stdout: xfsIoStat(snapshotDir, 0) })
      .expect('xfs_quota', REPORT, { stdout: report([row(PROJECT + 4, 0, 1024)]) })
      .expect('xfs_quota', ['-x', '-c', `limit -p bsoft=0 bhard=${64 * MiB} ${PROJECT + 5}`, '/'])
      .expect('xfs_quota', REPORT, {
        stdout: report([row(PROJECT + 4, 0, 1024), row(PROJECT + 5, 0, 65_536)]),
      })
      .expect('xfs_quota', ['-x', '-c', `project -s -p ${snapshotDir} ${PROJECT + 5}`, '/'])
      .expect('xfs_io', ['-r', '-c', 'stat', snapshotDir], { stdout: xfsIoStat(snapshotDir, PROJECT + 5) })
      .expect('xfs_quota', REPORT, { stdout: report([row(PROJECT + 5, 2056, 65_536)]) });
    const observation = await backend(runner).observe([container()], 1_000);
    runner.assertDone();
    expect(observation.containers.get(ID)?.detail['projectId']).toBe(PROJECT + 5);
  });

  it('a project read back wrong is an error for the container, not a limit', async () => {
    const runner = new ScriptedRunner();
    runner
      .expect('xfs_io', ['-r', '-c', 'stat', snapshotDir], { stdout: xfsIoStat(snapshotDir, 0) })
      .expect('xfs_quota', REPORT, { stdout: report() })
      .expect('xfs_quota', ['-x', '-c', `limit -p bsoft=0 bhard=${64 * MiB} ${PROJECT}`, '/'])
      .expect('xfs_quota', REPORT, { stdout: report([row(PROJECT, 0, 65_536)]) })
      .expect('xfs_quota', ['-x', '-c', `project -s -p ${snapshotDir} ${PROJECT}`, '/'])
      .expect('xfs_io', ['-r', '-c', 'stat', snapshotDir], { stdout: xfsIoStat(snapshotDir, 0) });
    const observation = await backend(runner).observe([container()], 1_000);
    runner.assertDone();
    expect(observation.errors.get(ID)).toMatch(/has project 0, not 1000000000/);
    expect(observation.containers.has(ID)).toBe(false);
  });

  it('without XFS pquota under the containerd root: no command, the label shown as ignored with why, doctor says so', async () => {
    selfMountinfo = '1 0 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n';
    const runner = new ScriptedRunner();
    const ctrd = backend(runner);
    const observation = await ctrd.observe([container()], 1_000);
    expect(runner.calls).toHaveLength(0);
    expect(observation.containers.get(ID)?.detail['limit']).toMatch(
      /autogrow\.size ignored: the containerd root .* is on ext4 \(\/\), not XFS with project quotas/,
    );
    const checks = await ctrd.doctor();
    expect(checks.find((check) => check.name.startsWith('containerd root on XFS'))).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/opt-in limits \(autogrow\.size\) are impossible: .* on ext4/),
    });
    await expect(
      ctrd.grow({ container: container(), fromBytes: 0, toBytes: 96 * MiB, dryRun: false }),
    ).rejects.toThrow(/no autogrow\.size limit/);
  });

  it('XFS accounting without enforcement (pqnoenforce) is not enough', async () => {
    selfMountinfo = '1 0 8:16 / / rw,relatime - xfs /dev/vdb rw,attr2,prjquota,pqnoenforce\n';
    const runner = new ScriptedRunner();
    const observation = await backend(runner).observe([container()], 1_000);
    expect(runner.calls).toHaveLength(0);
    expect(observation.containers.get(ID)?.detail['limit']).toMatch(/does not enforce them \(pqnoenforce\)/);
  });
});

describe('opt-in limit pieces', () => {
  it('parses the label and refuses what is not a size', () => {
    expect(sizeLabel({ 'autogrow.size': '2G' })).toEqual({ bytes: 2 * 1024 ** 3 });
    expect(sizeLabel({})).toBeNull();
    expect(sizeLabel({ 'autogrow.size': 'lots' })).toHaveProperty('invalid');
    expect(sizeLabel({ 'autogrow.size': '10K' })).toHaveProperty('invalid');
  });

  it('uses the snapshot dir only with containerd’s layout (fs beside work)', () => {
    expect(snapshotDirOf('/r/snapshots/12/fs', '/r/snapshots/12/work')).toBe('/r/snapshots/12');
    expect(snapshotDirOf('/r/snapshots/12/fs', '/elsewhere/work')).toBeNull();
    expect(snapshotDirOf('/r/overlay2/x/diff', '/r/overlay2/x/work')).toBeNull();
  });

  it('builds project commands only from clean paths and usable ids', () => {
    expect(buildProjectSetupCommand('/var/lib/containerd/snapshots/3', PROJECT)).toBe(
      `project -s -p /var/lib/containerd/snapshots/3 ${PROJECT}`,
    );
    expect(() => buildProjectSetupCommand('/a b/3', PROJECT)).toThrow(/not usable/);
    expect(() => buildProjectSetupCommand('/a/../3', PROJECT)).toThrow(/not usable/);
    expect(() => buildProjectSetupCommand('relative/3', PROJECT)).toThrow(/not usable/);
    expect(() => buildProjectSetupCommand('/a;rm/3', PROJECT)).toThrow(/not usable/);
    expect(() => buildProjectSetupCommand('/a/3', 0)).toThrow(/project id/);
  });

  it('never sets a first limit below what the layer holds', () => {
    expect(initialLimitBytes(64 * MiB, 2 * MiB)).toBe(64 * MiB);
    expect(initialLimitBytes(64 * MiB, 100 * MiB)).toBe(164 * MiB);
    expect(nextAgentProjectId([0, 3, 5], [])).toBe(AGENT_PROJECT_ID_BASE);
    expect(nextAgentProjectId([AGENT_PROJECT_ID_BASE + 2], [AGENT_PROJECT_ID_BASE + 7])).toBe(
      AGENT_PROJECT_ID_BASE + 8,
    );
  });
});
