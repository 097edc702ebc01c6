/**
 * Runs INSIDE the test VM (environment overlay2-xfs, engine sid = dockerd 28.5 shared by the host;
 * launched by test/vm/containerd-xfs.test.ts): the containerd image store
 * (`"features": {"containerd-snapshotter": true}`) with its root under the data root on the
 * guest's XFS mounted with pquota, and the agent's opt-in limits (label autogrow.size) through the
 * real backend, the real ExecaRunner and xfsprogs, Docker read through the real DockerClient, the
 * real policy (decide) choosing the grow.
 *
 * Control first: Docker ignores --storage-opt size there (an unlabelled 64M container writes
 * 100 MiB), the agent's limit bites (a labelled 64M container fails to write 200 MiB, with the
 * agent passive), the container writes into its own snapshot, not the guest's /, and overlayfs
 * copy-up still works in the limited snapshot. Then a writer fills a labelled container past its
 * threshold, the policy grows it online, the writer finishes; the limit survives docker restart,
 * stop/start, an agent restart and a dockerd restart. Real outputs go to
 * $AUTOGROW_ARTIFACTS_DIR/containerd-xfs/ (fixtures for the unit tests).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfigObject } from '../../src/config/load.js';
import { DockerClient } from '../../src/docker/client.js';
import type { ContainerInfo } from '../../src/docker/model.js';
import { ExecaRunner } from '../../src/exec/runner.js';
import { silentLogger } from '../../src/log/logger.js';
import { decide } from '../../src/policy/decide.js';
import { createContainerdBackend } from '../../src/storage/containerd/index.js';
import { AGENT_PROJECT_ID_BASE } from '../../src/storage/containerd/opt-in-limit.js';
import { containerdImageStore } from '../../src/storage/containerd/store.js';
import type { BackendDeps, StorageBackend } from '../../src/storage/types.js';
import { dockerdCtl, guestEnvironment } from '../vm/harness/guest.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 ** 2;
const env = guestEnvironment();
const docker = env.docker;
const xfs = env.xfs;
if (!docker || !xfs) throw new Error('containerd-xfs guest test needs the overlay2-xfs environment');
const recordDir = path.join(env.artifactsDir, 'containerd-xfs');
mkdirSync(recordDir, { recursive: true });
const ENGINE_USE = path.join(env.checkoutDir, 'test/vm/guest/engine-use.sh');

async function sh(file: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const { stdout } = await execFileAsync(file, args, { timeout: timeoutMs, maxBuffer: 16 * MiB });
  console.log(`$ ${[file, ...args].join(' ')}\n${stdout}`);
  return stdout;
}
const dockerCli = (args: string[], timeoutMs?: number) => sh('/usr/bin/docker', args, timeoutMs);

/** Records a real command's stdout for the unit tests, with a header naming command and date. */
async function record(name: string, file: string, args: string[]): Promise<string> {
  const stdout = await sh(file, args);
  const kernel = (await execFileAsync('/bin/uname', ['-r'])).stdout.trim();
  writeFileSync(
    path.join(recordDir, `${name}.txt`),
    `# command: ${[path.basename(file), ...args].join(' ')}\n# kernel ${kernel}\n# recorded: ${new Date().toISOString()} by test/guest/containerd-xfs.test.ts\n# exit: 0\n${stdout}`,
  );
  return stdout;
}
const report = (name: string) =>
  record(name, '/usr/sbin/xfs_quota', ['-x', '-c', 'report -p -b -N -n', xfs.mountPoint]);

