/**
 * The soak's invariant checkers (soak/invariants.ts) and its schedule (soak/schedule.ts): each
 * checker passes a clean record and reports the violation it exists for, so a soak with zero
 * violations means the invariants held, not that the checkers cannot fail.
 */
import { describe, expect, it } from 'vitest';
import {
  INVARIANTS,
  checkFdTargets,
  checkHealthz,
  checkJournal,
  checkLimitsNeverShrink,
  checkMetricSeries,
  checkQgroups,
  checkReleasedLock,
  checkResourceTrend,
  checkStarts,
  checkStateLeftovers,
  checkWriteErrors,
  classifyWriteError,
  containerIdsInExposition,
  countByInvariant,
  smallestRoomBytes,
  type PoolSample,
  type ResourceSample,
  type WriteOutcome,
} from '../../soak/invariants.js';
import { Prng } from '../../soak/prng.js';
import { describeOp, generateSchedule, type ScheduleOptions } from '../../soak/schedule.js';

const MiB = 1024 ** 2;
const ID = 'a'.repeat(12) + 'b'.repeat(52);

function writeError(overrides: Partial<WriteOutcome> = {}): WriteOutcome {
  return {
    name: 'soak-1',
    containerId: ID,
    atMs: 10_000,
    error: 'WRITE-ERROR dd: error writing /w/f1: Disk quota exceeded',
    limitBytes: 64 * MiB,
    maxSizeBytes: 512 * MiB,
    neededRoomBytes: 32 * MiB,
    ...overrides,
  };
}
const roomy: PoolSample[] = [
  { atMs: 6_000, freeAboveReserveBytes: 2048 * MiB },
  { atMs: 9_500, freeAboveReserveBytes: 2000 * MiB },
];

describe('write-error invariant', () => {
  it('a write error below maxSize with room in the pool is a violation', () => {
    const found = checkWriteErrors([writeError()], roomy, { windowMs: 3_000, agentDown: [] });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ invariant: 'write-error', atMs: 10_000 });
    expect(found[0]?.detail).toContain('Disk quota exceeded');
  });

  it('a container without a limit that fails while the pool has room is a violation', () => {
    expect(
      checkWriteErrors([writeError({ limitBytes: null, maxSizeBytes: 0 })], roomy, {
        windowMs: 3_000,
        agentDown: [],
      }),
    ).toHaveLength(1);
  });

  it('an error at maxSize, or in a container the agent never grows, is the policy working', () => {
    expect(
      checkWriteErrors([writeError({ limitBytes: 512 * MiB })], roomy, { windowMs: 3_000, agentDown: [] }),
    ).toEqual([]);
    expect(
      checkWriteErrors([writeError({ maxSizeBytes: 64 * MiB })], roomy, { windowMs: 3_000, agentDown: [] }),
    ).toEqual([]);
  });

  it('an error while the pool was at its reserve (anywhere in the window) is excused', () => {
    const low: PoolSample[] = [
      { atMs: 6_000, freeAboveReserveBytes: 2048 * MiB },
      { atMs: 8_000, freeAboveReserveBytes: 10 * MiB },
      { atMs: 9_900, freeAboveReserveBytes: 2048 * MiB },
    ];
    expect(checkWriteErrors([writeError()], low, { windowMs: 3_000, agentDown: [] })).toEqual([]);
    // the low sample was no longer in force when the window began: the pool had room throughout
    expect(checkWriteErrors([writeError()], low, { windowMs: 50, agentDown: [] })).toHaveLength(1);
  });

  it('an error while the soak had the agent stopped (window overlaps the outage) is excused', () => {
    const down = (fromMs: number, toMs: number) => ({ windowMs: 3_000, agentDown: [{ fromMs, toMs }] });
    expect(classifyWriteError(writeError(), roomy, down(8_000, 9_000))).toBe('agent-down');
    expect(classifyWriteError(writeError(), roomy, down(9_990, 12_000))).toBe('agent-down');
    // the outage ended before the window began, or began after the error: the agent had its chance
    expect(classifyWriteError(writeError(), roomy, down(1_000, 6_500))).toBe('violation');
    expect(classifyWriteError(writeError(), roomy, down(10_500, 12_000))).toBe('violation');
    expect(classifyWriteError(writeError({ limitBytes: 512 * MiB }), roomy, down(8_000, 9_000))).toBe(
      'at-max-size',
    );
  });

  it('finished writes are not errors; no pool sample at all excuses nothing and blames nothing', () => {
    expect(
      checkWriteErrors([writeError({ error: null })], roomy, { windowMs: 3_000, agentDown: [] }),
    ).toEqual([]);
    expect(checkWriteErrors([writeError()], [], { windowMs: 3_000, agentDown: [] })).toEqual([]);
  });

  it('smallestRoomBytes uses the sample in force at the window start', () => {
    expect(smallestRoomBytes(roomy, 7_000, 8_000)).toBe(2048 * MiB);
    expect(smallestRoomBytes(roomy, 7_000, 9_600)).toBe(2000 * MiB);
    expect(smallestRoomBytes(roomy, 1_000, 2_000)).toBeNull();
  });
});

