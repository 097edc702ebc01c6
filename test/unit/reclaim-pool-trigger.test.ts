/**
 * The devicemapper thin pool as a reclaim trigger: the pure observation of a pass's pool, the
 * policy across the data filesystem and the pool (one ladder, one cooldown), and the Reclaimer
 * fed by passes: a pool that cannot grow starts a run that climbs every rung (the ladder cannot
 * measure the pool), and the pool's next pass after the run says whether it is exhausted.
 */
import { describe, expect, it, vi } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log/logger.js';
import {
  decideReclaimAcross,
  poolUsedRatio,
  reclaimObservationOfPool,
  type ReclaimObservation,
} from '../../src/policy/reclaim.js';
import type { ReclaimReport } from '../../src/reclaim/ladder.js';
import { Reclaimer } from '../../src/reclaim/reclaimer.js';
import type { ReclaimDockerApi } from '../../src/contracts/reclaim.js';
import type { PoolUsage } from '../../src/storage/types.js';

const GIB = 1024 ** 3;

function thinPool(overrides: Partial<PoolUsage> = {}): PoolUsage {
  return {
    name: 'docker-thinpool',
    kind: 'thin-pool-lvm',
    dataUsedBytes: 95 * GIB,
    dataTotalBytes: 100 * GIB,
    metadataUsedBytes: 10 * 1024 ** 2,
    metadataTotalBytes: 1024 ** 3,
    mode: 'rw',
    needsCheck: false,
    committedBytes: 150 * GIB,
    ...overrides,
  };
}
const disabled = { kind: 'needed-but-disabled' };

describe('reclaimObservationOfPool', () => {
  it('a thin pool whose grow is wanted but disabled (or at maxSize) cannot grow', () => {
    expect(reclaimObservationOfPool(thinPool(), disabled, 5)).toEqual({
      subject: 'pool docker-thinpool',
      usedRatio: 0.95,
      cannotGrowReason: 'pool-cannot-grow',
      measuredByLadder: false,
      observedAtMs: 5,
    });
    expect(reclaimObservationOfPool(thinPool(), { kind: 'failed' }, 5)?.cannotGrowReason).toBe(
      'pool-grow-failed',
    );
    expect(
      reclaimObservationOfPool(thinPool({ mode: 'out_of_data_space' }), undefined, 5)?.cannotGrowReason,
    ).toBe('pool-out-of-data-space');
  });

  it("a pool that grew, or plans to, can still grow; a filesystem pool is the watcher's subject", () => {
    expect(reclaimObservationOfPool(thinPool(), { kind: 'grown' }, 5)?.cannotGrowReason).toBeNull();
    expect(reclaimObservationOfPool(thinPool(), { kind: 'planned' }, 5)?.cannotGrowReason).toBeNull();
    expect(reclaimObservationOfPool(thinPool(), undefined, 5)?.cannotGrowReason).toBeNull();
    expect(reclaimObservationOfPool(thinPool({ kind: 'filesystem' }), disabled, 5)).toBeNull();
    expect(reclaimObservationOfPool(null, undefined, 5)).toBeNull();
  });

  it('a read-only, failed or needs_check pool is no subject (removals there fail too)', () => {
    expect(reclaimObservationOfPool(thinPool({ mode: 'ro' }), disabled, 5)).toBeNull();
    expect(reclaimObservationOfPool(thinPool({ mode: 'fail' }), disabled, 5)).toBeNull();
    expect(reclaimObservationOfPool(thinPool({ needsCheck: true }), disabled, 5)).toBeNull();
  });

  it('metadata counts as well as data: the fuller one', () => {
    expect(poolUsedRatio(thinPool({ dataUsedBytes: 10 * GIB, metadataUsedBytes: 0.97 * GIB }))).toBeCloseTo(
      0.97,
    );
  });
});

