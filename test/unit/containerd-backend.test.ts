/**
 * The observe-only containerd store backend on outputs recorded from a real dockerd 28.5.2
 * (test/fixtures/docker/containerd/: docker info, a container's /proc/<pid>/mountinfo), with the
 * recorded data root rewritten to a temp dir that holds a real upperdir: usage from a bounded,
 * resumable walk, cached while the pool's statfs does not move, the pool, no limits, no process.
 */
import { link, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mapDockerInfo } from '../../src/docker/mapping.js';
import type { ContainerInfo } from '../../src/docker/model.js';
import { silentLogger } from '../../src/log/logger.js';
import { renderStatus } from '../../src/cli/render-status.js';
import { CONTAINERD_NO_LIMIT, createContainerdBackend } from '../../src/storage/containerd/index.js';
import { nodeWalkFs, type WalkFs } from '../../src/storage/containerd/layer-walk.js';
import type { FilesystemUsage } from '../../src/storage/filesystem.js';
import type { BackendDeps, StorageBackend } from '../../src/storage/types.js';
import { fixture } from '../support/scripted-runner.js';

const RECORDED_ROOT = '/tmp/agd-rNNx/root';
const ID = 'a'.repeat(64);
const MiB = 1024 ** 2;

let base: string;
let dataRoot: string;
let procRoot: string;
let upperDir: string;
let statfsCalls: number;
let poolUsedBytes: number;
let lstatCalls: number;
let runnerCalls: number;

function container(pid = 4242): ContainerInfo {
  return {
    id: ID,
    name: 'ctr-layer',
    image: 'busybox',
    labels: {},
    state: 'running',
    running: true,
    pid,
    storageDriver: 'overlayfs',
    graphDriverData: {},
    storageOptSizeBytes: 64 * MiB,
  };
}

function backend(walkEntryBudget?: number): StorageBackend {
  const info = mapDockerInfo(
    { ...JSON.parse(fixture('docker/containerd/info.json')), DockerRootDir: dataRoot },
    JSON.parse(fixture('docker/containerd/version.json')),
  );
  const deps = {
    logger: silentLogger(),
    dockerInfo: info,
    runner: {
      run: () => {
        runnerCalls += 1;
        throw new Error('no process may be started');
      },
    },
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
    statfs: (): Promise<FilesystemUsage> => {
      statfsCalls += 1;
      return Promise.resolve({
        typeMagic: 0xef53,
        totalBytes: 10 * 1024 * MiB,
        availableBytes: 10 * 1024 * MiB - poolUsedBytes,
        usedBytes: poolUsedBytes,
        totalInodes: 1000,
        freeInodes: 900,
      });
    },
    ...(walkEntryBudget !== undefined ? { walkEntryBudget } : {}),
  });
}

beforeEach(() => {
  base = mkdtempSync(path.join(tmpdir(), 'ctrd-unit-'));
  dataRoot = path.join(base, 'root');
  procRoot = path.join(base, 'proc');
  const snapshotter = path.join(dataRoot, 'containerd/daemon/io.containerd.snapshotter.v1.overlayfs');
  upperDir = path.join(snapshotter, 'snapshots/3/fs');
  mkdirSync(upperDir, { recursive: true });
  mkdirSync(path.join(procRoot, '4242'), { recursive: true });
  mkdirSync(path.join(procRoot, '4343'), { recursive: true });
  const mountinfo = fixture('docker/containerd/mountinfo-container.txt').replaceAll(RECORDED_ROOT, dataRoot);
  writeFileSync(path.join(procRoot, '4242', 'mountinfo'), mountinfo);
  writeFileSync(path.join(procRoot, '4343', 'mountinfo'), mountinfo);
  writeFileSync(path.join(procRoot, 'self-mountinfo'), `1 0 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n`);
  statfsCalls = 0;
  poolUsedBytes = 5 * MiB;
  lstatCalls = 0;
  runnerCalls = 0;
});

afterEach(() => rmSync(base, { recursive: true, force: true }));