describe('limit-shrank invariant', () => {
  it('growing limits pass; a smaller limit than before is a violation; a new container id starts over', () => {
    const grow = [
      { containerId: 'x', atMs: 1, limitBytes: 64 * MiB },
      { containerId: 'x', atMs: 2, limitBytes: 96 * MiB },
      { containerId: 'y', atMs: 3, limitBytes: 32 * MiB },
      { containerId: 'x', atMs: 4, limitBytes: null },
    ];
    expect(checkLimitsNeverShrink(grow)).toEqual([]);
    const shrunk = checkLimitsNeverShrink([...grow, { containerId: 'x', atMs: 5, limitBytes: 64 * MiB }]);
    expect(shrunk).toHaveLength(1);
    expect(shrunk[0]).toMatchObject({ invariant: 'limit-shrank', atMs: 5 });
  });
});

describe('start-failed invariant', () => {
  it('each failed start is a violation, a start is not', () => {
    const found = checkStarts([
      { name: 'a', atMs: 1, error: null },
      { name: 'b', atMs: 2, error: 'Error response from daemon: disk quota exceeded\nmore' },
    ]);
    expect(found).toEqual([
      { invariant: 'start-failed', atMs: 2, detail: 'b: Error response from daemon: disk quota exceeded' },
    ]);
  });
});

describe('metric-series invariant', () => {
  const exposition = [
    '# HELP docker_autogrow_container_used_bytes x',
    'docker_autogrow_container_used_bytes{container_id="aaaaaaaaaaaa",container_name="a",driver="btrfs"} 1',
    'docker_autogrow_container_size_bytes{container_id="aaaaaaaaaaaa",container_name="a",driver="btrfs"} 2',
    'docker_autogrow_container_used_bytes{container_name="b",container_id="bbbbbbbbbbbb",driver="btrfs"} 1',
    'docker_autogrow_passes_total 3',
  ].join('\n');

  it('reads the container ids of every per-container series', () => {
    expect([...containerIdsInExposition(exposition)].sort()).toEqual(['aaaaaaaaaaaa', 'bbbbbbbbbbbb']);
  });

  it('series equal to the running containers pass (full ids are shortened)', () => {
    expect(checkMetricSeries(1, exposition, ['a'.repeat(64), 'b'.repeat(64)])).toEqual([]);
  });

  it('a stale series and a missing one are each a violation', () => {
    const found = checkMetricSeries(1, exposition, ['a'.repeat(64), 'c'.repeat(64)]);
    expect(found.map((violation) => violation.detail).sort()).toEqual([
      'running container cccccccccccc has no series',
      'series for bbbbbbbbbbbb, which is not running',
    ]);
  });
});

