/**
 * The fill guard: its pure arithmetic (src/policy/guard.ts) and its runtime (src/agent/guard.ts)
 * driven by a hand-stepped clock and timer queue, a scripted live-usage reader and a recorded
 * list of the passes it asked for.
 */
import { describe, expect, it } from 'vitest';
import { FillGuard } from '../../src/agent/guard.js';
import type { ContainerReport, PassReport } from '../../src/report/pass-report.js';
import { silentLogger } from '../../src/log/logger.js';
import { guardPeriodMs, guardVerdict, type GuardSettings } from '../../src/policy/guard.js';
import type { Decision } from '../../src/policy/types.js';
import type { LiveUsage } from '../../src/storage/types.js';
import { containerUsage } from '../support/usage.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const settings: GuardSettings = {
  peakWriteBytesPerSecond: 4 * GiB,
  minIntervalMs: 20,
  passIntervalMs: 1000,
};

describe('guardPeriodMs', () => {
  it('looks every half of the time a peak-rate writer needs to fill the headroom', () => {
    // 512 MiB at 4 GiB/s: full in 125 ms, looked at every 62 ms
    expect(guardPeriodMs(0, 512 * MiB, settings)).toBe(62);
    expect(guardPeriodMs(256 * MiB, 512 * MiB, settings)).toBe(31);
  });

  it('never under minInterval, even when full', () => {
    expect(guardPeriodMs(64 * MiB, 64 * MiB, settings)).toBe(20);
    expect(guardPeriodMs(70 * MiB, 64 * MiB, settings)).toBe(20);
  });

  it('leaves containers with headroom for a whole interval at peak rate to the passes', () => {
    // 8 GiB free at 4 GiB/s: 2 s to fill, half of it is the interval
    expect(guardPeriodMs(0, 8 * GiB, settings)).toBeNull();
    expect(guardPeriodMs(0, 8 * GiB - 64 * MiB, settings)).toBe(992);
    expect(guardPeriodMs(0, 512 * MiB, { ...settings, peakWriteBytesPerSecond: 0 })).toBeNull();
  });
});

describe('guardVerdict', () => {
  const at = (atMs: number, usedBytes: number, sizeBytes = 512 * MiB) => ({ atMs, usedBytes, sizeBytes });

  it('is urgent at or over the threshold, even on a first look', () => {
    expect(guardVerdict(null, at(0, 436 * MiB), 0.85, 1000, 62)).toMatchObject({
      urgent: true,
      reason: 'threshold',
    });
    expect(guardVerdict(null, at(0, 430 * MiB), 0.85, 1000, 62)).toEqual({ urgent: false });
  });

  it('is urgent when the measured rate fills the container before the next pass plus a look', () => {
    // 2.8 GiB/s between two looks 62 ms apart: 426 MiB left, full in ~150 ms, long before the pass
    const verdict = guardVerdict(at(0, 0), at(62, 174 * MiB), 0.85, 900, 62);
    expect(verdict).toMatchObject({ urgent: true, reason: 'filling' });
    if (!verdict.urgent) throw new Error('unreachable');
    expect(verdict.bytesPerSecond).toBeCloseTo((174 * MiB * 1000) / 62, 0);
    expect(verdict.timeToFullMs).toBeCloseTo((338 / 174) * 62, 0);
  });

  it('is calm for a writer the next pass can still answer', () => {
    // 100 MiB/s with 400 MiB left: 4 s to full
    expect(guardVerdict(at(0, 100 * MiB), at(100, 110 * MiB), 0.85, 900, 62)).toEqual({ urgent: false });
    // shrinking usage (files deleted): no fill at all
    expect(guardVerdict(at(0, 300 * MiB), at(50, 100 * MiB), 0.85, 900, 62)).toEqual({ urgent: false });
  });

  it('never takes a grown limit for a fill rate', () => {
    // the limit changed between the looks: no rate, below threshold, calm
    expect(guardVerdict(at(0, 0, 512 * MiB), at(50, 300 * MiB, 4 * GiB), 0.85, 900, 62)).toEqual({
      urgent: false,
    });
  });
});

// ---- runtime -------------------------------------------------------------------------------------

class ManualTimers {
  nowMs = 0;
  private nextHandle = 1;
  private readonly queue = new Map<number, { atMs: number; callback: () => void }>();

  setTimeout = (callback: () => void, delayMs: number): unknown => {
    const handle = this.nextHandle++;
    this.queue.set(handle, { atMs: this.nowMs + delayMs, callback });
    return handle;
  };

