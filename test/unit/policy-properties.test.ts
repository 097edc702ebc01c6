/**
 * Invariants of the pure policy, over random hosts: configs, containers, pools and histories.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfigObject } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { ContainerInfo } from '../../src/docker/model.js';
import { decide, EMPTY_HISTORY, type DecideInput } from '../../src/policy/decide.js';
import { reserveShortfall } from '../../src/policy/pool.js';
import { resolvePolicy } from '../../src/policy/resolve.js';
import type { ContainerHistory, Decision } from '../../src/policy/types.js';
import type { ContainerUsage, Observation, PoolUsage } from '../../src/storage/types.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const NOW = Date.UTC(2026, 10, 27, 12, 0, 0);
const BASE = parseConfigObject({}, 'test');

const configArb: fc.Arbitrary<Config> = fc
  .record({
    threshold: fc.double({ min: 0.05, max: 1, noNaN: true }),
    inodeThreshold: fc.double({ min: 0.05, max: 1, noNaN: true }),
    step: fc.oneof(
      fc.double({ min: 0.01, max: 2, noNaN: true }).map((ratio) => ({ kind: 'ratio' as const, ratio })),
      fc.integer({ min: 1, max: 20 * GiB }).map((bytes) => ({ kind: 'bytes' as const, bytes })),
    ),
    minStep: fc.integer({ min: 0, max: 4 * GiB }),
    maxStep: fc.integer({ min: 0, max: 60 * GiB }),
    maxSize: fc.oneof(fc.integer({ min: 1, max: 200 * GiB }), fc.constant(1024 * GiB)),
    cooldown: fc.integer({ min: 0, max: 600_000 }),
    predictionEnabled: fc.boolean(),
    horizon: fc.integer({ min: 1000, max: 600_000 }),
    window: fc.integer({ min: 1000, max: 120_000 }),
    reserve: fc.double({ min: 0, max: 0.5, noNaN: true }),
    maxOvercommit: fc.double({ min: 0.5, max: 4, noNaN: true }),
    dryRun: fc.boolean(),
  })
  .map((fields) => ({
    ...BASE,
    dryRun: fields.dryRun,
    defaults: {
      enabled: true,
      threshold: fields.threshold,
      inodeThreshold: fields.inodeThreshold,
      step: fields.step,
      minStep: fields.minStep,
      maxStep: fields.maxStep,
      maxSize: fields.maxSize,
      cooldown: fields.cooldown,
    },
    prediction: { enabled: fields.predictionEnabled, horizon: fields.horizon, window: fields.window },
    pool: { ...BASE.pool, reserve: fields.reserve, maxOvercommit: fields.maxOvercommit },
  }));

interface ContainerCase {
  container: ContainerInfo;
  usage: ContainerUsage;
  history: ContainerHistory;
}

const containerArb = (index: number): fc.Arbitrary<ContainerCase> =>
  fc
    .record({
      sizeBytes: fc.oneof(fc.integer({ min: 1, max: 150 * GiB }), fc.integer({ min: 1, max: 5 * GiB })),
      usedShare: fc.oneof(
        fc.double({ min: 0, max: 1.05, noNaN: true }),
        fc.double({ min: 0.8, max: 1, noNaN: true }),
      ),
      inodes: fc.option(
        fc.tuple(fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 1, max: 1_000_000 })),
      ),
      labelMaxSize: fc.option(fc.constantFrom('5G', '50G', '500G', 'bogus')),
      ratePerSecond: fc.integer({ min: 0, max: 2 * GiB }),
      sampleCount: fc.integer({ min: 0, max: 6 }),
      lastGrowAgoMs: fc.option(fc.integer({ min: 0, max: 900_000 }), { freq: 3 }),
      backoffInMs: fc.option(fc.integer({ min: -60_000, max: 60_000 }), { freq: 4 }),
      inFlight: fc.constantFrom(false, false, false, false, true),
    })
    .map((fields) => {
      const id = (index + 1).toString(16).padStart(64, '0');
      const usedBytes = Math.floor(fields.sizeBytes * fields.usedShare);
      const samples = Array.from({ length: fields.sampleCount }, (_, sample) => {
        const agoMs = (fields.sampleCount - sample) * 1000;
        return {
          atMs: NOW - agoMs,
          usedBytes: Math.max(0, usedBytes - Math.floor((fields.ratePerSecond * agoMs) / 1000)),
          sizeBytes: fields.sizeBytes,
        };
      });
      return {
        container: {
          id,
          name: `c${index}`,
          image: 'busybox',
          labels: (fields.labelMaxSize ? { 'autogrow.max-size': fields.labelMaxSize } : {}) as Record<
            string,
            string
          >,
          state: 'running' as const,
          running: true,
          pid: 1,
          storageDriver: 'devicemapper',
          graphDriverData: {},
          storageOptSizeBytes: null,
        },
        usage: {
          containerId: id,
          driver: 'devicemapper' as const,
          sizeBytes: fields.sizeBytes,
          usedBytes,
          inodesUsed: fields.inodes ? Math.min(fields.inodes[0], fields.inodes[1]) : null,
          inodesTotal: fields.inodes ? fields.inodes[1] : null,
          fsType: 'xfs',
          detail: {},
        },
        history: {
          lastGrowAtMs: fields.lastGrowAgoMs === null ? null : NOW - fields.lastGrowAgoMs,
          lastGrowToBytes: null,
          consecutiveFailures: fields.backoffInMs === null ? 0 : 1,
          backoffUntilMs: fields.backoffInMs === null ? null : NOW + fields.backoffInMs,
          lastError: null,
          samples,
          inFlight: fields.inFlight,
        },
      };
    });

const poolArb: fc.Arbitrary<PoolUsage | null> = fc.option(
  fc
    .record({
      kind: fc.constantFrom<PoolUsage['kind']>('filesystem', 'thin-pool', 'thin-pool-lvm', 'thin-pool-loop'),
      dataTotalBytes: fc.integer({ min: 1 * GiB, max: 4000 * GiB }),
      usedShare: fc.oneof(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 0.6, noNaN: true }),
      ),
      metadataUsedShare: fc.oneof(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 0.5, noNaN: true }),
      ),
      committedShare: fc.double({ min: 0, max: 3, noNaN: true }),
      mode: fc.constantFrom<PoolUsage['mode']>(
        'rw',
        'rw',
        'rw',
        'rw',
        'rw',
        'rw',
        'ro',
        'out_of_data_space',
        'fail',
      ),
      needsCheck: fc.constantFrom(false, false, false, false, true),
    })
    .map((fields) => ({
      name: 'pool',
      kind: fields.kind,
      dataTotalBytes: fields.dataTotalBytes,
      dataUsedBytes: Math.floor(fields.dataTotalBytes * fields.usedShare),
      metadataTotalBytes: fields.kind === 'filesystem' ? null : 1 * GiB,
      metadataUsedBytes: fields.kind === 'filesystem' ? null : Math.floor(GiB * fields.metadataUsedShare),
      mode: fields.mode,
      needsCheck: fields.needsCheck,
      committedBytes: Math.floor(fields.dataTotalBytes * fields.committedShare),
    })),
  { freq: 5 },
);

const hostArb = fc.integer({ min: 1, max: 6 }).chain((count) =>
  fc.record({
    config: configArb,
    pool: poolArb,
    containers: fc.tuple(...Array.from({ length: count }, (_, index) => containerArb(index))),
  }),
);

type Host = { config: Config; pool: PoolUsage | null; containers: ContainerCase[] };

function inputOf(host: Host): DecideInput {
  const observation: Observation = {
    takenAtMs: NOW,
    driver: 'devicemapper',
    pool: host.pool,
    containers: new Map(host.containers.map((entry) => [entry.container.id, entry.usage])),
    errors: new Map(),
  };
  return {
    nowMs: NOW,
    config: host.config,
    observation,
    containers: host.containers.map((entry) => entry.container),
    history: new Map(host.containers.map((entry) => [entry.container.id, entry.history])),
  };
}

/** Grows and planned grows alike: both must respect every limit. */
function growsOf(decisions: readonly Decision[]) {
  return decisions.flatMap((decision) => {
    if (decision.kind === 'grow') return [decision];
    if (decision.wouldGrow) return [{ containerId: decision.containerId, ...decision.wouldGrow }];
    return [];
  });
}