describe('journal invariant', () => {
  const line = (record: object) => JSON.stringify({ v: 1, ...record });
  const started = (containerId: string, atMs: number) => line({ type: 'grow-started', containerId, atMs });

  it('every grow-started with an end (succeeded, failed, container gone or recovered) passes and is counted', () => {
    const text = [
      started('c1', 1),
      line({ type: 'grow-succeeded', containerId: 'c1', atMs: 2 }),
      started('c2', 3),
      line({ type: 'grow-recovered', containerId: 'c2', atMs: 9 }),
      started('c1', 4),
      line({ type: 'grow-failed', containerId: 'c1', atMs: 5 }),
      line({ type: 'container-forgotten', containerId: 'c1', atMs: 6 }),
      started('c3', 7),
      line({ type: 'grow-container-gone', containerId: 'c3', atMs: 8 }),
      '',
    ].join('\n');
    const { summary, violations } = checkJournal(text, 10, Number.POSITIVE_INFINITY);
    expect(violations).toEqual([]);
    expect(summary).toMatchObject({
      records: 9,
      growsStarted: 4,
      growsSucceeded: 1,
      growsFailed: 1,
      growsRecovered: 1,
      growsContainerGone: 1,
      open: [],
    });
  });

  it('a grow-started with no end is a violation unless it is recent enough to be running', () => {
    const text = [started('c1', 100), started('c2', 5_000)].join('\n');
    const end = checkJournal(text, 6_000, Number.POSITIVE_INFINITY);
    expect(end.violations).toHaveLength(2);
    const midway = checkJournal(text, 6_000, 1_000);
    expect(midway.violations).toHaveLength(1);
    expect(midway.violations[0]?.detail).toContain('c1');
    expect(midway.summary.open).toHaveLength(2);
  });

  it('an unreadable line, a record without a type and an end without a start are violations', () => {
    const text = [
      '{"v":1,"type":"grow-st',
      '{"v":1}',
      line({ type: 'grow-succeeded', containerId: 'c9' }),
    ].join('\n');
    const { violations } = checkJournal(text, 1, Number.POSITIVE_INFINITY);
    expect(violations.map((violation) => violation.detail)).toEqual([
      expect.stringContaining('line 1 is not JSON'),
      'line 2 has no record type',
      expect.stringContaining('grow-succeeded for c9 with no grow-started'),
    ]);
  });
});

describe('leak invariants', () => {
  it('state leftovers: only the allowed entries may remain', () => {
    const allowed = [/^journal\.jsonl(\.\d+)?$/, /^agent\.lock\.d$/];
    expect(checkStateLeftovers(1, ['journal.jsonl', 'journal.jsonl.1', 'agent.lock.d'], allowed)).toEqual([]);
    expect(checkStateLeftovers(1, ['journal.jsonl', 'control.sock'], allowed)).toEqual([
      { invariant: 'leak', atMs: 1, detail: 'state directory still holds control.sock' },
    ]);
  });

  it('a released lock passes; a held one, old generations and temporaries are leaks', () => {
    expect(checkReleasedLock(1, 'agent.lock.d', ['7', '7.released'])).toEqual([]);
    expect(checkReleasedLock(1, 'agent.lock.d', [])).toEqual([]);
    const found = checkReleasedLock(1, 'agent.lock.d', ['6', '7', '6.released', '.tmp-abc']);
    expect(found.map((violation) => violation.detail)).toEqual([
      'agent.lock.d: generation 7 is still held',
      'agent.lock.d: 2 generations left behind',
      'agent.lock.d: stray .tmp-abc',
    ]);
  });

  it('qgroups without a subvolume beyond the allowance are a leak (0/5, the top level, is not)', () => {
    expect(checkQgroups(1, ['0/5', '0/256', '0/257'], [256, 257], 0)).toEqual([]);
    const found = checkQgroups(1, ['0/5', '0/256', '0/258', '0/259'], [256], 0);
    expect(found).toHaveLength(1);
    expect(found[0]?.detail).toContain('2 qgroups without a subvolume');
    expect(checkQgroups(1, ['0/258', '0/259'], [], 2)).toEqual([]);
  });

  it('fds on removed containers or deleted files are leaks', () => {
    const targets = [
      '/dev/null',
      'socket:[123]',
      '/sys/fs/btrfs/u/qgroups/0_300/referenced',
      '/tmp/x (deleted)',
    ];
    const found = checkFdTargets(1, 42, targets, ['/sys/fs/btrfs/u/qgroups/0_300/']);
    expect(found.map((violation) => violation.detail)).toEqual([
      'agent pid 42 holds /sys/fs/btrfs/u/qgroups/0_300/referenced',
      'agent pid 42 holds /tmp/x (deleted)',
    ]);
    expect(checkFdTargets(1, 42, ['/dev/null'], ['/sys/fs/btrfs/u/qgroups/0_300/'])).toEqual([]);
  });
});

