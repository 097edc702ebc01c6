/**
 * Runs INSIDE the test VM (launched by test/vm/devicemapper-lifecycle.test.ts) in docker-dm-lvm or
 * docker-dm-loop: the devicemapper backend on the real kernel and a real dockerd.
 *
 * A running container filled past 90% is grown; `docker exec df` shows it and the container keeps
 * writing; stop + start, `docker restart` (with the agent's hold, and measured without it), a
 * dockerd restart and an agent restart each leave it running at the grown size; `docker rm` leaves
 * no device behind; the pool grows (lvextend / loop file) and `docker info` shows it. Measurements
 * go to $AUTOGROW_ARTIFACTS_DIR/devicemapper-<env>.json and to the console as `DM-MEASURE` lines.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDockerClient } from '../../src/docker/client.js';
import type { ContainerInfo } from '../../src/docker/model.js';
import { ExecaRunner } from '../../src/exec/runner.js';
import { createLogger } from '../../src/log/logger.js';
import { createDevicemapperBackend, type DevicemapperBackend } from '../../src/storage/devicemapper/index.js';
import { dockerdCtl, guestEnvironment } from '../vm/harness/guest.js';

const execFileAsync = promisify(execFile);
const env = guestEnvironment();
const IMAGE = env.docker?.busyboxImage ?? '';
const GIB = 1024 ** 3;
const measurements: Record<string, unknown> = { environment: env.environment };
const docker = createDockerClient({ socketPath: '/var/run/docker.sock', timeoutMs: 120_000 });
const stateDir = mkdtempSync(path.join(os.tmpdir(), 'autogrow-dm-state-'));
const logStream = createWriteStream(path.join(env.artifactsDir, `devicemapper-${env.environment}-agent.log`));

function measure(key: string, value: unknown): void {
  measurements[key] = value;
  console.log(`DM-MEASURE ${env.environment} ${key}=${JSON.stringify(value)}`);
}

async function run(
  file: string,
  args: string[],
  allowFailure = false,
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await execFileAsync(file, args, {
      timeout: 300_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failure = error as { stdout?: string; stderr?: string; code?: number };
    if (!allowFailure)
      throw new Error(`${file} ${args.join(' ')} failed: ${failure.stderr ?? String(error)}`);
    return {
      stdout: failure.stdout ?? '',
      stderr: failure.stderr ?? '',
      code: typeof failure.code === 'number' ? failure.code : 1,
    };
  }
}
const dockerCli = (args: string[], allowFailure = false) => run('/usr/bin/docker', args, allowFailure);
const dmsetup = (args: string[]) => run('/usr/sbin/dmsetup', args);

/** Size and available bytes of the container's root filesystem, from inside the container. */
async function containerFs(
  name: string,
): Promise<{ sizeBytes: number; availableBytes: number; usedRatio: number }> {
  const { stdout } = await dockerCli(['exec', name, 'stat', '-f', '-c', '%S %b %a %f', '/']);
  const [blockSize, blocks, available, free] = stdout.trim().split(/\s+/).map(Number) as [
    number,
    number,
    number,
    number,
  ];
  return {
    sizeBytes: blockSize * blocks,
    availableBytes: blockSize * available,
    usedRatio: (blocks - free) / (blocks - free + available),
  };
}

async function inspect(name: string): Promise<ContainerInfo> {
  const id = (await dockerCli(['inspect', '-f', '{{.Id}}', name])).stdout.trim();
  const info = await docker.inspectContainer(id);
  if (!info) throw new Error(`${name} not found`);
  return info;
}

async function deviceSectors(deviceName: string): Promise<number | null> {
  const { stdout } = await dmsetup(['table']);
  const line = stdout.split('\n').find((entry) => entry.startsWith(`${deviceName}: `));
  return line ? Number(line.split(' ')[2]) : null;
}

async function fillPast(name: string, ratio: number): Promise<void> {
  const fs = await containerFs(name);
  const toWriteMiB = Math.ceil((fs.availableBytes - (1 - ratio) * 0.9 * fs.sizeBytes) / (1024 * 1024));
  await dockerCli([
    'exec',
    name,
    'dd',
    'if=/dev/zero',
    `of=/fill-${Date.now()}`,
    'bs=1M',
    `count=${toWriteMiB}`,
  ]);
  await dockerCli(['exec', name, 'sync']);
}

