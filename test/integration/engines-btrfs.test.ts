/**
 * The host btrfs tier on every engine: Debian 12's 20.10 (the host's dockerd), trixie's 26.1 and sid's
 * 28.5 (test/engines/build-root.sh roots, run pivoted into their own mount namespace by
 * test/engines/run-dockerd.sh). One compact pass per engine, so CI pays a minute or so each:
 *
 *   control      the rig bites before anything trusts it: a 64M container fails to write 200 MiB,
 *                and a file its root gets lands in its own subvolume, not in the host's /
 *                (dockerd 26/28 in a plain chroot gave containers the host's / as root)
 *   events       the real inventory (DockerClient + event stream) follows create/start/die/destroy
 *   inventory    a resync sees every container with its StorageOpt size and the btrfs driver
 *   grow         the btrfs backend raises 64M to 128M online; the container writes past 64M
 *   persistence  the grown limit survives docker stop/start and a dockerd restart
 *
 * The deeper btrfs and inventory suites (btrfs-backend, docker-inventory) run on any one engine with
 * AUTOGROW_TEST_ENGINE=trixie|sid (docs/engines.md). A missing engine root FAILS (prereq), never skips.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DockerClient } from '../../src/docker/client.js';
import { DockerInventory } from '../../src/docker/inventory.js';
import type { ContainerInfo } from '../../src/docker/model.js';
import { ExecaRunner } from '../../src/exec/runner.js';
import { silentLogger } from '../../src/log/logger.js';
import { createBtrfsBackend } from '../../src/storage/btrfs/index.js';
import type { StorageBackend } from '../../src/storage/types.js';
import {
  CURRENT_ENGINES,
  LoopBtrfs,
  TestDockerd,
  engineRootPath,
  type CurrentEngine,
} from '../support/dockerd.js';
import { describeWith, prereqs, type Prereq } from '../support/prereqs.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 ** 2;

interface Engine {
  name: 'host' | CurrentEngine;
  /** Engine version prefix the daemon must report (proves which dockerd really ran). */
  versionPrefix: string;
  root: string | null;
}

const ENGINES: Engine[] = [
  { name: 'host', versionPrefix: '20.10.', root: null },
  ...CURRENT_ENGINES.map((name) => ({
    name,
    versionPrefix: name === 'sid' ? '28.5.' : '26.1.',
    root: engineRootPath(name),
  })),
];

const rootPrereq = (engine: Engine): Prereq => ({
  name: `engine root ${engine.name}`,
  ok: () => engine.name === 'host' || (engine.root !== null && existsSync(engine.root)),
  fix: `test/engines/build-root.sh ${engine.name} (.ci/run builds it)`,
});

async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await condition()) return Date.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

