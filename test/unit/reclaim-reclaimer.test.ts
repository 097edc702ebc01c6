import { afterEach, describe, expect, it, vi } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { reclaimChecks } from '../../src/doctor/reclaim-checks.js';
import { silentLogger } from '../../src/log/logger.js';
import type { ReclaimReport } from '../../src/reclaim/ladder.js';
import { Reclaimer, reclaimObservationOf } from '../../src/reclaim/reclaimer.js';
import type { ImageFacts, ReclaimDockerApi } from '../../src/contracts/reclaim.js';
import type { FilesystemUsage } from '../../src/storage/filesystem.js';

const GIB = 1024 ** 3;

/** A Docker with dangling images that each free `freeEach` bytes of a 10 GiB filesystem when removed. */
function fakeDocker(imageCount: number, freeEach: number, usage: { usedBytes: number }) {
  let images: ImageFacts[] = Array.from({ length: imageCount }, (_, n) => ({
    id: `sha256:${n.toString(16).padStart(64, '0')}`,
    parentId: null,
    repoTags: [],
    createdAtMs: 0,
    sizeBytes: freeEach,
    labels: {},
  }));
  const calls: string[] = [];
  const docker: ReclaimDockerApi = {
    listImagesForReclaim: async () => images,
    listContainersForReclaim: async () => [],
    listBuildCache: async () => [],
    listVolumesForReclaim: async () => [],
    pruneBuildCache: async () => {
      calls.push('prune');
      return { deletedIds: [], reclaimedBytes: 0 };
    },
    removeImage: async (reference) => {
      calls.push(`rm ${reference.slice(-2)}`);
      images = images.filter((image) => image.id !== reference);
      usage.usedBytes -= freeEach;
    },
    removeContainer: async () => undefined,
    removeVolume: async () => undefined,
  };
  const statfs = async (): Promise<FilesystemUsage> => ({
    typeMagic: 0,
    totalBytes: 10 * GIB,
    availableBytes: 10 * GIB - usage.usedBytes,
    usedBytes: usage.usedBytes,
    totalInodes: 0,
    freeInodes: 0,
  });
  return { docker, statfs, calls };
}

function settings(reclaim: Record<string, unknown>) {
  return configSchema.parse({ reclaim: { enabled: true, ...reclaim } }).reclaim;
}

const settle = () => vi.advanceTimersByTimeAsync(0);

