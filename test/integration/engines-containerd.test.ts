/**
 * Docker 28.5 (sid engine root) with the containerd image store (`"features": {"containerd-snapshotter":
 * true}`), for real: the control shows what Docker does with a size limit there (a `size=64M` container
 * writes 100 MiB: ignored), the agent detects the store, finds each running container's writable layer
 * from its /proc/<pid>/mountinfo (the very bytes the container wrote are in that upperdir), the real
 * CLI's `status --json` shows each container's writable-layer usage and the pool under the snapshotter
 * root (observe only, no limits), and `doctor` says plainly that Docker ignores per-container size limits.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DockerClient } from '../../src/docker/client.js';
import { containerRootOverlay, containerdImageStore } from '../../src/storage/containerd/store.js';
import { TestDockerd, engineRootPath } from '../support/dockerd.js';
import { describeWith, prereqs, type Prereq } from '../support/prereqs.js';

const execFileAsync = promisify(execFile);
const MAIN = path.resolve(import.meta.dirname, '../../dist/src/main.js');
const SID_ROOT = engineRootPath('sid');
const needs: Prereq[] = [
  prereqs.root,
  prereqs.busybox,
  { name: 'engine root sid', ok: () => SID_ROOT !== null, fix: 'test/engines/build-root.sh sid' },
  { name: 'dist/src/main.js', ok: () => existsSync(MAIN), fix: 'npm run build' },
];

describeWith(needs, 'containerd image store on Docker 28.5', () => {
  let dockerd: TestDockerd;
  let client: DockerClient;
  let image: string;
  let configFile: string;
  const baseDir = mkdtempSync(path.join(tmpdir(), 'agd-'));

  beforeAll(async () => {
    const daemonJson = path.join(baseDir, 'daemon.json');
    writeFileSync(daemonJson, JSON.stringify({ features: { 'containerd-snapshotter': true } }));
    configFile = path.join(baseDir, 'config.yaml');
    writeFileSync(
      configFile,
      `metrics:\n  enabled: false\njournal:\n  path: ${baseDir}/state/journal.jsonl\n`,
    );
    dockerd = new TestDockerd({ engineRoot: SID_ROOT, baseDir, extraArgs: [`--config-file=${daemonJson}`] });
    await dockerd.start();
    image = await dockerd.ensureBusyboxImage();
    client = new DockerClient({ socketPath: dockerd.socketPath, timeoutMs: 20_000 });
  }, 180_000);

  afterAll(async () => {
    await dockerd?.destroy();
    rmSync(baseDir, { recursive: true, force: true });
  });

  it('control: Docker accepts size=64M there and lets the container write 100 MiB', async () => {
    const out = await dockerd.cli(
      [
        'run',
        '--rm',
        '--network',
        'none',
        '--storage-opt',
        'size=64M',
        image,
        'sh',
        '-c',
        'dd if=/dev/zero of=/big bs=1M count=100 2>/dev/null && echo WROTE-ALL || echo LIMITED',
      ],
      120_000,
    );
    expect(out.trim()).toBe('WROTE-ALL');
  });

  it("is detected, and each running container's writable layer is found from its mountinfo", async () => {
    const info = await client.info();
    expect(info.serverVersion).toMatch(/^28\.5\./);
    expect(containerdImageStore(info)).toEqual({ snapshotter: 'overlayfs' });
    await dockerd.cli([
      'run',
      '-d',
      '--name',
      'ctr-layer',
      '--network',
      'none',
      image,
      'sh',
      '-c',
      'dd if=/dev/zero of=/written bs=1M count=8 2>/dev/null; sleep 100000',
    ]);
    const id = (await dockerd.cli(['inspect', '--format', '{{.Id}}', 'ctr-layer'])).trim();
    const container = await client.inspectContainer(id);
    expect(container).toMatchObject({ storageDriver: 'overlayfs', running: true });
    const deadline = Date.now() + 20_000;
    let layers = null;
    while (Date.now() < deadline) {
      layers = containerRootOverlay(readFileSync(`/proc/${container?.pid}/mountinfo`, 'utf8'));
      if (
        layers &&
        existsSync(path.join(layers.upperDir, 'written')) &&
        statSync(path.join(layers.upperDir, 'written')).size === 8 * 1024 ** 2
      )
        break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(
      layers?.upperDir.startsWith(
        `${dockerd.dataRoot}/containerd/daemon/io.containerd.snapshotter.v1.overlayfs/snapshots/`,
      ),
    ).toBe(true);
    expect(statSync(path.join(layers?.upperDir ?? '/nonexistent', 'written')).size).toBe(8 * 1024 ** 2);
    expect(layers?.snapshotterRoot).toBe(
      `${dockerd.dataRoot}/containerd/daemon/io.containerd.snapshotter.v1.overlayfs`,
    );
  });

  it("status --json shows each container's writable-layer usage and the pool; doctor says plainly that Docker ignores size limits", async () => {
    // a second container, so "each" means more than one; ctr-layer (above) wrote 8 MiB
    await dockerd.cli([
      'run',
      '-d',
      '--name',
      'ctr-second',
      '--network',
      'none',
      image,
      'sh',
      '-c',
      'dd if=/dev/zero of=/three bs=1M count=3 2>/dev/null; mkdir -p /d/e; echo x > /d/e/f; sleep 100000',
    ]);
    const env = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: dockerd.baseDir,
      DOCKER_HOST: dockerd.host,
    };
    const doctor = await execFileAsync(process.execPath, [MAIN, '--config', configFile, 'doctor', '--json'], {
      env,
      timeout: 120_000,
    }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
    expect(doctor.stdout).toMatch(
      /containerd image store \(snapshotter overlayfs\): it accepts --storage-opt size= and ignores it/,
    );
    const snapshotterRoot = `${dockerd.dataRoot}/containerd/daemon/io.containerd.snapshotter.v1.overlayfs`;
    interface StatusJson {
      driver: string;
      pool: { name: string; kind: string; dataTotalBytes: number; dataUsedBytes: number } | null;
      containers: { name: string; sizeBytes: number | null; usedBytes: number | null; next: string }[];
      errors: string[];
    }
    // the container writes in the background: wait until its 8 MiB are on disk
    let status: StatusJson | null = null;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const { stdout } = await execFileAsync(
        process.execPath,
        [MAIN, '--config', configFile, 'status', '--json'],
        {
          env,
          timeout: 120_000,
        },
      );
      status = JSON.parse(stdout) as StatusJson;
      const layer = status.containers.find((c) => c.name === 'ctr-layer');
      const second = status.containers.find((c) => c.name === 'ctr-second');
      if ((layer?.usedBytes ?? 0) >= 8 * 1024 ** 2 && (second?.usedBytes ?? 0) >= 3 * 1024 ** 2) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(status?.driver).toBe('containerd');
    expect(status?.errors).toEqual([]);
    expect(status?.pool).toMatchObject({ name: snapshotterRoot, kind: 'filesystem' });
    const fs = statfsSync(snapshotterRoot);
    expect(status?.pool?.dataTotalBytes).toBe(fs.blocks * fs.bsize);
    const byName = new Map(status?.containers.map((c) => [c.name, c]));
    expect(byName.get('ctr-layer')?.usedBytes).toBeGreaterThanOrEqual(8 * 1024 ** 2);
    expect(byName.get('ctr-second')?.usedBytes).toBeGreaterThanOrEqual(3 * 1024 ** 2);
    for (const name of ['ctr-layer', 'ctr-second']) {
      expect(byName.get(name)).toMatchObject({
        sizeBytes: null,
        next: 'no limit: Docker ignores size on the containerd store',
      });
    }
    const text = await execFileAsync(process.execPath, [MAIN, '--config', configFile, 'status'], {
      env,
      timeout: 120_000,
    });
    expect(text.stdout).toContain(`POOL ${snapshotterRoot} (filesystem, rw)`);
    expect(text.stdout).toMatch(/ctr-layer\s+containerd\s+-\s+\S+MiB/);
  });
});
