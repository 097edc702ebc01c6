/**
 * Runs INSIDE the test VM (environment overlay2-xfs; launched by test/vm/overlay-xfs.test.ts):
 * the overlay2-on-XFS backend on a real kernel with XFS project quotas, real dockerd, real
 * xfsprogs through the real ExecaRunner, Docker read through the real DockerClient.
 *
 * Flow: a 64 MiB container is filled past the threshold, grown online while a writer waits, the
 * writer goes on without error; the grown limit persists over `docker restart` and over a dockerd
 * restart. Doctor on the served mount, and on an XFS mounted without pquota. The real command
 * outputs it sees are written to $AUTOGROW_ARTIFACTS_DIR/overlay-xfs/ (fixtures for unit tests).
 *
 * Along the way, the process-free fast path (`readLiveUsage`: statfs of the layer directory) is
 * compared with the xfs_quota report: sampled while the writer fills the container, equal to it
 * when nothing writes, sizeBytes the limit before and after the grow, and left out when a soft
 * limit makes statfs show something else than the hard limit.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerClient } from '../../src/docker/client.js';
import { DockerInventory } from '../../src/docker/inventory.js';
import type { ContainerInfo } from '../../src/docker/model.js';
import { ExecaRunner } from '../../src/exec/runner.js';
import { silentLogger } from '../../src/log/logger.js';
import { createOverlayXfsBackend } from '../../src/storage/overlay-xfs/index.js';
import { parseProjectQuotaReport } from '../../src/storage/overlay-xfs/parse-quota-report.js';
import type { BackendDeps, LiveUsage, StorageBackend } from '../../src/storage/types.js';
import { dockerdCtl, guestEnvironment } from '../vm/harness/guest.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 ** 2;
const env = guestEnvironment();
const docker = env.docker;
const xfs = env.xfs;
if (!docker || !xfs) throw new Error('overlay-xfs guest test needs the overlay2-xfs environment');
const baseRecordDir = path.join(env.artifactsDir, 'overlay-xfs');
mkdirSync(baseRecordDir, { recursive: true });
/** Where record() writes: overlay-xfs/ for the image's 20.10, overlay-xfs/<engine>/ for the others. */
let recordDir = baseRecordDir;

/**
 * The engines to run the suite on, in this order, in ONE guest boot (vitest start-up under TCG costs
 * more than a suite): `host` (Debian 12's 20.10, started by the environment setup), `sid` (28.5),
 * `trixie` (26.1); the current engines need their roots shared (runInVm({ engines })).
 */
const ENGINES = (process.env.AUTOGROW_OVERLAY_XFS_ENGINES ?? 'host').split(/\s+/).filter(Boolean);
const EXPECTED_VERSION: Record<string, RegExp> = { host: /^20\.10\./, sid: /^28\.5\./, trixie: /^26\.1\./ };
const GUEST_SCRIPTS = path.join(env.checkoutDir, 'test', 'vm', 'guest');

async function sh(file: string, args: string[], timeoutMs = 120_000): Promise<string> {
  const { stdout } = await execFileAsync(file, args, { timeout: timeoutMs, maxBuffer: 16 * MiB });
  console.log(`$ ${[file, ...args].join(' ')}\n${stdout}`);
  return stdout;
}
const dockerCli = (args: string[], timeoutMs?: number) => sh('/usr/bin/docker', args, timeoutMs);

/** Records a real command's stdout for the unit tests, with a header naming command and date. */
async function record(name: string, file: string, args: string[]): Promise<string> {
  const stdout = await sh(file, args);
  const version = `xfsprogs ${(await execFileAsync('/usr/sbin/xfs_io', ['-V'])).stdout.trim().replace(/^xfs_io version /, '')}`;
  writeFileSync(
    path.join(recordDir, `${name}.txt`),
    `# command: ${[path.basename(file), ...args].join(' ')}\n# ${version}; kernel ${(await execFileAsync('/bin/uname', ['-r'])).stdout.trim()}\n# recorded: ${new Date().toISOString()} by test/guest/overlay-xfs.test.ts\n# exit: 0\n${stdout}`,
  );
  return stdout;
}

/** The project's usage in the xfs_quota report (KiB, rounded down; a project without blocks is absent). */
async function reportUsedBytes(mountPoint: string, projectId: number): Promise<number> {
  const { stdout } = await execFileAsync('/usr/sbin/xfs_quota', [
    '-x',
    '-c',
    'report -p -b -N -n',
    mountPoint,
  ]);
  return parseProjectQuotaReport(stdout).get(projectId)?.usedBytes ?? 0;
}