const RUNS = { numRuns: 400 };

describe('policy properties', () => {
  it('never shrinks', () => {
    let grows = 0;
    fc.assert(
      fc.property(hostArb, (host) => {
        for (const grow of growsOf(decide(inputOf(host)).decisions)) {
          grows += 1;
          expect(grow.toBytes).toBeGreaterThan(grow.fromBytes);
        }
      }),
      RUNS,
    );
    // The generators must exercise grows, or these properties would hold vacuously.
    expect(grows).toBeGreaterThan(RUNS.numRuns / 4);
  });

  it('never grows beyond the effective maxSize (label, rule or default)', () => {
    fc.assert(
      fc.property(hostArb, (host) => {
        const byId = new Map(host.containers.map((entry) => [entry.container.id, entry.container]));
        for (const grow of growsOf(decide(inputOf(host)).decisions)) {
          const maxSize = resolvePolicy(host.config, byId.get(grow.containerId)!).settings.maxSize;
          expect(grow.toBytes).toBeLessThanOrEqual(maxSize);
        }
      }),
      RUNS,
    );
  });

  it('never grows through the pool reserve, nor past the thin-pool overcommit limit', () => {
    const checked = { filesystem: 0, thin: 0 };
    fc.assert(
      fc.property(hostArb, (host) => {
        const grows = growsOf(decide(inputOf(host)).decisions);
        const pool = host.pool;
        if (!pool || grows.length === 0) return;
        checked[pool.kind === 'filesystem' ? 'filesystem' : 'thin'] += 1;
        const unhealthy = pool.mode !== 'rw' || pool.needsCheck;
        expect(unhealthy).toBe(false);
        const totalGrowth = grows.reduce((sum, grow) => sum + (grow.toBytes - grow.fromBytes), 0);
        if (pool.kind === 'filesystem') {
          const freeAboveReserve =
            pool.dataTotalBytes - pool.dataUsedBytes - host.config.pool.reserve * pool.dataTotalBytes;
          expect(totalGrowth).toBeLessThanOrEqual(freeAboveReserve);
        } else {
          expect(reserveShortfall(pool, host.config.pool.reserve)).toBeNull();
          expect(pool.committedBytes + totalGrowth).toBeLessThanOrEqual(
            host.config.pool.maxOvercommit * pool.dataTotalBytes,
          );
        }
      }),
      RUNS,
    );
    expect(checked.filesystem).toBeGreaterThan(10);
    expect(checked.thin).toBeGreaterThan(10);
  });

  it('does not grow again in a decision right after a grow', () => {
    let regrowChecks = 0;
    fc.assert(
      fc.property(hostArb, (host) => {
        const live = { ...host, config: { ...host.config, dryRun: false } };
        const first = decide(inputOf(live));
        const grown = new Map(
          first.decisions.flatMap((decision) =>
            decision.kind === 'grow' ? [[decision.containerId, decision]] : [],
          ),
        );
        const after: Host = {
          ...live,
          containers: live.containers.map((entry) => {
            const grow = grown.get(entry.container.id);
            if (!grow || grow.kind !== 'grow') return entry;
            return {
              ...entry,
              usage: { ...entry.usage, sizeBytes: grow.toBytes },
              history: {
                ...entry.history,
                lastGrowAtMs: NOW,
                lastGrowToBytes: grow.toBytes,
                inFlight: false,
              },
            };
          }),
        };
        regrowChecks += grown.size;
        const second = decide(inputOf(after));
        for (const decision of second.decisions) {
          if (grown.has(decision.containerId)) expect(decision.kind).toBe('skip');
        }
      }),
      RUNS,
    );
    expect(regrowChecks).toBeGreaterThan(RUNS.numRuns / 8);
  });

  it('gives the same decisions for the same inputs, whatever the container order', () => {
    fc.assert(
      fc.property(hostArb, fc.integer({ min: 0, max: 1000 }), (host, seed) => {
        const once = decide(inputOf(host));
        const again = decide(inputOf(host));
        const rotated = [
          ...host.containers.slice(seed % host.containers.length),
          ...host.containers.slice(0, seed % host.containers.length),
        ];
        const reordered = decide(inputOf({ ...host, containers: rotated }));

        expect(again).toEqual(once);
        const byId = new Map(reordered.decisions.map((decision) => [decision.containerId, decision]));
        for (const decision of once.decisions) expect(byId.get(decision.containerId)).toEqual(decision);
      }),
      RUNS,
    );
  });

  it('decides exactly once per container', () => {
    fc.assert(
      fc.property(hostArb, (host) => {
        const { decisions } = decide(inputOf(host));
        expect(decisions.map((decision) => decision.containerId)).toEqual(
          host.containers.map((entry) => entry.container.id),
        );
      }),
      RUNS,
    );
  });
});

describe('policy properties: a small illustration of the reserve budget', () => {
  it('a filesystem exactly at its reserve admits nothing', () => {
    const host: Host = {
      config: BASE,
      pool: {
        name: 'fs',
        kind: 'filesystem',
        dataTotalBytes: 100 * GiB,
        dataUsedBytes: 85 * GiB,
        metadataTotalBytes: null,
        metadataUsedBytes: null,
        mode: 'rw',
        needsCheck: false,
        committedBytes: 0,
      },
      containers: [],
    };
    const id = 'c'.repeat(64);
    host.containers.push({
      container: {
        id,
        name: 'x',
        image: 'x',
        labels: {},
        state: 'running',
        running: true,
        pid: 1,
        storageDriver: 'btrfs',
        graphDriverData: {},
        storageOptSizeBytes: null,
      },
      usage: {
        containerId: id,
        driver: 'btrfs',
        sizeBytes: 10 * GiB,
        usedBytes: 10 * GiB - MiB,
        inodesUsed: null,
        inodesTotal: null,
        fsType: null,
        detail: {},
      },
      history: EMPTY_HISTORY,
    });

    expect(decide(inputOf(host)).decisions[0]).toMatchObject({ kind: 'skip', reason: 'pool-reserve' });
  });
});