function newBackend(holdGrownDevices?: boolean, agentStateDir = stateDir): Promise<DevicemapperBackend> {
  return docker.info().then((dockerInfo) =>
    createDevicemapperBackend(
      {
        runner: new ExecaRunner({ defaultTimeoutMs: 60_000 }),
        docker,
        dockerInfo,
        logger: createLogger({ level: 'debug', destination: logStream }),
        stateDir: agentStateDir,
        commandTimeoutMs: 60_000,
      },
      holdGrownDevices === undefined ? {} : { holdGrownDevices },
    ),
  );
}

/** What the agent's inventory does on `die`: call onContainerStopped (events via the docker CLI). */
class DieWatcher {
  private child: ChildProcess | null = null;
  readonly seenAtMs: number[] = [];
  private pending: Promise<void> = Promise.resolve();
  constructor(
    private readonly backend: DevicemapperBackend,
    private readonly containerId: string,
  ) {}
  start(): void {
    this.child = spawn(
      '/usr/bin/docker',
      [
        'events',
        '--filter',
        `container=${this.containerId}`,
        '--filter',
        'event=die',
        '--format',
        '{{.Action}}',
      ],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    this.child.stdout?.on('data', () => {
      this.seenAtMs.push(Date.now());
      this.pending = this.pending.then(async () => {
        const info = await docker.inspectContainer(this.containerId);
        if (info) await this.backend.onContainerStopped(info);
      });
    });
  }
  async settle(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 500));
    await this.pending;
  }
  stop(): void {
    this.child?.kill();
  }
}