/** statfs as the kernel answers it, for the record. */
function rawStatfs(dir: string): Record<string, number> {
  const stats = statfsSync(dir, { bigint: true });
  return {
    bsize: Number(stats.bsize),
    blocks: Number(stats.blocks),
    bfree: Number(stats.bfree),
    bavail: Number(stats.bavail),
  };
}

async function waitFor(what: string, check: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return Date.now() - started;
}

let activeEngine = 'host';
for (const engine of ENGINES) {
  describe(`overlay2 on XFS pquota backend (real kernel), engine ${engine}`, () => {
    let client: DockerClient;
    let backend: StorageBackend;
    const measured: Record<string, number> = {};
    const liveRecord: Record<string, unknown> = {};
    const engineRecordDir = engine === 'host' ? baseRecordDir : path.join(baseRecordDir, engine);

    beforeAll(async () => {
      recordDir = engineRecordDir;
      mkdirSync(recordDir, { recursive: true });
      if (engine !== activeEngine) {
        // stop the previous dockerd, a new XFS (pquota) under the data root, this engine's dockerd
        const started = performance.now();
        await sh('/bin/bash', [path.join(GUEST_SCRIPTS, 'engine-use.sh'), engine, '--fresh-xfs'], 900_000);
        measured.engineSwitchMs = Math.round(performance.now() - started);
        activeEngine = engine;
      }
      client = new DockerClient({ socketPath: docker.host.replace(/^unix:\/\//, ''), timeoutMs: 60_000 });
      const deps: BackendDeps = {
        runner: new ExecaRunner(),
        docker: client,
        dockerInfo: await client.info(),
        logger: silentLogger(),
        stateDir: mkdtempSync(path.join(tmpdir(), 'agstate-')),
        commandTimeoutMs: 60_000,
      };
      expect(deps.dockerInfo.serverVersion).toMatch(EXPECTED_VERSION[engine] ?? /^$/);
      // the classic graphdriver, not the containerd image store (which reports driver-type)
      expect(deps.dockerInfo.driver).toBe('overlay2');
      expect(deps.dockerInfo.driverStatus.map(([key]) => key)).not.toContain('driver-type');
      backend = createOverlayXfsBackend(deps);
    });

    it("control: a 64M container fails to write 200 MiB, in its own layer, not on the guest's /", async () => {
      const started = performance.now();
      const out = await sh('/bin/bash', [path.join(GUEST_SCRIPTS, 'engine-control.sh')], 600_000);
      measured.controlMs = Math.round(performance.now() - started);
      expect(out).toMatch(
        new RegExp(`CONTROL PASSED: ${(EXPECTED_VERSION[engine] ?? /^$/).source.slice(1)}`),
      );
    });

    it('events + inventory: follows create, start, die and destroy; resync sees size and driver', async () => {
      const inventory = new DockerInventory({
        api: client,
        events: client,
        logger: silentLogger(),
        resyncIntervalMs: 60_000,
        eventStream: { backoff: { initialMs: 100, maxMs: 1000 } },
      });
      const events: string[] = [];
      inventory.subscribe({ onEvent: (event) => events.push(`${event.action} ${event.containerId}`) });
      await inventory.start();
      try {
        await waitFor('event stream', () => inventory.streamConnected, 30_000);
        const image = docker.busyboxImage;
        const id = (await dockerCli(['create', '--name', 'ev', '--network', 'none', image, 'true'])).trim();
        await dockerCli(['start', id]);
        measured.eventFollowMs = await waitFor('die event', () => events.includes(`die ${id}`), 60_000);
        expect(events).toContain(`create ${id}`);
        expect(events).toContain(`start ${id}`);
        await dockerCli(['rm', id]);
        await waitFor('destroy event', () => events.includes(`destroy ${id}`), 60_000);
        await waitFor('gone from the inventory', () => inventory.get(id) === undefined, 10_000);
        const sized = (
          await dockerCli([
            'create',
            '--name',
            'sized',
            '--network',
            'none',
            '--storage-opt',
            'size=64M',
            image,
          ])
        ).trim();
        await inventory.resync();
        expect(inventory.get(sized)).toMatchObject({
          name: 'sized',
          storageDriver: 'overlay2',
          storageOptSizeBytes: 64 * MiB,
        });
        await dockerCli(['rm', sized]);
      } finally {
        await inventory.stop();
      }
    });

    afterAll(() => {
      writeFileSync(path.join(recordDir, 'measurements.json'), JSON.stringify(measured, null, 2));
      console.log(`overlay-xfs measurements: ${JSON.stringify(measured)}`);
      writeFileSync(path.join(recordDir, 'live-usage.json'), JSON.stringify(liveRecord, null, 2));
      console.log(`overlay-xfs live usage: ${JSON.stringify(liveRecord)}`);
    });

    async function inspect(id: string): Promise<ContainerInfo> {
      const info = await client.inspectContainer(id);
      if (!info) throw new Error(`container ${id} is gone`);
      return info;
    }

    it('grows a filling container online; the limit persists over docker restart and dockerd restart', async () => {
      const image = docker.busyboxImage;
      const id = (
        await dockerCli([
          'run',
          '-d',
          '--name',
          'fill',
          '--network',
          'none',
          '--storage-opt',
          'size=64M',
          image,
          'sleep',
          '1d',
        ])
      ).trim();
      const freeId = (
        await dockerCli(['run', '-d', '--name', 'free', '--network', 'none', image, 'sleep', '1d'])
      ).trim();
      let container = await inspect(id);
      const free = await inspect(freeId);
      const layerDir = path.dirname(container.graphDriverData.UpperDir ?? '');
      const freeLayerDir = path.dirname(free.graphDriverData.UpperDir ?? '');
      await record('xfs-io-stat-batch', '/usr/sbin/xfs_io', ['-r', '-c', 'stat', layerDir, freeLayerDir]);
      await record('report-initial', '/usr/sbin/xfs_quota', [
        '-x',
        '-c',
        'report -p -b -N -n',
        xfs.mountPoint,
      ]);

      let started = performance.now();
      let observation = await backend.observe([container, free], Date.now());
      measured.firstObserveMs = Math.round(performance.now() - started);
      expect(observation.errors).toEqual(new Map());
      expect(observation.containers.get(id)?.sizeBytes).toBe(64 * MiB);
      expect(observation.containers.get(freeId)?.sizeBytes).toBeNull();
      const projectId = Number(observation.containers.get(id)?.detail.projectId);
      expect(projectId).toBeGreaterThan(0);

      // the fast path: statfs only, the limited container only
      const readLiveUsage = backend.readLiveUsage?.bind(backend);
      if (!readLiveUsage) throw new Error('the overlay2 backend has no readLiveUsage');
      const live = async (): Promise<LiveUsage | undefined> => (await readLiveUsage([id])).get(id);
      /**
       * live, report, live back to back when nothing writes: equal. Written back first, since
       * converting delayed allocations moves a block of reservation back and forth.
       */
      const quiet = async (label: string): Promise<LiveUsage> => {
        await execFileAsync('/bin/sync', []);
        const before = await live();
        const reportBytes = await reportUsedBytes(xfs.mountPoint, projectId);
        const after = await live();
        liveRecord[label] = {
          liveUsedBytes: before?.usedBytes,
          reportUsedBytes: reportBytes,
          liveUsedBytesAfter: after?.usedBytes,
          liveSizeBytes: before?.sizeBytes,
          statfs: rawStatfs(layerDir),
        };
        if (!before || !after) throw new Error(`readLiveUsage left the container out (${label})`);
        expect(before.usedBytes).toBe(reportBytes);
        expect(after.usedBytes).toBe(reportBytes);
        return before;
      };
      const initialLive = await readLiveUsage([id, freeId]);
      expect(initialLive.has(freeId)).toBe(false);
      liveRecord.unlimitedLayerStatfs = rawStatfs(freeLayerDir);
      expect((await quiet('initial')).sizeBytes).toBe(64 * MiB);
      started = performance.now();
      const liveCalls = 200;
      for (let call = 0; call < liveCalls; call += 1) await live();
      measured.readLiveUsageUs = Math.round(((performance.now() - started) * 1000) / liveCalls);

      const writer = dockerCli(
        [
          'exec',
          'fill',
          'sh',
          '-c',
          // 1 MiB appends with pauses: slow enough for the fast path to be sampled while it fills
          'i=0; while [ $i -lt 58 ]; do dd if=/dev/zero bs=1M count=1 2>/tmp/dd1 >>/first || exit 11; ' +
            'i=$((i+1)); sleep 0.05; done; touch /filled; ' +
            'while [ ! -e /go ]; do sleep 0.1; done; ' +
            'dd if=/dev/zero of=/second bs=1M count=40 2>/tmp/dd2 || { cat /tmp/dd2; exit 12; }; echo writer-ok',
        ],
        600_000,
      );
      // sample live, report, live while the writer appends; /filled appears in the upper dir
      const samples: { liveBeforeBytes: number; reportBytes: number; liveAfterBytes: number }[] = [];
      const deadline = Date.now() + 300_000;
      while (!existsSync(path.join(layerDir, 'diff', 'filled'))) {
        if (Date.now() > deadline) throw new Error('the writer never filled the container');
        const liveBefore = await live();
        const reportBytes = await reportUsedBytes(xfs.mountPoint, projectId);
        const liveAfter = await live();
        samples.push({
          liveBeforeBytes: liveBefore?.usedBytes ?? -1,
          reportBytes,
          liveAfterBytes: liveAfter?.usedBytes ?? -1,
        });
      }
      liveRecord.samplesWhileFilling = samples;
      const initialUsedBytes = (liveRecord.initial as { reportUsedBytes: number }).reportUsedBytes;
      const midFill = samples.filter(
        (sample) => sample.reportBytes > initialUsedBytes + MiB && sample.reportBytes < 57 * MiB,
      );
      measured.liveSamplesWhileFilling = samples.length;
      measured.liveSamplesMidFill = midFill.length;
      // The report taken between two live reads lies between them: the same counter (the project
      // dquot's reserved blocks). It is not monotonic: XFS reserves speculative preallocation
      // beyond EOF against the quota (usage doubles 1, 4, 8, 16, 32 MiB... up to the limit while
      // the file grows) and trims it when the writer is done, and converting a delayed allocation
      // moves a block or so of reservation back and forth; the slack covers the latter only.
      const slackBytes = 64 * 1024;
      measured.liveBehindReportMaxBytes = Math.max(...samples.map((s) => s.reportBytes - s.liveAfterBytes));
      measured.liveAheadOfReportMaxBytes = Math.max(...samples.map((s) => s.liveBeforeBytes - s.reportBytes));
      measured.reportOutsideLiveBracketMaxBytes = Math.max(
        ...samples.map((s) =>
          Math.max(
            Math.min(s.liveBeforeBytes, s.liveAfterBytes) - s.reportBytes,
            s.reportBytes - Math.max(s.liveBeforeBytes, s.liveAfterBytes),
            0,
          ),
        ),
      );
      measured.liveMaxWhileFillingBytes = Math.max(...samples.map((s) => s.liveAfterBytes));
      expect(midFill.length).toBeGreaterThanOrEqual(2);
      for (const sample of samples) {
        // never left out while filling: the size stayed the project's hard limit
        expect(sample.liveBeforeBytes).toBeGreaterThanOrEqual(0);
        expect(sample.liveAfterBytes).toBeGreaterThanOrEqual(0);
        expect(sample.reportBytes).toBeGreaterThanOrEqual(
          Math.min(sample.liveBeforeBytes, sample.liveAfterBytes) - slackBytes,
        );
        expect(sample.reportBytes).toBeLessThanOrEqual(
          Math.max(sample.liveBeforeBytes, sample.liveAfterBytes) + slackBytes,
        );
      }
      await record('report-filled', '/usr/sbin/xfs_quota', [
        '-x',
        '-c',
        'report -p -b -N -n',
        xfs.mountPoint,
      ]);
      started = performance.now();
      observation = await backend.observe([container, free], Date.now());
      measured.steadyObserveMs = Math.round(performance.now() - started);
      const filled = observation.containers.get(id);
      expect(filled?.usedBytes).toBeGreaterThan(0.85 * 64 * MiB);
      const filledLive = await quiet('filled');
      expect(filledLive.usedBytes).toBeGreaterThan(0.85 * 64 * MiB);
      expect(filledLive.sizeBytes).toBe(64 * MiB);

      const plan = await backend.grow({ container, fromBytes: 64 * MiB, toBytes: 128 * MiB, dryRun: true });
      expect(plan.steps[0]?.argv).toEqual([
        'xfs_quota',
        '-x',
        '-c',
        `limit -p bsoft=0 bhard=${128 * MiB} ${projectId}`,
        xfs.mountPoint,
      ]);
      started = performance.now();
      const result = await backend.grow({
        container,
        fromBytes: 64 * MiB,
        toBytes: 128 * MiB,
        dryRun: false,
      });
      measured.growMs = Math.round(performance.now() - started);
      expect(result).toMatchObject({ fromBytes: 64 * MiB, toBytes: 128 * MiB, noop: false });
      // the fast path expects the grown limit at once, before the next pass
      expect((await quiet('afterGrow')).sizeBytes).toBe(128 * MiB);
      await record('report-after-grow', '/usr/sbin/xfs_quota', [
        '-x',
        '-c',
        'report -p -b -N -n',
        xfs.mountPoint,
      ]);
      await dockerCli(['exec', 'fill', 'touch', '/go']);
      expect((await writer).trim()).toBe('writer-ok');
      expect(await dockerCli(['exec', 'fill', 'df', '-k', '/'])).toMatch(/\s131072\s/);
      expect((await quiet('secondWrite')).usedBytes).toBeGreaterThan(64 * MiB);

      // a soft limit below the hard one: the kernel's statfs shows the soft limit, which is not
      // the size the agent grows, so the fast path leaves the container out
      await sh('/usr/sbin/xfs_quota', [
        '-x',
        '-c',
        `limit -p bsoft=${100 * MiB} ${projectId}`,
        xfs.mountPoint,
      ]);
      liveRecord.softLimitStatfs = rawStatfs(layerDir);
      expect((await readLiveUsage([id])).has(id)).toBe(false);
      await sh('/usr/sbin/xfs_quota', ['-x', '-c', `limit -p bsoft=0 ${projectId}`, xfs.mountPoint]);
      expect((await quiet('softLimitCleared')).sizeBytes).toBe(128 * MiB);

      // never shrink
      expect(
        (await backend.grow({ container, fromBytes: 128 * MiB, toBytes: 96 * MiB, dryRun: false })).noop,
      ).toBe(true);

      // docker restart: Docker sets the limit only at create, so the grown one stays
      await dockerCli(['restart', '-t', '1', 'fill']);
      container = await inspect(id);
      expect(container.running).toBe(true);
      observation = await backend.observe([container, free], Date.now());
      expect(observation.containers.get(id)?.sizeBytes).toBe(128 * MiB);

      // dockerd restart (no live-restore: containers stop), then start the container again
      await dockerdCtl('restart');
      await dockerCli(['start', 'fill']);
      container = await inspect(id);
      expect(container.running).toBe(true);
      observation = await backend.observe([container, free], Date.now());
      expect(observation.containers.get(id)?.sizeBytes).toBe(128 * MiB);
      expect((await quiet('afterDockerdRestart')).sizeBytes).toBe(128 * MiB);
      expect((await dockerCli(['exec', 'fill', 'echo', 'alive'])).trim()).toBe('alive');
      await record('report-after-dockerd-restart', '/usr/sbin/xfs_quota', [
        '-x',
        '-c',
        'report -p -b -N -n',
        xfs.mountPoint,
      ]);

      const checks = await backend.doctor();
      const byName = new Map(checks.map((check) => [check.name, check]));
      expect(byName.get('data root on XFS')?.ok).toBe(true);
      expect(byName.get('XFS project quotas enforced')?.ok).toBe(true);
      expect(byName.get('containers have a size limit')).toMatchObject({ ok: false, severity: 'warn' });
      expect(byName.get('containers have a size limit')?.detail).toContain('free');
      await dockerCli(['rm', '-f', 'fill', 'free']);
    });
  });
}

describe('overlay2 on XFS pquota backend (real kernel), doctor', () => {
  let client: DockerClient;
  beforeAll(() => {
    client = new DockerClient({ socketPath: docker.host.replace(/^unix:\/\//, ''), timeoutMs: 60_000 });
  });

  it('doctor says clearly that XFS mounted without pquota cannot be served', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agnoq-'));
    const image = path.join(dir, 'xfs.img');
    const mountPoint = path.join(dir, 'mnt');
    mkdirSync(mountPoint);
    await sh('/usr/bin/truncate', ['-s', '512M', image]);
    await sh('/sbin/mkfs.xfs', ['-q', image]);
    // the guest loads modules per environment: make sure loop is there, and attach explicitly
    await execFileAsync('/sbin/modprobe', ['loop']).catch(() => undefined);
    const loopDevice = (await sh('/sbin/losetup', ['-f', '--show', image])).trim();
    await sh('/bin/mount', ['-t', 'xfs', '-o', 'noquota', loopDevice, mountPoint]);
    try {
      const noQuota = createOverlayXfsBackend({
        runner: new ExecaRunner(),
        docker: client,
        dockerInfo: { ...(await client.info()), dockerRootDir: mountPoint },
        logger: silentLogger(),
        stateDir: dir,
        commandTimeoutMs: 60_000,
      });
      const checks = await noQuota.doctor();
      const quota = checks.find((check) => check.name === 'XFS project quotas enforced');
      expect(quota).toMatchObject({ ok: false, severity: 'error' });
      expect(quota?.detail).toMatch(/without pquota\/prjquota/);
      expect(quota?.fix).toMatch(/-o pquota/);
    } finally {
      await sh('/bin/umount', [mountPoint]);
      await sh('/sbin/losetup', ['-d', loopDevice]);
    }
  });
});