  clearTimeout = (handle: unknown): void => {
    this.queue.delete(handle as number);
  };

  get pending(): number {
    return this.queue.size;
  }

  /** Moves the clock to each due timer in order up to `untilMs`, running it and its promises. */
  async advanceTo(untilMs: number): Promise<void> {
    for (;;) {
      const due = [...this.queue.entries()]
        .filter(([, timer]) => timer.atMs <= untilMs)
        .sort((a, b) => a[1].atMs - b[1].atMs)[0];
      if (!due) break;
      this.queue.delete(due[0]);
      this.nowMs = Math.max(this.nowMs, due[1].atMs);
      due[1].callback();
      for (let i = 0; i < 10; i += 1) await Promise.resolve();
    }
    this.nowMs = untilMs;
  }
}

const ID = 'a'.repeat(64);

function containerReport(
  usedBytes: number,
  sizeBytes: number | null,
  decision: Partial<Decision> = { kind: 'skip', reason: 'below-threshold' },
): ContainerReport {
  return {
    containerId: ID,
    name: 'writer',
    driver: 'btrfs',
    usage: containerUsage(ID, sizeBytes, usedBytes),
    ruleName: 'defaults',
    maxSizeBytes: 100 * GiB,
    decision: { containerId: ID, why: '', ...decision } as Decision,
    timeToFullSeconds: null,
    labelWarnings: [],
    backoffUntilMs: null,
    thresholdRatio: 0.85,
    cooldownUntilMs: null,
  };
}

function passReport(atMs: number, containers: ContainerReport[], partial = false): PassReport {
  return {
    startedAtMs: atMs,
    durationMs: 0,
    driver: 'btrfs',
    dryRun: false,
    pool: null,
    containers,
    probes: [],
    errors: [],
    ...(partial ? { onlyContainerIds: [ID] } : {}),
  };
}

function harness(
  options: { decisionAfterEvaluate?: Partial<Decision>; token?: { value: string | null } } = {},
) {
  const timers = new ManualTimers();
  /** What the next look reads, by container id. */
  const liveUsage = new Map<string, LiveUsage>();
  const looks: number[] = [];
  /** The ids each look read, in order. */
  const reads: string[][] = [];
  const evaluations: number[] = [];
  const guard: FillGuard = new FillGuard({
    ...(options.token ? { changeToken: () => options.token!.value } : {}),
    readLiveUsage: async (ids) => {
      looks.push(timers.nowMs);
      reads.push([...ids]);
      return new Map(ids.flatMap((id) => (liveUsage.has(id) ? [[id, liveUsage.get(id)!]] : [])));
    },
    settings,
    clock: { nowMs: () => timers.nowMs },
    timers,
    logger: silentLogger(),
    evaluate: async (containerId) => {
      evaluations.push(timers.nowMs);
      const usage = liveUsage.get(containerId)!;
      const report = passReport(
        timers.nowMs,
        [
          containerReport(
            usage.usedBytes,
            usage.sizeBytes,
            options.decisionAfterEvaluate ?? { kind: 'grow', fromBytes: 0, toBytes: 1, trigger: 'predicted' },
          ),
        ],
        true,
      );
      guard.noteReport(report);
      return report;
    },
    untilNextPassMs: () => 1000 - (timers.nowMs % 1000),
  });
  return { timers, liveUsage, looks, reads, evaluations, guard };
}

