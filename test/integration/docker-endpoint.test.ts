/**
 * The Docker endpoint as the docker CLI resolves it, against a real private dockerd listening on a
 * unix socket AND on tcp://127.0.0.1:<port> (plain TCP on loopback, for the test only): the real
 * CLI (dist/src/main.js) `status` and `once --dry-run` with DOCKER_HOST=unix://, DOCKER_HOST=tcp://,
 * a context made by the real `docker context create`/`use` (config.json currentContext) and by
 * DOCKER_CONTEXT, --host over a wrong DOCKER_HOST, and the "cannot reach" error naming the source.
 * The configuration sets no docker.socketPath: without the endpoint resolution every case would go
 * to /var/run/docker.sock.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DOCKER_CLI, LoopBtrfs, TestDockerd } from '../support/dockerd.js';
import { freePort } from '../support/ports.js';
import { describeWith, prereqs, type Prereq } from '../support/prereqs.js';

const execFileAsync = promisify(execFile);
const MAIN = path.resolve(import.meta.dirname, '../../dist/src/main.js');
const built: Prereq = { name: 'dist/src/main.js', ok: () => existsSync(MAIN), fix: 'npm run build' };

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

describeWith(
  [prereqs.root, prereqs.dockerd, prereqs.busybox, prereqs.btrfs, built],
  'Docker endpoint: DOCKER_HOST, tcp, docker context, --host',
  () => {
    const btrfs = new LoopBtrfs(1024 ** 3);
    const dir = mkdtempSync(path.join(tmpdir(), 'agep-'));
    const home = path.join(dir, 'home');
    const dockerConfig = path.join(home, '.docker');
    let dockerd: TestDockerd;
    let tcpHost: string;
    let configFile: string;

    beforeAll(async () => {
      await btrfs.create();
      tcpHost = `tcp://127.0.0.1:${await freePort()}`;
      dockerd = new TestDockerd({
        storageDriver: 'btrfs',
        dataRoot: btrfs.mountPoint,
        extraHosts: [tcpHost],
      });
      await dockerd.start();
      const image = await dockerd.ensureBusyboxImage();
      await dockerd.cli([
        'run',
        '-d',
        '--name',
        'ep-web',
        '--storage-opt',
        'size=64M',
        image,
        'sleep',
        '100000',
      ]);
      configFile = path.join(dir, 'config.yaml');
      writeFileSync(
        configFile,
        [
          'metrics:',
          '  enabled: false',
          'journal:',
          `  path: ${path.join(dir, 'state', 'journal.jsonl')}`,
          '',
        ].join('\n'),
      );
    }, 180_000);

    afterAll(async () => {
      await dockerd?.destroy();
      await btrfs.destroy();
      rmSync(dir, { recursive: true, force: true });
    });

    /** The CLI with a clean environment: only what each case sets, no inherited DOCKER_*. */
    async function cli(args: string[], env: Record<string, string>): Promise<CliResult> {
      try {
        const { stdout, stderr } = await execFileAsync(
          process.execPath,
          [MAIN, '--config', configFile, ...args],
          {
            timeout: 120_000,
            env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: home, ...env },
          },
        );
        return { code: 0, stdout, stderr };
      } catch (error) {
        const failed = error as { code?: number; stdout?: string; stderr?: string };
        return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
      }
    }

    /** `status` names the endpoint and shows the container; `once` (optional: each CLI run costs seconds) sees it too. */
    async function expectServed(
      env: Record<string, string>,
      endpointLine: string,
      options: { flags?: string[]; once?: boolean; json?: boolean } = {},
    ) {
      const flags = options.flags ?? [];
      const status = await cli([...flags, 'status'], env);
      expect(status.stderr).not.toMatch(/cannot reach/);
      expect(status.code).toBe(0);
      expect(status.stdout.split('\n')[0]).toBe(`Docker: ${endpointLine}`);
      expect(status.stdout).toMatch(/^ep-web +btrfs +64MiB/m);
      if (options.json) {
        const json = await cli([...flags, 'status', '--json'], env);
        expect(JSON.parse(json.stdout)).toMatchObject({ dockerEndpoint: endpointLine });
      }
      if (options.once === false) return;
      const once = await cli([...flags, 'once', '--dry-run', '--json'], env);
      expect(once.code).toBe(0);
      const report = JSON.parse(once.stdout) as { containers: Array<{ name: string }> };
      expect(report.containers.map((container) => container.name)).toContain('ep-web');
    }

    it('DOCKER_HOST=unix://<socket>', async () => {
      await expectServed({ DOCKER_HOST: dockerd.host }, `${dockerd.host} (from DOCKER_HOST)`, { json: true });
    });

    it('DOCKER_HOST=tcp://127.0.0.1:<port> (API version negotiated over TCP)', async () => {
      await expectServed({ DOCKER_HOST: tcpHost }, `${tcpHost} (from DOCKER_HOST)`);
    });

    it('the current docker context, made by the real docker CLI, and DOCKER_CONTEXT', async () => {
      const docker = (args: string[]) =>
        execFileAsync(DOCKER_CLI, args, { env: { PATH: process.env['PATH'] ?? '', HOME: home } });
      await docker(['context', 'create', 'agtest', '--docker', `host=${dockerd.host}`]);
      await docker(['context', 'create', 'agtcp', '--docker', `host=${tcpHost}`]);
      await docker(['context', 'use', 'agtest']);
      // the docker CLI itself reaches the daemon through the context: the same thing we read
      expect((await docker(['info', '--format', '{{.Driver}}'])).stdout.trim()).toBe('btrfs');
      await expectServed(
        {},
        `${dockerd.host} (from docker context "agtest" (currentContext in config.json))`,
      );
      await expectServed(
        { DOCKER_CONTEXT: 'agtcp' },
        `${tcpHost} (from docker context "agtcp" (DOCKER_CONTEXT))`,
        { once: false },
      );
      // DOCKER_CONFIG moves the whole store, as for the docker CLI
      await expectServed(
        { HOME: '/nonexistent', DOCKER_CONFIG: dockerConfig },
        `${dockerd.host} (from docker context "agtest" (currentContext in config.json))`,
        { once: false },
      );
      await docker(['context', 'use', 'default']);
    });

    it('--host wins over a wrong DOCKER_HOST; an unreachable one is named with where it came from', async () => {
      const wrong = 'unix:///nonexistent/docker.sock';
      await expectServed({ DOCKER_HOST: wrong }, `${dockerd.host} (from --host)`, {
        flags: ['--host', dockerd.host],
        once: false,
      });
      const failed = await cli(['status'], { DOCKER_HOST: wrong });
      expect(failed.code).toBe(1);
      expect(failed.stderr).toContain(`cannot reach Docker at ${wrong} (from DOCKER_HOST)`);
      expect(failed.stderr).toContain('check DOCKER_HOST');
      expect(failed.stderr).not.toMatch(/^\s+at /m);
      const badContext = await cli(['status'], { DOCKER_CONTEXT: 'nosuch' });
      expect(badContext.code).toBe(2);
      expect(badContext.stderr).toMatch(/docker context "nosuch".*does not exist/);
    });
  },
);