for (const engine of ENGINES) {
  describeWith(
    [prereqs.root, prereqs.dockerd, prereqs.busybox, prereqs.btrfs, rootPrereq(engine)],
    `btrfs tier on engine ${engine.name}`,
    () => {
      const btrfs = new LoopBtrfs(1536 * MiB);
      const stateDir = mkdtempSync(path.join(tmpdir(), 'agestate-'));
      const baseDir = mkdtempSync(path.join(tmpdir(), 'agd-'));
      const timings: Record<string, number> = {};
      let dockerd: TestDockerd;
      let client: DockerClient;
      let backend: StorageBackend;
      let inventory: DockerInventory | null = null;
      let image: string;
      const events: string[] = [];

      const newDockerd = () =>
        new TestDockerd({
          storageDriver: 'btrfs',
          dataRoot: btrfs.mountPoint,
          baseDir,
          engineRoot: engine.root,
        });

      beforeAll(async () => {
        const started = Date.now();
        await btrfs.create();
        dockerd = newDockerd();
        await dockerd.start();
        timings['startMs'] = Date.now() - started;
        image = await dockerd.ensureBusyboxImage();
        client = new DockerClient({ socketPath: dockerd.socketPath, timeoutMs: 20_000 });
        const dockerInfo = await client.info();
        backend = createBtrfsBackend({
          runner: new ExecaRunner(),
          docker: client,
          dockerInfo,
          logger: silentLogger(),
          stateDir,
          commandTimeoutMs: 30_000,
        });
      }, 180_000);

      afterAll(async () => {
        console.log(`engine ${engine.name}: ${JSON.stringify(timings)}`);
        await inventory?.stop();
        await dockerd?.destroy();
        await btrfs.destroy();
        rmSync(stateDir, { recursive: true, force: true });
        rmSync(baseDir, { recursive: true, force: true });
      });

      async function inspect(id: string): Promise<ContainerInfo> {
        const info = await client.inspectContainer(id);
        if (!info) throw new Error(`container ${id} is gone`);
        return info;
      }

      it('is the engine it claims, on btrfs, with a negotiated API version', async () => {
        const info = await client.info();
        expect(info.serverVersion.startsWith(engine.versionPrefix)).toBe(true);
        expect(info.driver).toBe('btrfs');
        expect(info.dockerRootDir).toBe(btrfs.mountPoint);
        expect(client.apiVersion).toBe(info.apiVersion > '1.52' ? '1.52' : info.apiVersion);
      });

      it("control: a 64M container cannot write 200 MiB, and its / is its own, not the host's", async () => {
        const marker = `agd-engine-marker-${process.pid}-${engine.name}`;
        const started = Date.now();
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
            `touch /${marker}; dd if=/dev/zero of=/big bs=1M count=200 2>/dev/null && echo WROTE-ALL || echo LIMITED; ls -d /${marker}`,
          ],
          120_000,
        );
        timings['controlMs'] = Date.now() - started;
        expect(out).toContain('LIMITED');
        expect(out).not.toContain('WROTE-ALL');
        expect(out).toContain(`/${marker}`);
        expect(existsSync(`/${marker}`)).toBe(false);
      });

      it('events + inventory: follows create, start, die and destroy; resync sees size and driver', async () => {
        inventory = new DockerInventory({
          api: client,
          events: client,
          logger: silentLogger(),
          resyncIntervalMs: 60_000,
          eventStream: { backoff: { initialMs: 100, maxMs: 1000 } },
        });
        inventory.subscribe({ onEvent: (event) => events.push(`${event.action} ${event.containerId}`) });
        await inventory.start();
        await waitFor('event stream', () => inventory?.streamConnected === true, 10_000);
        const id = (await dockerd.cli(['create', '--name', 'ev', '--network', 'none', image, 'true'])).trim();
        await dockerd.cli(['start', id]);
        timings['followMs'] = await waitFor('die event', () => events.includes(`die ${id}`), 20_000);
        expect(events).toContain(`create ${id}`);
        expect(events).toContain(`start ${id}`);
        await dockerd.cli(['rm', id]);
        await waitFor('destroy event', () => events.includes(`destroy ${id}`), 20_000);
        await waitFor('gone from the inventory', () => inventory?.get(id) === undefined, 5_000);

        const sized = (
          await dockerd.cli([
            'run',
            '-d',
            '--name',
            'grow-me',
            '--network',
            'none',
            '--storage-opt',
            'size=64M',
            image,
            'sleep',
            '100000',
          ])
        ).trim();
        await inventory.resync();
        expect(inventory.get(sized)).toMatchObject({
          name: 'grow-me',
          running: true,
          storageDriver: 'btrfs',
          storageOptSizeBytes: 64 * MiB,
        });
      });

      it('grow: 64M raised to 128M online, the container writes past 64M, and it persists over stop/start and a dockerd restart', async () => {
        const id = (await dockerd.cli(['inspect', '--format', '{{.Id}}', 'grow-me'])).trim();
        const container = await inspect(id);
        await dockerd.cli(
          ['exec', 'grow-me', 'sh', '-c', 'dd if=/dev/zero of=/a bs=1M count=56 2>/dev/null'],
          60_000,
        );
        let observation = await backend.observe([container], Date.now());
        expect(observation.containers.get(id)?.sizeBytes).toBe(64 * MiB);
        expect(observation.containers.get(id)?.usedBytes).toBeGreaterThan(50 * MiB);
        let started = Date.now();
        const result = await backend.grow({
          container,
          fromBytes: 64 * MiB,
          toBytes: 128 * MiB,
          dryRun: false,
        });
        timings['growMs'] = Date.now() - started;
        expect(result).toMatchObject({ toBytes: 128 * MiB, noop: false });
        // 56 + 40 MiB: more than the old limit allows
        expect(
          (
            await dockerd.cli(
              [
                'exec',
                'grow-me',
                'sh',
                '-c',
                'dd if=/dev/zero of=/b bs=1M count=40 2>&1 >/dev/null && echo ok',
              ],
              60_000,
            )
          ).trim(),
        ).toMatch(/ok$/);

        await dockerd.cli(['stop', '-t', '1', 'grow-me']);
        await dockerd.cli(['start', 'grow-me']);
        observation = await backend.observe([await inspect(id)], Date.now());
        expect(observation.containers.get(id)?.sizeBytes).toBe(128 * MiB);

        started = Date.now();
        await inventory?.stop();
        inventory = null;
        await dockerd.stop();
        dockerd = newDockerd();
        await dockerd.start();
        timings['restartMs'] = Date.now() - started;
        await dockerd.cli(['start', 'grow-me']).catch(() => undefined); // no restart policy: start it again
        const restarted = await inspect(id);
        expect(restarted.running).toBe(true);
        observation = await backend.observe([restarted], Date.now());
        expect(observation.containers.get(id)?.sizeBytes).toBe(128 * MiB);
        // still writable past 64M after the restart, and still limited at 128M
        const out = await dockerd.cli(
          [
            'exec',
            'grow-me',
            'sh',
            '-c',
            'dd if=/dev/zero of=/c bs=1M count=64 2>/dev/null && echo WROTE-ALL || echo LIMITED',
          ],
          60_000,
        );
        expect(out.trim()).toBe('LIMITED');
        const { stdout } = await execFileAsync('/bin/btrfs', [
          'qgroup',
          'show',
          '--raw',
          '-re',
          btrfs.mountPoint,
        ]);
        expect(stdout).toContain(String(128 * MiB));
      });
    },
  );
}