describe('containerd store backend (observe only)', () => {
  it("reports the upperdir's allocated bytes, the pool under the snapshotter root, and no limit", async () => {
    writeFileSync(path.join(upperDir, 'written'), Buffer.alloc(8 * MiB, 1));
    mkdirSync(path.join(upperDir, 'etc/deep'), { recursive: true });
    writeFileSync(path.join(upperDir, 'etc/deep/a'), Buffer.alloc(MiB, 1));
    // a hard link counts once, like du
    await promisify(link)(path.join(upperDir, 'etc/deep/a'), path.join(upperDir, 'etc/a-link'));
    const observation = await backend().observe([container()], 1_000);
    const usage = observation.containers.get(ID);
    expect(observation.errors.size).toBe(0);
    expect(usage?.driver).toBe('containerd');
    expect(usage?.sizeBytes).toBeNull();
    expect(usage?.usedBytes).toBeGreaterThanOrEqual(9 * MiB);
    expect(usage?.usedBytes).toBeLessThan(10 * MiB);
    // root, written, etc, etc/deep, etc/deep/a, etc/a-link
    expect(usage?.inodesUsed).toBe(6);
    expect(usage?.detail).toMatchObject({ upperDir, snapshot: '3', limit: CONTAINERD_NO_LIMIT });
    expect(usage?.detail['usedEstimate']).toBeUndefined();
    expect(observation.pool).toMatchObject({
      name: path.join(dataRoot, 'containerd/daemon/io.containerd.snapshotter.v1.overlayfs'),
      kind: 'filesystem',
      dataUsedBytes: 5 * MiB,
      committedBytes: 0,
      mode: 'rw',
    });
    expect(runnerCalls).toBe(0);
  });

  it('walks nothing while the pool statfs does not move, and again when it does', async () => {
    writeFileSync(path.join(upperDir, 'f'), Buffer.alloc(MiB, 1));
    const agent = backend();
    await agent.observe([container()], 1_000);
    const afterFirst = lstatCalls;
    expect(afterFirst).toBe(2);
    writeFileSync(path.join(upperDir, 'g'), Buffer.alloc(MiB, 1)); // written but the token is the same
    const cached = await agent.observe([container()], 2_000);
    expect(lstatCalls).toBe(afterFirst);
    expect(cached.containers.get(ID)?.usedBytes).toBeLessThan(2 * MiB);
    poolUsedBytes += MiB;
    const walked = await agent.observe([container()], 3_000);
    expect(lstatCalls).toBe(afterFirst + 3);
    expect(walked.containers.get(ID)?.usedBytes).toBeGreaterThanOrEqual(2 * MiB);
    expect(statfsCalls).toBe(3);
  });

  it('bounds a pass by the entry budget, says the number is an estimate, and finishes the walk later', async () => {
    for (let dir = 0; dir < 5; dir += 1) {
      mkdirSync(path.join(upperDir, `d${dir}`));
      for (let file = 0; file < 20; file += 1) writeFileSync(path.join(upperDir, `d${dir}`, `f${file}`), 'x');
    }
    const agent = backend(30);
    const first = await agent.observe([container()], 1_000);
    const partial = first.containers.get(ID);
    expect(partial?.detail['usedEstimate']).toMatch(/^at least: walk under way/);
    expect(lstatCalls).toBeLessThanOrEqual(30 + 20);
    let last = first;
    for (
      let pass = 2;
      pass < 10 && last.containers.get(ID)?.detail['usedEstimate'] !== undefined;
      pass += 1
    ) {
      last = await agent.observe([container()], pass * 1_000);
    }
    expect(last.containers.get(ID)?.inodesUsed).toBe(1 + 5 + 100);
    expect(last.containers.get(ID)?.detail['usedEstimate']).toBeUndefined();
    const text = renderStatus(
      {
        startedAtMs: 1_000,
        durationMs: 5,
        driver: 'containerd',
        dryRun: true,
        pool: first.pool,
        containers: [
          {
            containerId: ID,
            name: 'ctr-layer',
            driver: 'containerd',
            usage: partial ?? null,
            ruleName: 'default',
            maxSizeBytes: null,
            decision: { kind: 'skip', reason: 'no-limit' },
            timeToFullSeconds: null,
            labelWarnings: [],
            backoffUntilMs: null,
            thresholdRatio: 0.8,
            cooldownUntilMs: null,
          },
        ],
        probes: [],
        errors: [],
      } as unknown as Parameters<typeof renderStatus>[0],
      { nowMs: 1_000 },
    );
    expect(text).toMatch(/ctr-layer\s+containerd\s+-\s+~\S+/);
    expect(text).toContain('no limit: Docker ignores size on the containerd store');
    expect(text).toMatch(/warning: ctr-layer: used is an estimate \(at least: walk under way/);
  });

  it('keeps the sums over a restart (new pid, same snapshot) and drops removed containers', async () => {
    writeFileSync(path.join(upperDir, 'f'), Buffer.alloc(MiB, 1));
    const agent = backend();
    await agent.observe([container(4242)], 1_000);
    const walked = lstatCalls;
    const restarted = await agent.observe([container(4343)], 2_000);
    expect(lstatCalls).toBe(walked);
    expect(restarted.containers.get(ID)?.usedBytes).toBeGreaterThanOrEqual(MiB);
    await agent.observe([], 3_000);
    await agent.observe([container(4343)], 4_000);
    expect(lstatCalls).toBe(walked * 2);
  });

  it('reports a container whose root is not an overlay, or whose pid is gone, as an error', async () => {
    writeFileSync(path.join(procRoot, '4343', 'mountinfo'), '1 0 8:1 / / rw - ext4 /dev/sda1 rw\n');
    const agent = backend();
    const notOverlay = await agent.observe([container(4343)], 1_000);
    expect(notOverlay.errors.get(ID)).toMatch(/root is not an overlay/);
    const gone = await agent.observe([container(999_999)], 2_000);
    expect(gone.errors.get(ID)).toMatch(/writable layer lookup failed/);
  });

  it('refuses to grow: there is no limit to grow', async () => {
    await expect(
      backend().grow({ container: container(), fromBytes: 0, toBytes: MiB, dryRun: false }),
    ).rejects.toThrow(CONTAINERD_NO_LIMIT);
  });
});