describe(`devicemapper backend on the real kernel (${env.environment})`, () => {
  let backend: DevicemapperBackend;
  let grownBytes = 0;
  let deviceName = '';
  let containerId = '';
  let watcher: DieWatcher;

  beforeAll(async () => {
    await dockerCli(['run', '-d', '--name', 'c1', '--network', 'none', IMAGE, 'sleep', '1000000']);
    backend = await newBackend();
  });

  afterAll(() => {
    watcher?.stop();
    writeFileSync(
      path.join(env.artifactsDir, `devicemapper-${env.environment}.json`),
      `${JSON.stringify(measurements, null, 2)}\n`,
    );
  });

  it('observes the filled container past 90% in three dmsetup commands', async () => {
    await fillPast('c1', 0.92);
    const inside = await containerFs('c1');
    expect(inside.usedRatio).toBeGreaterThan(0.9);
    const c1 = await inspect('c1');
    containerId = c1.id;
    deviceName = c1.graphDriverData.DeviceName ?? '';
    const started = performance.now();
    const observation = await backend.observe([c1], Date.now());
    measure('observeMs', Math.round(performance.now() - started));
    expect(observation.errors.size).toBe(0);
    const usage = observation.containers.get(c1.id)!;
    expect(usage.fsType).toBe('xfs');
    expect(usage.usedBytes! / usage.sizeBytes!).toBeGreaterThan(0.9);
    expect(observation.pool?.mode).toBe('rw');
    expect(observation.pool?.kind).toBe(
      env.environment === 'docker-dm-lvm' ? 'thin-pool-lvm' : 'thin-pool-loop',
    );
    measure('usageBeforeGrow', {
      sizeBytes: usage.sizeBytes,
      usedBytes: usage.usedBytes,
      fsSizeBytes: usage.detail.fsSizeBytes,
    });
  });

  it('dry-run prints the plan and changes nothing; grow grows online and df shows it at once', async () => {
    const c1 = await inspect('c1');
    const before = await containerFs('c1');
    const plan = await backend.grow({ container: c1, fromBytes: GIB, toBytes: 1.5 * GIB, dryRun: true });
    const loadArgv = plan.steps[0]?.argv ?? [];
    expect(loadArgv.slice(0, 4)).toEqual(['dmsetup', 'load', deviceName, '--table']);
    expect(loadArgv[4]).toMatch(new RegExp(`^0 3145728 thin \\d+:\\d+ ${c1.graphDriverData.DeviceId}$`));
    measure(
      'dryRunPlan',
      plan.steps.map((step) => step.argv?.join(' ')),
    );
    expect(await deviceSectors(deviceName)).toBe(2097152);
    const started = performance.now();
    const result = await backend.grow({ container: c1, fromBytes: GIB, toBytes: 1.5 * GIB, dryRun: false });
    measure('growMs', Math.round(performance.now() - started));
    grownBytes = result.toBytes;
    expect(result.toBytes).toBe(1.5 * GIB);
    expect(await deviceSectors(deviceName)).toBe(3145728);
    const after = await containerFs('c1');
    expect(after.sizeBytes).toBeGreaterThan(before.sizeBytes + 0.45 * GIB);
    expect(after.sizeBytes).toBeLessThanOrEqual(grownBytes);
    // The container keeps writing past its old size.
    await dockerCli(['exec', 'c1', 'dd', 'if=/dev/zero', 'of=/more', 'bs=1M', 'count=200']);
    const metadata = JSON.parse(
      (
        await run('/bin/cat', [
          `${env.docker!.dataRoot}/devicemapper/metadata/${deviceName.split('-').pop()}`,
        ])
      ).stdout,
    ) as { size: number };
    expect(metadata.size).toBe(grownBytes);
  });

  it('a policy pass (the built CLI: docker-autogrow once) grows a second container filled past 90%', async () => {
    await dockerCli(['run', '-d', '--name', 'c3', '--network', 'none', IMAGE, 'sleep', '1000000']);
    await fillPast('c3', 0.92);
    const before = await containerFs('c3');
    const agentDir = mkdtempSync(path.join(os.tmpdir(), 'autogrow-cli-'));
    const configFile = path.join(agentDir, 'config.yaml');
    writeFileSync(
      configFile,
      [
        'defaults: { threshold: 85%, step: 20%, minStep: 256M, maxSize: 4G, cooldown: 2m }',
        'prediction: { enabled: false }',
        'docker: { socketPath: /var/run/docker.sock }',
        `journal: { path: ${agentDir}/journal.jsonl }`,
        'metrics: { enabled: false }',
        '',
      ].join('\n'),
    );
    const started = performance.now();
    const pass = await run(
      '/usr/local/bin/node',
      [path.join(env.checkoutDir, 'dist/src/main.js'), 'once', '--config', configFile],
      true,
    );
    measure('cliOnceMs', Math.round(performance.now() - started));
    console.log(pass.stdout, pass.stderr.slice(-2000));
    expect(pass.code).toBe(0);
    const after = await containerFs('c3');
    measure('cliOnceGrew', { beforeBytes: before.sizeBytes, afterBytes: after.sizeBytes });
    expect(after.sizeBytes).toBeGreaterThan(before.sizeBytes + 200 * 1024 * 1024);
    await dockerCli(['rm', '-f', 'c3']);
  });

  it('stop + start keeps the grown size (device held: Docker only defers its removal)', async () => {
    watcher = new DieWatcher(backend, containerId);
    watcher.start();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await dockerCli(['stop', '-t', '1', 'c1']);
    await watcher.settle();
    measure('deviceSectorsAfterStop', await deviceSectors(deviceName));
    await dockerCli(['start', 'c1']);
    expect(await deviceSectors(deviceName)).toBe(3145728);
    expect((await containerFs('c1')).sizeBytes).toBeGreaterThan(1.4 * GIB);
  });

  it('docker restart keeps the grown size', async () => {
    const restart = await dockerCli(['restart', '-t', '1', 'c1'], true);
    measure('dockerRestartWithHold', { code: restart.code, stderr: restart.stderr.trim().slice(0, 300) });
    await watcher.settle();
    expect(restart.code).toBe(0);
    expect((await containerFs('c1')).sizeBytes).toBeGreaterThan(1.4 * GIB);
  });

  it('measures docker restart without the hold (re-create on die only)', async () => {
    await dockerCli(['run', '-d', '--name', 'c2', '--network', 'none', IMAGE, 'sleep', '1000000']);
    const noHold = await newBackend(false, mkdtempSync(path.join(os.tmpdir(), 'autogrow-dm-nohold-')));
    const c2 = await inspect('c2');
    await noHold.grow({ container: c2, fromBytes: GIB, toBytes: 1.5 * GIB, dryRun: false });
    const c2Watcher = new DieWatcher(noHold, c2.id);
    c2Watcher.start();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const stopStart = await dockerCli(['stop', '-t', '1', 'c2'], true);
    await c2Watcher.settle();
    const startAfterRecreate = await dockerCli(['start', 'c2'], true);
    measure('noHoldStopThenStart', {
      stop: stopStart.code,
      start: startAfterRecreate.code,
      stderr: startAfterRecreate.stderr.trim().slice(0, 300),
    });
    expect(startAfterRecreate.code).toBe(0);
    const restarts: Array<{ code: number; stderr: string }> = [];
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const restart = await dockerCli(['restart', '-t', '1', 'c2'], true);
      await c2Watcher.settle();
      restarts.push({ code: restart.code, stderr: restart.stderr.trim().slice(0, 200) });
      if (restart.code !== 0) {
        // Docker left the device at its old size; the agent lengthens it, then a start works.
        await noHold.onContainerStopped(await inspect('c2'));
        const start = await dockerCli(['start', 'c2'], true);
        restarts.push({
          code: start.code,
          stderr: `start after lengthen: ${start.stderr.trim().slice(0, 200)}`,
        });
      }
    }
    measure('noHoldDockerRestart', restarts);
    c2Watcher.stop();
    await dockerCli(['rm', '-f', 'c2']);
  });

  it('an agent restart (fresh backend) recovers and keeps holding; a dockerd restart keeps the grown size', async () => {
    watcher.stop();
    await backend.releaseHolds(); // the agent exits: the kernel closes its descriptors
    backend = await newBackend();
    await backend.recover([await inspect('c1')]);
    await backend.observe([await inspect('c1')], Date.now());
    expect(await backend.heldDevices()).toEqual([deviceName.split('-').pop()]);
    watcher = new DieWatcher(backend, containerId);
    watcher.start();
    const started = performance.now();
    await dockerdCtl('restart');
    measure('dockerdRestartMs', Math.round(performance.now() - started));
    const liveRestore = (await docker.info()).liveRestoreEnabled;
    measure('liveRestore', liveRestore);
    const state = (await dockerCli(['inspect', '-f', '{{.State.Running}}', 'c1'])).stdout.trim();
    if (!liveRestore) {
      expect(state).toBe('false');
      await dockerCli(['start', 'c1']);
    } else {
      expect(state).toBe('true');
    }
    // dockerd re-read the patched metadata file: it now reports the grown size itself.
    expect((await inspect('c1')).graphDriverData.DeviceSize).toBe(String(grownBytes));
    expect((await containerFs('c1')).sizeBytes).toBeGreaterThan(1.4 * GIB);
    watcher.stop();
    watcher = new DieWatcher(backend, containerId);
    watcher.start();
    await dockerCli(['restart', '-t', '1', 'c1']);
    expect((await containerFs('c1')).sizeBytes).toBeGreaterThan(1.4 * GIB);
  });

  it('docker rm leaves no device behind', async () => {
    watcher.stop();
    await dockerCli(['rm', '-f', 'c1']);
    await backend.observe([], Date.now()); // the next pass lets go of the device
    const deadline = Date.now() + 60_000;
    let sectors = await deviceSectors(deviceName);
    while (sectors !== null && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      sectors = await deviceSectors(deviceName);
    }
    expect(sectors).toBeNull();
    measure('dmsetupLsAfterRm', (await dmsetup(['ls'])).stdout.trim().split('\n'));
  });

  it('grows the pool and docker info shows it', async () => {
    const before = (await backend.observe([], Date.now())).pool!;
    const plan = await backend.growPool(before.dataTotalBytes + GIB, true);
    measure(
      'poolPlan',
      plan.steps.map((step) => step.argv?.join(' ')),
    );
    const result = await backend.growPool(before.dataTotalBytes + GIB, false);
    measure('poolGrow', result);
    expect(result.toBytes).toBeGreaterThanOrEqual(before.dataTotalBytes + GIB);
    const info = await docker.info();
    const total = info.driverStatus.find(([key]) => key === 'Data Space Total')?.[1];
    measure('dockerInfoDataSpaceTotal', total);
    const after = (await backend.observe([], Date.now())).pool!;
    expect(after.dataTotalBytes).toBe(result.toBytes);
    expect(after.mode).toBe('rw');
    // docker info reads the live pool status: decimal units, e.g. "5.365GB".
    const totalBytes = Number(/^([\d.]+)GB$/.exec(total ?? '')?.[1]) * 1e9;
    expect(Math.abs(totalBytes - result.toBytes) / result.toBytes).toBeLessThan(0.01);
  });
});
