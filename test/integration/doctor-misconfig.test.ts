/**
 * `docker-autogrow doctor` (the real CLI, dist/src/main.js) against real misconfigured hosts: a
 * private dockerd on loop btrfs with quotas disabled, a binary configured to a path that does not
 * exist, and dockerd overlay2 on an XFS mounted without pquota. Each failure is named with its fix,
 * and the exit code says whether the host can be served (fixing the btrfs case turns it to 0).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoopBtrfs, TestDockerd } from '../support/dockerd.js';
import { freePort } from '../support/ports.js';
import { describeWith, prereqs, type Prereq } from '../support/prereqs.js';

const execFileAsync = promisify(execFile);
const MAIN = path.resolve(import.meta.dirname, '../../dist/src/main.js');

const xfsprogs: Prereq = {
  name: 'xfsprogs',
  ok: () => existsSync('/sbin/mkfs.xfs') || existsSync('/usr/sbin/mkfs.xfs'),
  fix: 'apt-get install xfsprogs',
};
const built: Prereq = { name: 'dist/src/main.js', ok: () => existsSync(MAIN), fix: 'npm run build' };

interface DoctorRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function doctor(configFile: string, extra: string[] = []): Promise<DoctorRun> {
  try {
    const { stdout, stderr } = await execFileAsync(
      process.execPath,
      [MAIN, 'doctor', '--config', configFile, ...extra],
      {
        timeout: 120_000,
      },
    );
    return { exitCode: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code?: number; stdout?: string; stderr?: string };
    return { exitCode: failure.code ?? -1, stdout: failure.stdout ?? '', stderr: failure.stderr ?? '' };
  }
}

async function writeConfig(dir: string, name: string, socketPath: string, extra = ''): Promise<string> {
  const file = path.join(dir, name);
  writeFileSync(
    file,
    [
      'docker:',
      `  socketPath: ${socketPath}`,
      'metrics:',
      `  listen: 127.0.0.1:${await freePort()}`,
      'journal:',
      `  path: ${path.join(dir, 'state', 'journal.jsonl')}`,
      extra,
    ].join('\n'),
  );
  return file;
}

/** The checklist line of a check and the fix line under it. */
function lineOf(stdout: string, name: string): { line: string; fix: string | undefined } {
  const lines = stdout.split('\n');
  const index = lines.findIndex((line) => line.slice(2).startsWith(`${name}:`));
  if (index < 0) throw new Error(`no check named ${JSON.stringify(name)} in:\n${stdout}`);
  const next = lines[index + 1];
  return {
    line: lines[index]!,
    fix: next?.startsWith('    fix: ') ? next.slice('    fix: '.length) : undefined,
  };
}

describeWith(
  [prereqs.root, prereqs.dockerd, prereqs.btrfs, xfsprogs, built],
  'doctor on real misconfigured hosts',
  () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agdoc-'));

    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    describe('dockerd on btrfs', () => {
      const btrfs = new LoopBtrfs(1024 ** 3);
      let dockerd: TestDockerd;

      beforeAll(async () => {
        await btrfs.create({ quotas: false });
        dockerd = new TestDockerd({ storageDriver: 'btrfs', dataRoot: btrfs.mountPoint });
        await dockerd.start();
      });

      afterAll(async () => {
        await dockerd?.destroy();
        await btrfs.destroy();
      });

      it('quotas disabled: names "btrfs quotas enabled" with `btrfs quota enable`, exit 1; enabling them makes it exit 0', async () => {
        const config = await writeConfig(dir, 'btrfs.yaml', dockerd.socketPath);
        const before = await doctor(config);
        const quotas = lineOf(before.stdout, 'btrfs quotas enabled');
        expect(quotas.line.startsWith('✗')).toBe(true);
        expect(quotas.fix).toContain(`btrfs quota enable ${btrfs.mountPoint}`);
        expect(before.stdout).toMatch(/^NOT OK: /m);
        expect(before.exitCode).toBe(1);
        expect(lineOf(before.stdout, 'storage driver supported').line.startsWith('✓')).toBe(true);

        const json = JSON.parse((await doctor(config, ['--json'])).stdout) as {
          ok: boolean;
          checks: { name: string; ok: boolean; fix?: string }[];
        };
        expect(json.ok).toBe(false);
        expect(json.checks.find((check) => check.name === 'btrfs quotas enabled')).toMatchObject({
          ok: false,
        });

        await execFileAsync('/bin/btrfs', ['quota', 'enable', btrfs.mountPoint]);
        const after = await doctor(config);
        expect(lineOf(after.stdout, 'btrfs quotas enabled').line.startsWith('✓')).toBe(true);
        expect(after.stdout).toMatch(/^OK: this host can be served/m);
        expect(after.exitCode).toBe(0);
      });

      it('missing binary: binaries.btrfs pointing nowhere is named with the config key to fix, exit 1', async () => {
        const config = await writeConfig(
          dir,
          'missing-binary.yaml',
          dockerd.socketPath,
          'binaries:\n  btrfs: /nonexistent/sbin/btrfs',
        );
        const run = await doctor(config);
        const binary = lineOf(run.stdout, 'binary btrfs');
        expect(binary.line.startsWith('✗')).toBe(true);
        expect(binary.line).toContain('/nonexistent/sbin/btrfs');
        expect(binary.fix).toMatch(/binaries\.btrfs/);
        expect(binary.fix).toMatch(/btrfs-progs/);
        expect(run.exitCode).toBe(1);
      });
    });

    describe('dockerd overlay2 on XFS mounted without pquota', () => {
      const xfsDir = path.join(dir, 'xfs');
      const image = path.join(xfsDir, 'xfs.img');
      const mountPoint = path.join(xfsDir, 'mnt');
      let dockerd: TestDockerd;

      beforeAll(async () => {
        mkdirSync(mountPoint, { recursive: true });
        await execFileAsync('/usr/bin/truncate', ['-s', '1G', image]);
        await execFileAsync('/sbin/mkfs.xfs', ['-q', '-f', '-n', 'ftype=1', image]);
        // the misconfiguration: no -o pquota
        await execFileAsync('/bin/mount', ['-o', 'loop', image, mountPoint]);
        dockerd = new TestDockerd({ storageDriver: 'overlay2', dataRoot: mountPoint });
        await dockerd.start();
      });

      afterAll(async () => {
        await dockerd?.destroy();
        await execFileAsync('/bin/umount', ['-l', mountPoint]).catch(() => undefined);
      });

      it('names "XFS mounted with pquota" with the mount option to add, exit 1', async () => {
        const config = await writeConfig(dir, 'xfs.yaml', dockerd.socketPath);
        const run = await doctor(config);
        expect(lineOf(run.stdout, 'overlay2 on XFS').line.startsWith('✓')).toBe(true);
        const pquota = lineOf(run.stdout, 'XFS mounted with pquota');
        expect(pquota.line.startsWith('✗')).toBe(true);
        expect(pquota.line).toContain(mountPoint);
        expect(pquota.fix).toContain(`mount ${mountPoint} with -o pquota`);
        expect(run.exitCode).toBe(1);
      });
    });
  },
);