describe('resource-trend invariant', () => {
  const options = { warmupMs: 10_000, minSpanMs: 60_000, maxFdGrowth: 16, maxRssGrowthBytes: 48 * MiB };
  const series = (count: number, fds: (i: number) => number, rss: (i: number) => number, incarnation = 1) =>
    Array.from({ length: count }, (_, i): ResourceSample => ({
      incarnation,
      atMs: i * 5_000,
      fds: fds(i),
      rssBytes: rss(i),
    }));

  it('flat fds and RSS with noise pass', () => {
    const flat = series(
      60,
      (i) => 40 + (i % 3),
      (i) => 100 * MiB + (i % 5) * MiB,
    );
    expect(checkResourceTrend(flat, options)).toEqual([]);
  });

  it('a steady fd climb and an RSS climb are each a violation', () => {
    const leaking = series(
      60,
      (i) => 40 + i,
      (i) => 100 * MiB + i * 2 * MiB,
    );
    const found = checkResourceTrend(leaking, options);
    expect(found.map((violation) => violation.detail)).toEqual([
      expect.stringMatching(/fds grew by \d+/),
      expect.stringMatching(/RSS grew by [\d.]+ MiB/),
    ]);
  });

  it('fds that follow a growing fleet (4 per added container) pass; the same climb without it does not', () => {
    const withFleet = (live: (i: number) => number) =>
      series(
        60,
        (i) => 40 + i,
        () => 100 * MiB,
      ).map((sample, i) => ({ ...sample, liveContainers: live(i) }));
    const fleetOptions = { ...options, fdsPerAddedContainer: 4 };
    // 59 more fds while 70 -> 118 containers are alive (the soak's seed 2026, 10 min)
    expect(
      checkResourceTrend(
        withFleet((i) => 70 + Math.round((i * 48) / 59)),
        fleetOptions,
      ),
    ).toEqual([]);
    // the same climb with a flat fleet is a leak
    expect(
      checkResourceTrend(
        withFleet(() => 70),
        fleetOptions,
      ),
    ).toEqual([
      expect.objectContaining({
        detail: expect.stringMatching(/fds grew by \d+ .*allowed 16: 0 containers/),
      }),
    ]);
  });

  it('the warm-up, short incarnations and a restart (new incarnation) are not a trend', () => {
    const warm = series(
      60,
      (i) => (i < 2 ? 10 : 60),
      () => 100 * MiB,
    );
    expect(checkResourceTrend(warm, options)).toEqual([]);
    const short = series(
      10,
      (i) => 40 + i * 10,
      () => 100 * MiB,
    );
    expect(checkResourceTrend(short, options)).toEqual([]);
    const restarted = [
      ...series(
        30,
        () => 90,
        () => 100 * MiB,
        1,
      ),
      ...series(
        30,
        () => 40,
        () => 100 * MiB,
        2,
      ),
    ];
    expect(checkResourceTrend(restarted, { ...options, minSpanMs: 30_000 })).toEqual([]);
  });
});

