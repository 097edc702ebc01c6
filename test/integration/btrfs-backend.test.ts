/**
 * The btrfs backend against the real thing: a loop-mounted btrfs with quotas, a private dockerd
 * with --storage-driver btrfs, busybox containers with --storage-opt size=64M, the real btrfs-progs
 * through the real ExecaRunner, and Docker read through the real DockerClient.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DockerClient } from '../../src/docker/client.js';
import type { ContainerInfo } from '../../src/docker/model.js';
import { ExecaRunner } from '../../src/exec/runner.js';
import { silentLogger } from '../../src/log/logger.js';
import { createBtrfsBackend } from '../../src/storage/btrfs/index.js';
import type { BackendDeps, StorageBackend } from '../../src/storage/types.js';
import { LoopBtrfs, TestDockerd } from '../support/dockerd.js';
import { describeWith, prereqs } from '../support/prereqs.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 ** 2;
const needs = [prereqs.root, prereqs.dockerd, prereqs.busybox, prereqs.btrfs];

/** Committed qgroup numbers straight from btrfs, independent of the backend under test. */
async function qgroupLimitBytes(dataRoot: string, subvolumeId: number): Promise<number | null> {
  const { stdout } = await execFileAsync('/bin/btrfs', ['qgroup', 'show', '--raw', '-re', dataRoot]);
  const row = stdout.split('\n').find((line) => line.startsWith(`0/${subvolumeId} `));
  if (!row) throw new Error(`no qgroup 0/${subvolumeId}:\n${stdout}`);
  const maxReferenced = row.trim().split(/\s+/)[3];
  return maxReferenced === 'none' ? null : Number(maxReferenced);
}