describe('containerd image store on XFS pquota: opt-in limits (dockerd 28.5)', () => {
  let client: DockerClient;
  const commands: string[] = [];
  const measured: Record<string, number | string> = {};
  let deps: BackendDeps;
  const newBackend = (): StorageBackend => createContainerdBackend(deps);

  beforeAll(async () => {
    const started = performance.now();
    // the overlay2-xfs environment's daemon.json, with the containerd store instead of overlay2
    const daemonJson = JSON.parse(readFileSync(docker.configFile, 'utf8')) as Record<string, unknown>;
    delete daemonJson['storage-driver'];
    delete daemonJson['storage-opts'];
    daemonJson.features = { 'containerd-snapshotter': true };
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'ctrd-')), 'daemon.json');
    writeFileSync(file, JSON.stringify(daemonJson, null, 2));
    await sh('/bin/bash', [ENGINE_USE, 'sid', '--daemon-json', file], 600_000);
    measured.engineStartMs = Math.round(performance.now() - started);
    client = new DockerClient({ socketPath: docker.host.replace(/^unix:\/\//, ''), timeoutMs: 60_000 });
    const info = await client.info();
    writeFileSync(path.join(recordDir, 'docker-info.json'), JSON.stringify(info, null, 2));
    expect(info.serverVersion).toMatch(/^28\.5\./);
    expect(containerdImageStore(info)).toEqual({ snapshotter: 'overlayfs' });
    deps = {
      runner: new ExecaRunner({ onCommand: (event) => commands.push([event.tool, ...event.args].join(' ')) }),
      docker: client,
      dockerInfo: info,
      logger: silentLogger(),
      stateDir: mkdtempSync(path.join(tmpdir(), 'agstate-')),
      commandTimeoutMs: 60_000,
    };
  }, 900_000);

  async function inspect(id: string): Promise<ContainerInfo> {
    const info = await client.inspectContainer(id);
    if (!info) throw new Error(`container ${id} is gone`);
    return info;
  }

  it('control: Docker ignores size there; the agent-set limit bites; writes land in the snapshot, not the guest /', async () => {
    const image = docker.busyboxImage;
    const run = (name: string, extra: string[]) =>
      dockerCli(['run', '-d', '--name', name, '--network', 'none', ...extra, image, 'sleep', '1d']).then(
        (out) => out.trim(),
      );
    const limitedId = await run('ctl', ['--label', 'autogrow.size=64M']);
    const ignoredId = await run('ignored', ['--storage-opt', 'size=64M']);
    const backend = newBackend();
    const [limited, ignored] = [await inspect(limitedId), await inspect(ignoredId)];
    const observation = await backend.observe([limited, ignored], Date.now());
    expect(observation.errors).toEqual(new Map());
    const limitedUsage = observation.containers.get(limitedId);
    expect(limitedUsage?.sizeBytes).toBe(64 * MiB);
    expect(Number(limitedUsage?.detail.projectId)).toBeGreaterThanOrEqual(AGENT_PROJECT_ID_BASE);
    expect(observation.containers.get(ignoredId)?.sizeBytes).toBeNull();
    expect(String(observation.containers.get(ignoredId)?.detail.limit)).toMatch(
      /autogrow\.size=<size> to opt in/,
    );
    const upperDir = String(limitedUsage?.detail.upperDir);
    const snapshotDir = path.dirname(upperDir);
    await record('xfs-io-stat-limited', '/usr/sbin/xfs_io', [
      '-r',
      '-c',
      'stat',
      snapshotDir,
      path.dirname(String(observation.containers.get(ignoredId)?.detail.upperDir)),
    ]);
    await report('report-control');

    // the container writes into its snapshot, not into the guest's / (the plain-chroot trap)
    const marker = `autogrow-ctrd-${process.pid}`;
    await dockerCli(['exec', 'ctl', 'touch', `/${marker}`]);
    expect(existsSync(path.join(upperDir, marker))).toBe(true);
    expect(existsSync(`/${marker}`)).toBe(false);
    // overlayfs copy-up (created in work/, renamed into fs/) works inside the project
    await dockerCli(['exec', 'ctl', 'sh', '-c', 'echo autogrow >> /etc/passwd']);
    expect(readFileSync(path.join(upperDir, 'etc/passwd'), 'utf8')).toContain('autogrow');

    // with the agent passive: the limit bites at 64 MiB
    const bitten = await dockerCli([
      'exec',
      'ctl',
      'sh',
      '-c',
      'dd if=/dev/zero of=/big bs=1M count=200 2>&1; true',
    ]);
    measured.controlDd = bitten.replace(/\n/g, ' ').trim();
    expect(bitten).toMatch(/Disk quota exceeded|No space left/);
    expect(statSync(path.join(upperDir, 'big')).size).toBeLessThanOrEqual(64 * MiB);
    // Docker ignores --storage-opt size on the containerd store: 100 MiB go through
    const through = await dockerCli([
      'exec',
      'ignored',
      'sh',
      '-c',
      'dd if=/dev/zero of=/big bs=1M count=100 2>&1 && echo WROTE-ALL',
    ]);
    expect(through).toContain('WROTE-ALL');
    await dockerCli(['rm', '-f', 'ctl', 'ignored']);
  });

  it('a labelled container filled past its threshold is grown online by the policy and keeps writing; the limit persists', async () => {
    const image = docker.busyboxImage;
    const id = (
      await dockerCli([
        'run',
        '-d',
        '--name',
        'fill',
        '--network',
        'none',
        '--label',
        'autogrow.size=64M',
        '--label',
        'autogrow.threshold=80%',
        '--label',
        'autogrow.step=64M',
        image,
        'sleep',
        '1d',
      ])
    ).trim();
    let container = await inspect(id);
    let backend = newBackend();
    let started = performance.now();
    let observation = await backend.observe([container], Date.now());
    measured.firstObserveMs = Math.round(performance.now() - started);
    expect(observation.containers.get(id)?.sizeBytes).toBe(64 * MiB);
    const upperDir = String(observation.containers.get(id)?.detail.upperDir);

    const writer = dockerCli(
      [
        'exec',
        'fill',
        'sh',
        '-c',
        'i=0; while [ $i -lt 58 ]; do dd if=/dev/zero bs=1M count=1 2>/tmp/dd1 >>/first || exit 11; ' +
          'i=$((i+1)); done; touch /filled; ' +
          'while [ ! -e /go ]; do sleep 0.1; done; ' +
          'dd if=/dev/zero of=/second bs=1M count=40 2>/tmp/dd2 || { cat /tmp/dd2; exit 12; }; echo writer-ok',
      ],
      600_000,
    );
    const deadline = Date.now() + 300_000;
    while (!existsSync(path.join(upperDir, 'filled'))) {
      if (Date.now() > deadline) throw new Error('the writer never filled the container');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await sh('/bin/sync', []);
    await report('report-filled');
    commands.length = 0;
    started = performance.now();
    observation = await backend.observe([container], Date.now());
    measured.steadyObserveMs = Math.round(performance.now() - started);
    measured.steadyObserveCommands = commands.join(' | ');
    // one report per pass, nothing else (no walk of the limited layer)
    expect(commands).toEqual([`xfs_quota -x -c report -p -b -N -n ${xfs.mountPoint}`]);
    const filled = observation.containers.get(id);
    expect(filled?.usedBytes).toBeGreaterThan(0.8 * 64 * MiB);

    const { decisions } = decide({
      nowMs: Date.now(),
      // the label's 64M step; the default minStep (1G) would dwarf this small rig
      config: parseConfigObject({ defaults: { minStep: '16M' } }, 'guest'),
      observation,
      containers: [container],
      history: new Map(),
    });
    const decision = decisions.find((entry) => entry.containerId === id);
    expect(decision).toMatchObject({ kind: 'grow', fromBytes: 64 * MiB, toBytes: 128 * MiB });
    if (decision?.kind !== 'grow') throw new Error('no grow decided');
    started = performance.now();
    const result = await backend.grow({
      container,
      fromBytes: decision.fromBytes,
      toBytes: decision.toBytes,
      dryRun: false,
    });
    measured.growMs = Math.round(performance.now() - started);
    expect(result).toMatchObject({ fromBytes: 64 * MiB, toBytes: 128 * MiB, noop: false });
    await report('report-after-grow');
    await dockerCli(['exec', 'fill', 'touch', '/go']);
    expect((await writer).trim()).toBe('writer-ok');
    measured.dfInContainer = (await dockerCli(['exec', 'fill', 'df', '-k', '/'])).replace(/\s+/g, ' ').trim();
    // never shrink
    expect(
      (await backend.grow({ container, fromBytes: 128 * MiB, toBytes: 96 * MiB, dryRun: false })).noop,
    ).toBe(true);

    const sizeNow = async (label: string, fresh: boolean): Promise<number | null> => {
      if (fresh) backend = newBackend();
      container = await inspect(id);
      expect(container.running).toBe(true);
      commands.length = 0;
      const seen = await backend.observe([container], Date.now());
      // what persists is on the disk: nothing is set again (no limit, no project command)
      expect(commands.filter((command) => / -c (limit|project) /.test(command))).toEqual([]);
      expect(seen.errors).toEqual(new Map());
      measured[`sizeAfter_${label}`] = seen.containers.get(id)?.sizeBytes ?? 'none';
      return seen.containers.get(id)?.sizeBytes ?? null;
    };
    await dockerCli(['restart', '-t', '1', 'fill']);
    expect(await sizeNow('dockerRestart', false)).toBe(128 * MiB);
    await dockerCli(['stop', '-t', '1', 'fill']);
    await dockerCli(['start', 'fill']);
    expect(await sizeNow('stopStart', false)).toBe(128 * MiB);
    expect(await sizeNow('agentRestart', true)).toBe(128 * MiB);
    await dockerdCtl('restart');
    await dockerCli(['start', 'fill']);
    expect(await sizeNow('dockerdRestart', true)).toBe(128 * MiB);
    await report('report-after-dockerd-restart');
    // still limited at the grown size: writing past it fails, below it works
    const after = await dockerCli([
      'exec',
      'fill',
      'sh',
      '-c',
      'rm -f /second; dd if=/dev/zero of=/third bs=1M count=30 2>&1 && echo third-ok; dd if=/dev/zero of=/over bs=1M count=200 2>&1; true',
    ]);
    expect(after).toContain('third-ok');
    expect(after).toMatch(/Disk quota exceeded|No space left/);

    const checks = await backend.doctor();
    expect(checks.find((check) => check.name.startsWith('containerd root on XFS'))?.ok).toBe(true);
    await dockerCli(['rm', '-f', 'fill']);
    writeFileSync(path.join(recordDir, 'measurements.json'), JSON.stringify(measured, null, 2));
    console.log(`containerd-xfs measurements: ${JSON.stringify(measured)}`);
  }, 900_000);
});
