import { describe, expect, it } from 'vitest';
import type { ContainerReport, PassReport } from '../../src/report/pass-report.js';
import {
  nextAction,
  renderStatus,
  statusJson,
  usageBar,
  type StatusContainerReport,
} from '../../src/cli/render-status.js';
import type { ContainerUsage } from '../../src/storage/types.js';
import { containerUsage } from '../support/usage.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const NOW_MS = Date.parse('2026-11-27T12:00:00.000Z');

const usage = (id: string, sizeBytes: number | null, usedBytes: number | null): ContainerUsage =>
  containerUsage(id, sizeBytes, usedBytes);

function container(name: string, overrides: Partial<StatusContainerReport>): StatusContainerReport {
  const id = name.padEnd(64, '0');
  return {
    containerId: id,
    name,
    driver: 'btrfs',
    usage: usage(id, 10 * GiB, 5 * GiB),
    ruleName: 'defaults',
    maxSizeBytes: 100 * GiB,
    decision: { kind: 'skip', containerId: id, reason: 'below-threshold', why: '' },
    timeToFullSeconds: null,
    labelWarnings: [],
    backoffUntilMs: null,
    thresholdRatio: 0.85,
    cooldownUntilMs: null,
    ...overrides,
  };
}

function skip(
  reason: Extract<ContainerReport['decision'], { kind: 'skip' }>['reason'],
): ContainerReport['decision'] {
  return { kind: 'skip', containerId: 'x', reason, why: '' };
}

const report: PassReport = {
  startedAtMs: NOW_MS - 2_000,
  durationMs: 37,
  driver: 'btrfs',
  dryRun: false,
  pool: {
    name: '/var/lib/docker',
    kind: 'filesystem',
    dataUsedBytes: 30 * GiB,
    dataTotalBytes: 50 * GiB,
    metadataUsedBytes: null,
    metadataTotalBytes: null,
    mode: 'rw',
    needsCheck: false,
    committedBytes: 80 * GiB,
  },
  containers: [
    container('web', { thresholdRatio: 0.85, timeToFullSeconds: 4 * 3600 }),
    container('pg-main', {
      ruleName: 'postgres',
      usage: usage('p', 20 * GiB, 19 * GiB),
      decision: skip('cooldown'),
      cooldownUntilMs: NOW_MS + 72_000,
    }),
    container('flaky', {
      usage: usage('f', 2 * GiB, 1.9 * GiB),
      decision: skip('backoff'),
      backoffUntilMs: NOW_MS + 40_000,
    }),
    container('scratch', { usage: usage('s', null, 300 * MiB), decision: skip('no-limit') }),
    container('big', { usage: usage('b', 100 * GiB, 95 * GiB), decision: skip('at-max-size') }),
    container('batch', {
      usage: usage('b2', 10 * GiB, 9 * GiB),
      decision: {
        kind: 'grow',
        containerId: 'b2',
        fromBytes: 10 * GiB,
        toBytes: 12 * GiB,
        trigger: 'threshold',
        why: '',
      },
      outcome: { kind: 'grown', fromBytes: 10 * GiB, toBytes: 12 * GiB, durationMs: 800 },
    }),
  ],
  probes: [{ name: 'btrfs qgroup show', ok: true, durationMs: 12 }],
  errors: [],
};

describe('usageBar', () => {
  it('fills whole cells only, full at 100%', () => {
    expect(usageBar(0.52)).toBe('[#####.....]  52%');
    expect(usageBar(0.999)).toBe('[#########.]  99%');
    expect(usageBar(1)).toBe('[##########] 100%');
    expect(usageBar(1.2)).toBe('[##########] 120%');
    expect(usageBar(0)).toBe('[..........]   0%');
  });
});

describe('nextAction', () => {
  const options = { nowMs: NOW_MS };
  it('says what happens next for each decision', () => {
    const byName = new Map(report.containers.map((c) => [c.name, nextAction(c, options)]));
    expect(Object.fromEntries(byName)).toEqual({
      web: 'grow at 85%, full in 4h',
      'pg-main': 'cooldown 1m12s',
      flaky: 'backoff 40s',
      scratch: 'no limit',
      big: 'at max 100GiB',
      batch: 'grown to 12GiB',
    });
  });
  it('falls back to the default threshold and to no countdown when the report lacks them', () => {
    expect(nextAction(container('a', { thresholdRatio: 0.9 }), { nowMs: NOW_MS })).toBe('grow at 90%');
    expect(nextAction(container('a', { decision: skip('cooldown') }), { nowMs: NOW_MS })).toBe('cooldown');
  });
  it('shows dry-run plans as "would grow"', () => {
    const planned = container('a', {
      decision: {
        kind: 'skip',
        containerId: 'a',
        reason: 'dry-run',
        why: '',
        wouldGrow: { fromBytes: GiB, toBytes: 2 * GiB, trigger: 'threshold' },
      },
    });
    expect(nextAction(planned, { nowMs: NOW_MS })).toBe('would grow to 2GiB');
  });
});

describe('renderStatus', () => {
  it('renders the pool on top and one sorted row per container', () => {
    expect(renderStatus(report, { nowMs: NOW_MS })).toMatchInlineSnapshot(`
      "docker-autogrow status: btrfs, pass at 2026-11-27T11:59:58.000Z took 37ms
      POOL /var/lib/docker (filesystem, rw)
        data      30GiB / 50GiB  [######....]  60%
        committed 80GiB (160% of data)

      CONTAINER  DRIVER    SIZE     USED  USED%              RULE      NEXT
      batch      btrfs    10GiB     9GiB  [#########.]  90%  defaults  grown to 12GiB
      big        btrfs   100GiB    95GiB  [#########.]  95%  defaults  at max 100GiB
      flaky      btrfs     2GiB  1.90GiB  [#########.]  95%  defaults  backoff 40s
      pg-main    btrfs    20GiB    19GiB  [#########.]  95%  postgres  cooldown 1m12s
      scratch    btrfs        -   300MiB  -                  defaults  no limit
      web        btrfs    10GiB     5GiB  [#####.....]  50%  defaults  grow at 85%, full in 4h
      "
    `);
  });

  it('renders JSON with bytes, ratios and the same NEXT text', () => {
    const json = JSON.parse(statusJson(report, { nowMs: NOW_MS })) as {
      containers: { name: string; usedRatio: number | null; next: string }[];
      pool: { dataTotalBytes: number };
    };
    expect(json.pool.dataTotalBytes).toBe(50 * GiB);
    expect(json.containers.map((c) => c.name)).toEqual([
      'batch',
      'big',
      'flaky',
      'pg-main',
      'scratch',
      'web',
    ]);
    expect(json.containers.find((c) => c.name === 'scratch')?.usedRatio).toBeNull();
    expect(json.containers.find((c) => c.name === 'web')?.usedRatio).toBe(0.5);
  });
});