describe('healthz invariant', () => {
  it('a failed probe while the agent was up is a violation; while it was down it is not', () => {
    const found = checkHealthz([
      { atMs: 1, agentUp: true, ok: true, error: null },
      { atMs: 2, agentUp: false, ok: false, error: 'ECONNREFUSED' },
      { atMs: 3, agentUp: true, ok: false, error: 'timed out after 3 s' },
    ]);
    expect(found).toEqual([
      { invariant: 'healthz', atMs: 3, detail: '/healthz failed: timed out after 3 s' },
    ]);
  });

  it('counts violations per invariant, every invariant present', () => {
    const counts = countByInvariant([
      { invariant: 'healthz', atMs: 1, detail: '' },
      { invariant: 'healthz', atMs: 2, detail: '' },
      { invariant: 'leak', atMs: 3, detail: '' },
    ]);
    expect(Object.keys(counts)).toEqual([...INVARIANTS]);
    expect(counts).toMatchObject({ healthz: 2, leak: 1, 'write-error': 0 });
  });
});

describe('soak schedule', () => {
  const options: ScheduleOptions = {
    seed: 2026,
    count: 1_500,
    minContainers: 20,
    maxContainers: 60,
    writeBudgetMiB: 2_400,
    checkpointEvery: 40,
    defaultMaxSizeMiB: 512,
  };

  it('the PRNG is a pure function of its seed', () => {
    const a = new Prng(5);
    const b = new Prng(5);
    const c = new Prng(6);
    const first = Array.from({ length: 20 }, () => a.next());
    expect(Array.from({ length: 20 }, () => b.next())).toEqual(first);
    expect(Array.from({ length: 20 }, () => c.next())).not.toEqual(first);
    expect(first.every((value) => value >= 0 && value < 1)).toBe(true);
  });

  it('same seed, same operation list; a shorter list is a prefix (replay with --ops K)', () => {
    const full = generateSchedule(options).map(describeOp);
    expect(generateSchedule(options).map(describeOp)).toEqual(full);
    expect(generateSchedule({ ...options, count: 300 }).map(describeOp)).toEqual(full.slice(0, 300));
    expect(generateSchedule({ ...options, seed: 2027 }).map(describeOp)).not.toEqual(full);
  });

  it('walks every operation kind and stays within the container bounds it was given', () => {
    const ops = generateSchedule(options).map((scheduled) => scheduled.op);
    const kinds = new Set(ops.map((op) => op.kind));
    for (const kind of [
      'create',
      'start',
      'stop',
      'restart',
      'rm',
      'recreate',
      'write',
      'drain',
      'cli-grow',
      'cli-once',
      'dockerd-restart',
      'agent-term',
      'agent-kill',
      'event-cut',
      'pool-fill',
      'pool-drain',
      'checkpoint',
    ]) {
      expect(kinds, kind).toContain(kind);
    }
    const alive = new Set<string>();
    let most = 0;
    for (const op of ops) {
      if (op.kind === 'create') {
        expect(alive.has(op.name)).toBe(false);
        alive.add(op.name);
      }
      if ('name' in op && op.kind !== 'create')
        expect(alive.has(op.name), `${op.kind} ${op.name}`).toBe(true);
      if (op.kind === 'rm') alive.delete(op.name);
      most = Math.max(most, alive.size);
    }
    expect(most).toBeLessThanOrEqual(options.maxContainers);
    expect(most).toBeGreaterThanOrEqual(options.minContainers);
    expect(ops.filter((op) => op.kind === 'create' && op.limitMiB === null).length).toBeGreaterThan(0);
    expect(ops.filter((op) => op.kind === 'write' && op.mode === 'full').length).toBeGreaterThan(0);
    expect(ops.filter((op) => op.kind === 'write' && op.mode === 'trickle').length).toBeGreaterThan(0);
  });
});