describe('decideReclaimAcross', () => {
  const settings = { threshold: 0.9, target: 0.8, cooldownMs: 600_000 };
  const dataFs = (usedRatio: number, cannotGrowReason: string | null): ReclaimObservation => ({
    subject: 'data filesystem /var/lib/docker',
    usedRatio,
    cannotGrowReason,
  });
  const pool = reclaimObservationOfPool(thinPool(), disabled, 1_000)!;
  const fresh = { lastThresholdRunAtMs: null, lastRunLeftOverThreshold: false, lastRunFinishedAtMs: null };

  it('the pool triggers although the data filesystem is fine; the run climbs every rung', () => {
    expect(decideReclaimAcross(settings, [dataFs(0.3, null), pool], fresh, 1_000)).toMatchObject({
      action: 'reclaim',
      stopAtTarget: false,
    });
    // the data filesystem's own trigger stops at the target, as before
    expect(decideReclaimAcross(settings, [dataFs(0.95, 'vg-exhausted')], fresh, 1_000)).toMatchObject({
      action: 'reclaim',
      stopAtTarget: true,
    });
  });

  it('nothing triggers while both can grow or are below the threshold', () => {
    const growing = reclaimObservationOfPool(thinPool(), { kind: 'grown' }, 1_000)!;
    const decision = decideReclaimAcross(settings, [dataFs(0.95, null), growing], fresh, 1_000);
    expect(decision.action).toBe('none');
    expect(decision.why).toContain('pool docker-thinpool');
    expect(decideReclaimAcross(settings, [], fresh, 1_000).action).toBe('none');
  });

  it('in cooldown: exhausted once the pool is seen over the threshold after the run finished', () => {
    const history = {
      lastThresholdRunAtMs: 1_000,
      lastRunLeftOverThreshold: false,
      lastRunFinishedAtMs: 2_000,
    };
    const before = reclaimObservationOfPool(thinPool(), disabled, 1_500)!;
    expect(decideReclaimAcross(settings, [before], history, 2_500)).toMatchObject({
      action: 'cooldown',
      exhausted: false,
    });
    const after = reclaimObservationOfPool(thinPool(), disabled, 3_000)!;
    expect(decideReclaimAcross(settings, [dataFs(0.3, null), after], history, 3_000)).toMatchObject({
      action: 'cooldown',
      exhausted: true,
    });
    // a run still going: not exhausted yet
    expect(
      decideReclaimAcross(settings, [after], { ...history, lastRunFinishedAtMs: null }, 3_000),
    ).toMatchObject({ action: 'cooldown', exhausted: false });
  });
});

describe('Reclaimer fed by reconciler passes', () => {
  it('a thin pool that cannot grow runs the whole ladder once; the next pass says exhausted', async () => {
    let nowMs = 1_000_000;
    const calls: string[] = [];
    const docker: ReclaimDockerApi = {
      listImagesForReclaim: async () => [],
      listContainersForReclaim: async () => [],
      listBuildCache: async () => [],
      listVolumesForReclaim: async () => [],
      pruneBuildCache: async () => {
        calls.push('prune build cache');
        return { deletedIds: [], reclaimedBytes: 0 };
      },
      removeImage: async () => undefined,
      removeContainer: async () => undefined,
      removeVolume: async () => undefined,
    };
    const reports: ReclaimReport[] = [];
    const exhausted: boolean[] = [];
    const reclaimer = new Reclaimer({
      settings: configSchema.parse({
        reclaim: {
          enabled: true,
          threshold: '90%',
          target: '80%',
          cooldown: '10m',
          ladder: [{ kind: 'build-cache' }, { kind: 'dangling-images' }],
        },
      }).reclaim,
      docker,
      dataRoot: '/var/lib/docker',
      dryRun: false,
      logger: silentLogger(),
      clock: { nowMs: () => nowMs },
      // the data root itself is nearly empty: a data-filesystem stop at the target would stop at once
      statfs: async () => ({
        typeMagic: 0,
        totalBytes: 100 * GIB,
        availableBytes: 90 * GIB,
        usedBytes: 10 * GIB,
        totalInodes: 0,
        freeInodes: 0,
      }),
      onReport: (report) => reports.push(report),
      onExhausted: (value) => exhausted.push(value),
    });
    // the data filesystem can grow and is fine: it does not hold the pool's trigger back
    reclaimer.observe({ subject: 'data filesystem /var/lib/docker', usedRatio: 0.1, cannotGrowReason: null });
    reclaimer.observePool({
      pool: thinPool(),
      poolAction: { kind: 'needed-but-disabled', fromBytes: 0, toBytes: 0 },
      startedAtMs: nowMs,
    });
    expect(reclaimer.lastTriggerDecision).toMatchObject({ action: 'reclaim', stopAtTarget: false });
    await vi.waitFor(() => expect(reports).toHaveLength(1));
    expect(reports[0]).toMatchObject({ trigger: 'threshold', stoppedAtTarget: false });
    // every rung ran although the data root was under the target from the start
    expect(reports[0]!.rungs.map((rung) => rung.kind)).toEqual(['build-cache', 'dangling-images']);
    expect(calls).toEqual(['prune build cache']);
    // the next pass: the pool is as full as before -> exhausted (the alert's gauge)
    nowMs += 60_000;
    reclaimer.observePool({
      pool: thinPool(),
      poolAction: { kind: 'needed-but-disabled', fromBytes: 0, toBytes: 0 },
      startedAtMs: nowMs,
    });
    expect(reclaimer.lastTriggerDecision).toMatchObject({ action: 'cooldown', exhausted: true });
    expect(reclaimer.exhausted).toBe(true);
    // the pool was grown by hand: below the threshold, exhaustion clears
    reclaimer.observePool({
      pool: thinPool({ dataTotalBytes: 200 * GIB }),
      poolAction: undefined,
      startedAtMs: nowMs,
    });
    expect(reclaimer.lastTriggerDecision?.action).toBe('none');
    expect(exhausted).toEqual([true, false]);
    await reclaimer.stop();
  });
});