describeWith(needs, 'btrfs backend on real btrfs + dockerd', () => {
  const btrfs = new LoopBtrfs(2 * 1024 ** 3);
  const stateDir = mkdtempSync(path.join(tmpdir(), 'agbstate-'));
  let dockerd: TestDockerd;
  let client: DockerClient;
  let backend: StorageBackend;
  let image: string;
  const measured: Record<string, number> = {};

  beforeAll(async () => {
    await btrfs.create();
    dockerd = new TestDockerd({ storageDriver: 'btrfs', dataRoot: btrfs.mountPoint });
    await dockerd.start();
    image = await dockerd.ensureBusyboxImage();
    client = new DockerClient({ socketPath: dockerd.socketPath, timeoutMs: 20_000 });
    const deps: BackendDeps = {
      runner: new ExecaRunner(),
      docker: client,
      dockerInfo: await client.info(),
      logger: silentLogger(),
      stateDir,
      commandTimeoutMs: 30_000,
    };
    backend = createBtrfsBackend(deps);
  });

  afterAll(async () => {
    console.log(`btrfs backend measurements: ${JSON.stringify(measured)}`);
    await dockerd?.destroy();
    await btrfs.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  });

  async function inspect(id: string): Promise<ContainerInfo> {
    const info = await client.inspectContainer(id);
    if (!info) throw new Error(`container ${id} is gone`);
    return info;
  }

  it('observes, grows a filling container online, and the grown limit survives docker restart', async () => {
    const id = (
      await dockerd.cli([
        'run',
        '-d',
        '--name',
        'fill',
        '--storage-opt',
        'size=64M',
        image,
        'sleep',
        '100000',
      ])
    ).trim();
    const unlimitedId = (await dockerd.cli(['run', '-d', '--name', 'free', image, 'sleep', '100000'])).trim();
    const container = await inspect(id);
    const unlimited = await inspect(unlimitedId);
    expect(container.storageOptSizeBytes).toBe(64 * MiB);

    let started = performance.now();
    let observation = await backend.observe([container, unlimited], Date.now());
    measured.firstObserveMs = Math.round(performance.now() - started);
    expect(observation.errors.size).toBe(0);
    const before = observation.containers.get(id);
    expect(before?.sizeBytes).toBe(64 * MiB);
    expect(before?.usedBytes).toBeLessThan(16 * MiB);
    expect(before?.detail.usageSource).toBe('sysfs');
    // the unlimited container is observed and reported, with no size
    expect(observation.containers.get(unlimitedId)?.sizeBytes).toBeNull();
    expect(observation.pool?.kind).toBe('filesystem');
    expect(observation.pool?.dataTotalBytes).toBe(2 * 1024 ** 3);
    expect(observation.pool?.committedBytes).toBe(64 * MiB);

    // A writer fills past the 85% threshold, then waits for /go and writes 40 MiB more: more
    // than the 64 MiB limit allows in total. It must finish without a single error.
    const writer = dockerd.cli(
      [
        'exec',
        'fill',
        'sh',
        '-c',
        'dd if=/dev/zero of=/first bs=1M count=58 2>/tmp/dd1 || exit 11; ' +
          'touch /filled; while [ ! -e /go ]; do sleep 0.1; done; ' +
          'dd if=/dev/zero of=/second bs=1M count=40 2>/tmp/dd2 || { cat /tmp/dd2; exit 12; }; echo writer-ok',
      ],
      120_000,
    );
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      try {
        await dockerd.cli(['exec', 'fill', 'test', '-e', '/filled'], 10_000);
        break;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    // no sync: live usage (sysfs) must already see the written bytes
    started = performance.now();
    observation = await backend.observe([container, unlimited], Date.now());
    measured.observeMs = Math.round(performance.now() - started);
    const filled = observation.containers.get(id);
    expect(filled?.usedBytes).toBeGreaterThan(0.85 * 64 * MiB);
    expect(filled?.usedBytes).toBeLessThanOrEqual(64 * MiB);
    const subvolumeId = Number(String(filled?.detail.qgroup).split('/')[1]);

    // dry run: the exact plan, nothing changed
    const plan = await backend.grow({ container, fromBytes: 64 * MiB, toBytes: 128 * MiB, dryRun: true });
    expect(plan.dryRun).toBe(true);
    expect(plan.steps[0]?.argv).toEqual([
      'btrfs',
      'qgroup',
      'limit',
      String(128 * MiB),
      `0/${subvolumeId}`,
      btrfs.mountPoint,
    ]);
    expect(await qgroupLimitBytes(btrfs.mountPoint, subvolumeId)).toBe(64 * MiB);

    started = performance.now();
    const result = await backend.grow({ container, fromBytes: 64 * MiB, toBytes: 128 * MiB, dryRun: false });
    measured.growMs = Math.round(performance.now() - started);
    expect(result).toMatchObject({ fromBytes: 64 * MiB, toBytes: 128 * MiB, noop: false, dryRun: false });
    expect(await qgroupLimitBytes(btrfs.mountPoint, subvolumeId)).toBe(128 * MiB);
    const mountId = String(filled?.detail.mountId);
    const quotaFile = path.join(btrfs.mountPoint, 'btrfs', 'quotas', mountId);
    expect(readFileSync(quotaFile, 'utf8')).toBe(String(128 * MiB));

    await dockerd.cli(['exec', 'fill', 'touch', '/go']);
    expect((await writer).trim()).toBe('writer-ok');

    // never shrink: a smaller target is a no-op
    const smaller = await backend.grow({ container, fromBytes: 128 * MiB, toBytes: 96 * MiB, dryRun: false });
    expect(smaller.noop).toBe(true);
    expect(await qgroupLimitBytes(btrfs.mountPoint, subvolumeId)).toBe(128 * MiB);

    // docker restart: Docker re-applies the quota file; the grown limit stays and the container runs
    await dockerd.cli(['restart', '-t', '1', 'fill']);
    const restarted = await inspect(id);
    expect(restarted.running).toBe(true);
    expect(await qgroupLimitBytes(btrfs.mountPoint, subvolumeId)).toBe(128 * MiB);
    observation = await backend.observe([restarted, unlimited], Date.now());
    expect(observation.containers.get(id)?.sizeBytes).toBe(128 * MiB);
    expect(observation.containers.get(id)?.usedBytes).toBeGreaterThan(95 * MiB);
    expect((await dockerd.cli(['exec', 'fill', 'echo', 'alive'])).trim()).toBe('alive');

    // growing the unlimited container is refused
    await expect(
      backend.grow({ container: unlimited, fromBytes: 0, toBytes: 128 * MiB, dryRun: false }),
    ).rejects.toThrow(/without a size limit/);

    // doctor on a served host: quotas on, live usage, and a warning naming the unlimited container
    const checks = await backend.doctor();
    const byName = new Map(checks.map((check) => [check.name, check]));
    expect(byName.get('btrfs quotas enabled')?.ok).toBe(true);
    expect(byName.get('data root on btrfs')?.ok).toBe(true);
    expect(byName.get('btrfs live qgroup usage (sysfs)')?.ok).toBe(true);
    expect(byName.get('containers have a size limit')).toMatchObject({ ok: false, severity: 'warn' });
    expect(byName.get('containers have a size limit')?.detail).toContain('free');
    expect(byName.get('btrfs quota files match live limits')?.ok).toBe(true);

    await dockerd.cli(['rm', '-f', 'fill', 'free']);
    expect((await dockerd.cli(['ps', '-aq'])).trim()).toBe('');
  });

  it('recover() brings a quota file left behind by a crash up to the live limit', async () => {
    const id = (
      await dockerd.cli([
        'run',
        '-d',
        '--name',
        'crash',
        '--storage-opt',
        'size=64M',
        image,
        'sleep',
        '100000',
      ])
    ).trim();
    const container = await inspect(id);
    const observation = await backend.observe([container], Date.now());
    const usage = observation.containers.get(id);
    const subvolumeId = String(usage?.detail.qgroup);
    // a crash between the two steps of a grow: the live limit raised, the file not yet written
    await execFileAsync('/bin/btrfs', ['qgroup', 'limit', String(96 * MiB), subvolumeId, btrfs.mountPoint]);
    const quotaFile = path.join(btrfs.mountPoint, 'btrfs', 'quotas', String(usage?.detail.mountId));
    expect(readFileSync(quotaFile, 'utf8')).toBe(String(64 * MiB));
    const doctorBefore = await backend.doctor();
    expect(doctorBefore.find((check) => check.name === 'btrfs quota files match live limits')?.ok).toBe(
      false,
    );

    await backend.recover?.([container]);
    expect(readFileSync(quotaFile, 'utf8')).toBe(String(96 * MiB));
    await dockerd.cli(['restart', '-t', '1', 'crash']);
    expect(await qgroupLimitBytes(btrfs.mountPoint, Number(subvolumeId.split('/')[1]))).toBe(96 * MiB);
    await dockerd.cli(['rm', '-f', 'crash']);
  });
});

describeWith([prereqs.root, prereqs.btrfs], 'btrfs backend on a btrfs with quotas disabled', () => {
  const btrfs = new LoopBtrfs(512 * MiB);

  beforeAll(async () => {
    await btrfs.create({ quotas: false });
  });
  afterAll(async () => {
    await btrfs.destroy();
  });

  it('doctor and observe say clearly that the host cannot be served', async () => {
    const deps: BackendDeps = {
      runner: new ExecaRunner(),
      // no daemon needed: the host check is about the filesystem
      docker: {
        info: async () => {
          throw new Error('not used');
        },
        listContainerIds: async () => [],
        inspectContainer: async () => null,
        ping: async () => true,
      },
      dockerInfo: {
        serverVersion: '20.10.24',
        apiVersion: '1.41',
        driver: 'btrfs',
        driverStatus: [],
        dockerRootDir: btrfs.mountPoint,
        liveRestoreEnabled: false,
        containersRunning: 0,
      },
      logger: silentLogger(),
      stateDir: btrfs.mountPoint,
      commandTimeoutMs: 30_000,
    };
    const backend = createBtrfsBackend(deps);
    const checks = await backend.doctor();
    const quotas = checks.find((check) => check.name === 'btrfs quotas enabled');
    expect(quotas).toMatchObject({ ok: false, severity: 'error' });
    expect(quotas?.detail).toMatch(/quotas are disabled/);
    expect(quotas?.fix).toBe(
      `btrfs quota enable ${btrfs.mountPoint} (then recreate containers that need a size limit)`,
    );
    expect(checks.find((check) => check.name === 'data root on btrfs')?.ok).toBe(true);

    const observation = await backend.observe([], Date.now());
    expect(observation.pool?.dataTotalBytes).toBe(512 * MiB);
    expect(observation.containers.size).toBe(0);
  });
});