describe('FillGuard', () => {
  it('guards a small container between passes and asks for a pass when a fast writer starts', async () => {
    const { timers, liveUsage, looks, evaluations, guard } = harness();
    liveUsage.set(ID, { usedBytes: 0, sizeBytes: 512 * MiB });
    guard.noteReport(passReport(0, [containerReport(0, 512 * MiB)]));
    expect(guard.stats.guarded).toBe(1);
    await timers.advanceTo(62);
    expect(looks).toEqual([62]);
    expect(evaluations).toEqual([]);
    // a writer at 2.8 GiB/s starts: the next look sees 170 MiB more and asks for a pass
    liveUsage.set(ID, { usedBytes: 170 * MiB, sizeBytes: 512 * MiB });
    await timers.advanceTo(124);
    expect(looks).toEqual([62, 124]);
    expect(evaluations).toEqual([124]);
    expect(guard.stats).toMatchObject({ looks: 2, evaluations: 1 });
  });

  it('hands a container back to the passes once a look finds it grown', async () => {
    const { timers, liveUsage, looks, guard } = harness();
    liveUsage.set(ID, { usedBytes: 0, sizeBytes: 512 * MiB });
    guard.noteReport(passReport(0, [containerReport(0, 512 * MiB)]));
    liveUsage.set(ID, { usedBytes: 300 * MiB, sizeBytes: 16 * GiB });
    await timers.advanceTo(62);
    expect(guard.stats.guarded).toBe(0);
    await timers.advanceTo(2000);
    expect(looks).toEqual([62]);
    expect(timers.pending).toBe(0);
  });

  it('does not guard what a faster look cannot help: no limit, disabled, at max size, dry run', () => {
    const { guard } = harness();
    guard.noteReport(passReport(0, [containerReport(0, null)]));
    expect(guard.stats.guarded).toBe(0);
    for (const reason of ['disabled', 'at-max-size', 'backoff', 'pool-unhealthy'] as const) {
      guard.noteReport(passReport(0, [containerReport(0, 512 * MiB, { kind: 'skip', reason })]));
      expect(guard.stats.guarded).toBe(0);
    }
    guard.noteReport({ ...passReport(0, [containerReport(0, 512 * MiB)]), dryRun: true });
    expect(guard.stats.guarded).toBe(0);
    // plenty of headroom: the passes are enough
    guard.noteReport(passReport(0, [containerReport(0, 100 * GiB)]));
    expect(guard.stats.guarded).toBe(0);
  });

  it('a pass that chose not to grow is not asked again before the next regular pass', async () => {
    const { timers, liveUsage, evaluations, guard } = harness({
      decisionAfterEvaluate: { kind: 'skip', reason: 'cooldown' },
    });
    liveUsage.set(ID, { usedBytes: 450 * MiB, sizeBytes: 512 * MiB });
    guard.noteReport(passReport(0, [containerReport(450 * MiB, 512 * MiB)]));
    await timers.advanceTo(2500);
    // over the threshold at every look (every 20 ms), but asked only once per pass interval
    expect(guard.stats.looks).toBeGreaterThan(50);
    expect(evaluations.length).toBeGreaterThanOrEqual(2);
    expect(evaluations.length).toBeLessThanOrEqual(3);
    for (let i = 1; i < evaluations.length; i += 1) {
      expect(evaluations[i]! - evaluations[i - 1]!).toBeGreaterThanOrEqual(900);
    }
  });

  it('a pool that cannot give more space is left to the passes', () => {
    const { guard } = harness();
    for (const reason of ['pool-reserve', 'pool-overcommit'] as const) {
      guard.noteReport(passReport(0, [containerReport(450 * MiB, 512 * MiB, { kind: 'skip', reason })]));
      expect(guard.stats.guarded).toBe(0);
    }
  });

  it('a whole-host pass without the container drops it; a partial pass does not', async () => {
    const { guard } = harness();
    guard.noteReport(passReport(0, [containerReport(0, 512 * MiB)]));
    guard.noteReport(passReport(10, [], true));
    expect(guard.stats.guarded).toBe(1);
    guard.noteReport(passReport(20, []));
    expect(guard.stats.guarded).toBe(0);
  });

  it('stop() cancels the timer and forgets everything', async () => {
    const { timers, guard, looks } = harness();
    guard.noteReport(passReport(0, [containerReport(0, 512 * MiB)]));
    expect(timers.pending).toBe(1);
    guard.stop();
    expect(timers.pending).toBe(0);
    await timers.advanceTo(1000);
    expect(looks).toEqual([]);
  });

  it('with a change token, a tick on a quiet filesystem reads no container; a moved token does', async () => {
    const token = { value: 't0' as string | null };
    const { timers, liveUsage, looks, evaluations, guard } = harness({ token });
    liveUsage.set(ID, { usedBytes: 0, sizeBytes: 512 * MiB });
    guard.noteReport(passReport(0, [containerReport(0, 512 * MiB)]));
    // the pass's sample carries no token: the first tick reads the container
    await timers.advanceTo(62);
    expect(looks).toEqual([62]);
    await timers.advanceTo(1000);
    expect(looks).toEqual([62]);
    expect(guard.stats.quietTicks).toBeGreaterThanOrEqual(14);
    // a writer at 2.8 GiB/s: the token moves, the next tick reads and asks for a pass at once
    token.value = 't1';
    liveUsage.set(ID, { usedBytes: 170 * MiB, sizeBytes: 512 * MiB });
    await timers.advanceTo(1062);
    expect(looks).toEqual([62, 1054]);
    expect(evaluations).toEqual([1054]);
  });

  it('takes a whole-host pass live reading under the token read before it: no look until the token moves', async () => {
    const token = { value: 't0' as string | null };
    const { timers, liveUsage, looks, evaluations, guard } = harness({ token });
    liveUsage.set(ID, { usedBytes: 0, sizeBytes: 512 * MiB });
    const live = (): ContainerReport => ({
      ...containerReport(0, 512 * MiB),
      usage: containerUsage(ID, 512 * MiB, 0, { readLive: true }),
    });
    guard.noteReport(passReport(0, [live()]), 't0');
    await timers.advanceTo(1000);
    expect(looks).toEqual([]);
    expect(guard.stats.quietTicks).toBeGreaterThanOrEqual(15);
    // the next pass (its token still t0), then a writer: the first tick after the move reads
    guard.noteReport(passReport(1000, [live()]), 't0');
    await timers.advanceTo(1100);
    expect(looks).toEqual([]);
    token.value = 't1';
    liveUsage.set(ID, { usedBytes: 170 * MiB, sizeBytes: 512 * MiB });
    await timers.advanceTo(1200);
    // the first tick after the move reads it, and the rate since the last quiet tick is urgent
    expect(looks[0]).toBeGreaterThan(1100);
    expect(looks[0]).toBeLessThanOrEqual(1100 + 62);
    expect(evaluations[0]).toBe(looks[0]);
  });

  it("never trusts a pass's reading under its token when it lags (not live) or the pass grew the container", async () => {
    const token = { value: 't0' as string | null };
    const { timers, liveUsage, looks, guard } = harness({ token });
    liveUsage.set(ID, { usedBytes: 0, sizeBytes: 512 * MiB });
    // qgroup show's committed numbers: the first tick reads the container
    guard.noteReport(passReport(0, [containerReport(0, 512 * MiB)]), 't0');
    await timers.advanceTo(62);
    expect(looks).toEqual([62]);
    // a live reading, but the pass grew the container (its size moved without the token)
    guard.noteReport(
      passReport(100, [
        {
          ...containerReport(0, 256 * MiB, {
            kind: 'grow',
            fromBytes: 256 * MiB,
            toBytes: 512 * MiB,
            trigger: 'threshold',
          }),
          usage: containerUsage(ID, 256 * MiB, 0, { readLive: true }),
          outcome: { kind: 'grown', fromBytes: 256 * MiB, toBytes: 512 * MiB, durationMs: 1 },
        },
      ]),
      't0',
    );
    await timers.advanceTo(200);
    expect(looks.length).toBe(2);
  });

  it('without a token (null) every tick reads, as before', async () => {
    const token = { value: null as string | null };
    const { timers, liveUsage, looks, guard } = harness({ token });
    liveUsage.set(ID, { usedBytes: 0, sizeBytes: 512 * MiB });
    guard.noteReport(passReport(0, [containerReport(0, 512 * MiB)]));
    await timers.advanceTo(310);
    expect(looks).toEqual([62, 124, 186, 248, 310]);
    expect(guard.stats.quietTicks).toBe(0);
  });

  it('batches containers into one read per tick, and never skips one that was not read under the current token', async () => {
    const token = { value: 't0' as string | null };
    const { timers, liveUsage, reads, guard } = harness({ token });
    const OTHER = 'b'.repeat(64);
    const other = (usedBytes: number, sizeBytes: number): ContainerReport => ({
      ...containerReport(usedBytes, sizeBytes),
      containerId: OTHER,
      usage: containerUsage(OTHER, sizeBytes, usedBytes),
    });
    liveUsage.set(ID, { usedBytes: 0, sizeBytes: 512 * MiB });
    liveUsage.set(OTHER, { usedBytes: 0, sizeBytes: 512 * MiB });
    guard.noteReport(passReport(0, [containerReport(0, 512 * MiB)]));
    guard.noteReport(passReport(20, [other(0, 512 * MiB)], true));
    await timers.advanceTo(62);
    // the second was due at 82, within half its period: read in the same tick
    expect(reads).toEqual([[ID, OTHER]]);
    // a new pass sample for one container (read anew), while the token moved: only it is read,
    // but the other, last read under t0, is read too once t1 is the token
    token.value = 't1';
    await timers.advanceTo(124);
    expect(reads).toEqual([
      [ID, OTHER],
      [ID, OTHER],
    ]);
    await timers.advanceTo(500);
    expect(reads).toHaveLength(2);
  });
});
