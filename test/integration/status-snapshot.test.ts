/**
 * `docker-autogrow status` (the real CLI, dist/src/main.js) on real data: a private dockerd on loop
 * btrfs with quotas, containers with and without size limits that wrote known amounts of data, and
 * a rule from the configuration. The whole table is compared with a snapshot after normalising what
 * changes from run to run (time, temp paths, the filesystem's own usage).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LoopBtrfs, TestDockerd } from '../support/dockerd.js';
import { describeWith, prereqs, type Prereq } from '../support/prereqs.js';

const execFileAsync = promisify(execFile);
const MAIN = path.resolve(import.meta.dirname, '../../dist/src/main.js');
const built: Prereq = { name: 'dist/src/main.js', ok: () => existsSync(MAIN), fix: 'npm run build' };

describeWith(
  [prereqs.root, prereqs.dockerd, prereqs.busybox, prereqs.btrfs, built],
  'status on real btrfs data',
  () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agstat-'));
    const btrfs = new LoopBtrfs(2 * 1024 ** 3);
    let dockerd: TestDockerd;
    let configFile: string;

    /** Starts a container that writes `writeMiB` into its writable layer and then sleeps. */
    async function startWriter(name: string, writeMiB: number, sizeLimit: string | null): Promise<void> {
      const image = await dockerd.ensureBusyboxImage();
      await dockerd.cli([
        'run',
        '-d',
        '--name',
        name,
        ...(sizeLimit ? ['--storage-opt', `size=${sizeLimit}`] : []),
        image,
        'sh',
        '-c',
        `dd if=/dev/zero of=/data/fill bs=1M count=${writeMiB} 2>/dev/null; sync; touch /data/done; exec sleep 3600`,
      ]);
      for (let attempt = 0; attempt < 100; attempt += 1) {
        try {
          await dockerd.cli(['exec', name, 'test', '-e', '/data/done']);
          return;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
      throw new Error(`${name} did not finish writing`);
    }

    beforeAll(async () => {
      await btrfs.create({ quotas: true });
      dockerd = new TestDockerd({ storageDriver: 'btrfs', dataRoot: btrfs.mountPoint });
      await dockerd.start();
      await startWriter('web-1', 40, '64M'); // 62%: below the 85% default threshold
      await startWriter('web-2', 58, '64M'); // 90%: would grow (status is a dry run)
      await startWriter('db-main', 58, '64M'); // 90% but the "databases" rule caps it at 64M
      await startWriter('scratch', 5, null); // no size limit
      await execFileAsync('/bin/sync');
      configFile = path.join(dir, 'config.yaml');
      writeFileSync(
        configFile,
        [
          'docker:',
          `  socketPath: ${dockerd.socketPath}`,
          'metrics:',
          '  enabled: false',
          'journal:',
          `  path: ${path.join(dir, 'state', 'journal.jsonl')}`,
          'rules:',
          '  - name: databases',
          '    match:',
          '      name: db-*',
          '    maxSize: 64M',
          '',
        ].join('\n'),
      );
    });

    afterAll(async () => {
      await dockerd?.destroy();
      await btrfs.destroy();
      rmSync(dir, { recursive: true, force: true });
    });

    function normalize(text: string): string {
      return (
        text
          .replaceAll(btrfs.mountPoint, '<data-root>')
          .replaceAll(dockerd.socketPath, '<socket>')
          .replace(/pass at \S+ took [^,\s]+/, 'pass at <time> took <duration>')
          .replace(/^( {2}data +)\S+ \/ (\S+) +\[[#.]+\] +\d+%$/m, '$1<used> / $2  <bar>')
          .replace(/^( {2}committed )\S+ \(\S+ of data\)$/m, '$1<committed>')
          // btrfs metadata makes usage jitter by a few KiB between runs: whole MiB, same column width
          .replace(/(\d+\.\d+)MiB/g, (match, value: string) =>
            `${Math.round(Number(value))}MiB`.padStart(match.length),
          )
      );
    }

    it('prints the pool on top and a row per container with size, used, bar, rule and next action', async () => {
      const { stdout } = await execFileAsync(process.execPath, [MAIN, 'status', '--config', configFile], {
        timeout: 120_000,
      });
      expect(normalize(stdout)).toMatchInlineSnapshot(`
        "Docker: unix://<socket> (from docker.socketPath in the configuration)
        docker-autogrow status: btrfs, pass at <time> took <duration>, dry run
        POOL <data-root> (filesystem, rw)
          data      <used> / 2GiB  <bar>
          committed <committed>

        CONTAINER  DRIVER   SIZE     USED  USED%              RULE       NEXT
        db-main    btrfs   64MiB    60MiB  [#########.]  93%  databases  at max 64MiB
        scratch    btrfs       -     7MiB  -                  defaults   no limit: created without --storage-opt size
        web-1      btrfs   64MiB    42MiB  [######....]  65%  defaults   grow at 85%
        web-2      btrfs   64MiB    60MiB  [#########.]  93%  defaults   would grow to 1.06GiB
        "
      `);
    });

    it('prints the same rows as JSON with bytes and ratios', async () => {
      const { stdout } = await execFileAsync(
        process.execPath,
        [MAIN, 'status', '--json', '--config', configFile],
        {
          timeout: 120_000,
        },
      );
      const status = JSON.parse(stdout) as {
        driver: string;
        dryRun: boolean;
        containers: {
          name: string;
          sizeBytes: number | null;
          usedRatio: number | null;
          rule: string;
          next: string;
        }[];
      };
      expect(status.driver).toBe('btrfs');
      expect(status.dryRun).toBe(true);
      const byName = Object.fromEntries(status.containers.map((container) => [container.name, container]));
      expect(byName['web-1']?.sizeBytes).toBe(64 * 1024 ** 2);
      expect(byName['web-1']?.usedRatio).toBeGreaterThan(0.6);
      expect(byName['web-1']?.usedRatio).toBeLessThan(0.66);
      expect(byName['db-main']?.rule).toBe('databases');
      expect(byName.scratch?.sizeBytes).toBeNull();
    });
  },
);