describe('Reclaimer', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('climbs the ladder at each cron time, on an injected (simulated) clock', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    vi.setSystemTime(new Date(2026, 0, 1, 2, 59, 50));
    const usage = { usedBytes: 5 * GIB };
    const { docker, statfs, calls } = fakeDocker(2, GIB, usage);
    const reports: ReclaimReport[] = [];
    const reclaimer = new Reclaimer({
      settings: settings({ schedules: ['0 3 * * *'] }),
      docker,
      dataRoot: '/d',
      dryRun: false,
      logger: silentLogger(),
      clock: { nowMs: () => Date.now() },
      statfs,
      onReport: (report) => reports.push(report),
    });
    reclaimer.start();
    expect(reclaimer.nextScheduledRunsMs()).toEqual([new Date(2026, 0, 1, 3, 0, 0).getTime()]);
    await vi.advanceTimersByTimeAsync(9_000);
    expect(reports).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(2_000);
    await settle();
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({
      trigger: 'schedule',
      result: 'freed',
      startedAtMs: new Date(2026, 0, 1, 3).getTime(),
    });
    // the default ladder: build cache first, then the dangling images
    expect(calls).toEqual(['prune', 'rm 00', 'rm 01']);
    expect(reports[0]!.rungs.map((rung) => rung.freedBytes)).toEqual([0, 2 * GIB]);
    await vi.advanceTimersByTimeAsync(24 * 3600_000);
    expect(reports).toHaveLength(2);
    expect(reports[1]!.result).toBe('nothing');
    await reclaimer.stop();
    await vi.advanceTimersByTimeAsync(24 * 3600_000);
    expect(reports).toHaveLength(2);
  });

  it('runs at the threshold only when growth is impossible, stops at the target, and reports exhaustion', async () => {
    const usage = { usedBytes: 9.5 * GIB };
    const { docker, statfs, calls } = fakeDocker(10, 0.5 * GIB, usage);
    let nowMs = 1_000_000;
    const exhausted: boolean[] = [];
    const reports: ReclaimReport[] = [];
    const reclaimer = new Reclaimer({
      settings: settings({
        threshold: '90%',
        target: '80%',
        cooldown: '10m',
        ladder: [{ kind: 'dangling-images' }],
      }),
      docker,
      dataRoot: '/d',
      dryRun: false,
      logger: silentLogger(),
      clock: { nowMs: () => nowMs },
      statfs,
      onReport: (report) => reports.push(report),
      onExhausted: (value) => exhausted.push(value),
    });
    const look = (cannotGrowReason: string | null) =>
      reclaimer.observe({
        subject: 'data filesystem /d',
        usedRatio: usage.usedBytes / (10 * GIB),
        cannotGrowReason,
      });
    expect(look(null).action).toBe('none'); // it can still grow: growth first
    expect(look('vg-exhausted').action).toBe('reclaim');
    expect(look('vg-exhausted').action).toBe('cooldown'); // one run at a time, then the cooldown
    await vi.waitFor(() => expect(reports).toHaveLength(1));
    // one rung removes every dangling image (rung granularity): 9.5 GiB -> 4.5 GiB
    expect(reports[0]).toMatchObject({ trigger: 'threshold', result: 'freed' });
    expect(calls.filter((call) => call.startsWith('rm'))).toHaveLength(10);
    expect(reclaimer.exhausted).toBe(false);
    // full again, nothing left to remove: the run leaves it over the threshold
    usage.usedBytes = 9.5 * GIB;
    nowMs += 11 * 60_000;
    expect(look('max-size-reached').action).toBe('reclaim');
    await vi.waitFor(() => expect(reports).toHaveLength(2));
    expect(reports[1]!.result).toBe('nothing');
    expect(reclaimer.exhausted).toBe(true);
    expect(exhausted).toEqual([true]);
    nowMs += 60_000;
    expect(look('max-size-reached')).toMatchObject({ action: 'cooldown', exhausted: true });
    // freed by hand: below the threshold, exhaustion clears
    usage.usedBytes = 5 * GIB;
    expect(look('max-size-reached').action).toBe('none');
    expect(exhausted).toEqual([true, false]);
  });

  it('an agent-wide dry run plans and removes nothing', async () => {
    const usage = { usedBytes: 9.5 * GIB };
    const { docker, statfs, calls } = fakeDocker(3, GIB, usage);
    const reclaimer = new Reclaimer({
      settings: settings({}),
      docker,
      dataRoot: '/d',
      dryRun: true,
      logger: silentLogger(),
      clock: { nowMs: () => 0 },
      statfs,
    });
    const report = await reclaimer.run('manual', 'test');
    expect(report.result).toBe('planned');
    expect(report.rungs[1]!.items).toHaveLength(3);
    expect(calls).toEqual([]);
    expect(usage.usedBytes).toBe(9.5 * GIB);
  });

  it('reads the data-filesystem look: only a cannot-grow decision or a failed grow blocks growth', () => {
    const look = { usage: { totalBytes: 100, usedBytes: 95 } as FilesystemUsage };
    const base = { dataRoot: '/d', look, outcome: null };
    expect(
      reclaimObservationOf({ ...base, decision: { action: 'cannot-grow', reason: 'vg-exhausted' } }),
    ).toEqual({
      subject: 'data filesystem /d',
      usedRatio: 0.95,
      cannotGrowReason: 'vg-exhausted',
    });
    expect(reclaimObservationOf({ ...base, decision: { action: 'grow' } })?.cannotGrowReason).toBeNull();
    expect(
      reclaimObservationOf({ ...base, decision: { action: 'grow' }, outcome: { kind: 'failed' } })
        ?.cannotGrowReason,
    ).toBe('grow-failed');
    expect(reclaimObservationOf({ ...base, look: null, decision: null })).toBeNull();
    // not on LVM, but its disk grew underneath and the watcher grows into it: growth first
    expect(
      reclaimObservationOf({
        ...base,
        decision: { action: 'cannot-grow', reason: 'not-lvm' },
        underneath: { decision: { action: 'grow-filesystem' } },
      })?.cannotGrowReason,
    ).toBeNull();
  });
});

describe('reclaim doctor checks', () => {
  it('warns when the data filesystem cannot grow and reclaim is off, with the fix', () => {
    const off = configSchema.parse({}).reclaim;
    const plan = { failed: 'connect ENOENT /var/run/docker.sock' };
    const [enabled, docker] = reclaimChecks(off, { cannotGrowReason: 'vg-exhausted', plan });
    expect(enabled).toMatchObject({ ok: false, severity: 'warn' });
    expect(enabled!.fix).toContain('reclaim.enabled: true');
    expect(docker).toMatchObject({ ok: false, name: 'reclaim ladder can read Docker' });
    expect(reclaimChecks(off, { cannotGrowReason: null, plan })[0]!.ok).toBe(true);
  });
});
