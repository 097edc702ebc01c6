import { describe, expect, it } from 'vitest';
import { parseConfigObject } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { ContainerInfo } from '../../src/docker/model.js';
import { decide, EMPTY_HISTORY, type DecideInput } from '../../src/policy/decide.js';
import { SKIP_REASONS, type ContainerHistory, type SkipReason } from '../../src/policy/types.js';
import type { ContainerUsage, Observation, PoolUsage } from '../../src/storage/types.js';
import { containerUsage } from '../support/usage.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const NOW = Date.UTC(2026, 10, 27, 12, 0, 0);
const ID = 'a'.repeat(64);

function container(overrides: Partial<ContainerInfo> = {}): ContainerInfo {
  return {
    id: ID,
    name: 'web',
    image: 'nginx:1.27',
    labels: {},
    state: 'running',
    running: true,
    pid: 1,
    storageDriver: 'btrfs',
    graphDriverData: {},
    storageOptSizeBytes: null,
    ...overrides,
  };
}

function usage(
  sizeBytes: number | null,
  usedBytes: number | null,
  extra: Partial<ContainerUsage> = {},
): ContainerUsage {
  return containerUsage(ID, sizeBytes, usedBytes, extra);
}

const roomyFilesystem: PoolUsage = {
  name: '/var/lib/docker',
  kind: 'filesystem',
  dataUsedBytes: 100 * GiB,
  dataTotalBytes: 1000 * GiB,
  metadataUsedBytes: null,
  metadataTotalBytes: null,
  mode: 'rw',
  needsCheck: false,
  committedBytes: 200 * GiB,
};

const roomyThinPool: PoolUsage = {
  name: 'docker-thinpool',
  kind: 'thin-pool-lvm',
  dataUsedBytes: 10 * GiB,
  dataTotalBytes: 100 * GiB,
  metadataUsedBytes: 10 * MiB,
  metadataTotalBytes: 1 * GiB,
  mode: 'rw',
  needsCheck: false,
  committedBytes: 50 * GiB,
};

interface Case {
  config?: ConfigInput;
  containerOverrides?: Partial<ContainerInfo>;
  usage?: ContainerUsage | null;
  observeError?: string;
  pool?: PoolUsage | null;
  history?: Partial<ContainerHistory>;
  dryRun?: boolean;
  takenAtMs?: number;
}

function run(testCase: Case) {
  const config = parseConfigObject(testCase.config ?? {}, 'test');
  const containerUsage = testCase.usage === undefined ? usage(10 * GiB, 5 * GiB) : testCase.usage;
  const observation: Observation = {
    takenAtMs: testCase.takenAtMs ?? NOW,
    driver: 'btrfs',
    pool: testCase.pool === undefined ? roomyFilesystem : testCase.pool,
    containers: new Map(containerUsage ? [[ID, containerUsage]] : []),
    errors: new Map(testCase.observeError ? [[ID, testCase.observeError]] : []),
  };
  const input: DecideInput = {
    nowMs: NOW,
    config,
    observation,
    containers: [container(testCase.containerOverrides)],
    history: new Map([[ID, { ...EMPTY_HISTORY, ...testCase.history }]]),
    ...(testCase.dryRun !== undefined ? { dryRun: testCase.dryRun } : {}),
  };
  const output = decide(input);
  return { ...output, decision: output.decisions[0]!, plan: output.plans[0]! };
}

/** Samples of a container filling at `bytesPerSecond`, one per second, ending now at `usedNowBytes`. */
function fillingSamples(usedNowBytes: number, bytesPerSecond: number, count = 5) {
  return Array.from({ length: count }, (_, index) => ({
    atMs: NOW - (count - 1 - index) * 1000,
    usedBytes: usedNowBytes - (count - 1 - index) * bytesPerSecond,
    sizeBytes: 10 * GiB,
  }));
}

const skipCases: Array<{ description: string; reason: SkipReason; testCase: Case }> = [
  {
    description: 'below the threshold and not filling',
    reason: 'below-threshold',
    testCase: { usage: usage(10 * GiB, 8 * GiB) },
  },
  {
    description: 'at the threshold but cooling down after a recent grow',
    reason: 'cooldown',
    testCase: { usage: usage(10 * GiB, 9 * GiB), history: { lastGrowAtMs: NOW - 60_000 } },
  },
  {
    description: 'at the threshold but the size is already maxSize',
    reason: 'at-max-size',
    testCase: { usage: usage(100 * GiB, 95 * GiB) },
  },
  {
    description: 'a thin pool whose free data is below the reserve',
    reason: 'pool-reserve',
    testCase: {
      usage: usage(10 * GiB, 9 * GiB),
      pool: { ...roomyThinPool, dataUsedBytes: 90 * GiB },
    },
  },
  {
    description: 'a thin pool whose free metadata is below the reserve',
    reason: 'pool-reserve',
    testCase: {
      usage: usage(10 * GiB, 9 * GiB),
      pool: { ...roomyThinPool, metadataUsedBytes: 900 * MiB },
    },
  },
  {
    description: 'a filesystem with too little free space above the reserve',
    reason: 'pool-reserve',
    testCase: {
      usage: usage(10 * GiB, 9 * GiB),
      pool: { ...roomyFilesystem, dataUsedBytes: 850 * GiB },
    },
  },
  {
    description: 'a thin pool already committed to its overcommit limit',
    reason: 'pool-overcommit',
    testCase: { usage: usage(10 * GiB, 9 * GiB), pool: { ...roomyThinPool, committedBytes: 200 * GiB } },
  },
  {
    description: 'a thin pool flagged needs_check',
    reason: 'pool-unhealthy',
    testCase: { usage: usage(10 * GiB, 9 * GiB), pool: { ...roomyThinPool, needsCheck: true } },
  },
  {
    description: 'a thin pool out of data space',
    reason: 'pool-unhealthy',
    testCase: { usage: usage(10 * GiB, 9 * GiB), pool: { ...roomyThinPool, mode: 'out_of_data_space' } },
  },
  {
    description: 'a read-only pool',
    reason: 'pool-unhealthy',
    testCase: { usage: usage(10 * GiB, 9 * GiB), pool: { ...roomyThinPool, mode: 'ro' } },
  },
  {
    description: 'a failed pool',
    reason: 'pool-unhealthy',
    testCase: { usage: usage(10 * GiB, 9 * GiB), pool: { ...roomyThinPool, mode: 'fail' } },
  },
  {
    description: 'disabled by the autogrow.enable=false label',
    reason: 'disabled',
    testCase: {
      usage: usage(10 * GiB, 9 * GiB),
      containerOverrides: { labels: { 'autogrow.enable': 'false' } },
    },
  },
  {
    description: 'disabled in the defaults',
    reason: 'disabled',
    testCase: { usage: usage(10 * GiB, 9 * GiB), config: { defaults: { enabled: false } } },
  },
  {
    description: 'a container without a size limit',
    reason: 'no-limit',
    testCase: { usage: usage(null, 9 * GiB) },
  },
  {
    description: 'usage that could not be read',
    reason: 'usage-unknown',
    testCase: { usage: null, observeError: 'qgroup missing' },
  },
  {
    description: 'a container the backend did not report',
    reason: 'usage-unknown',
    testCase: { usage: null },
  },
  {
    description: 'a used byte count the backend could not read',
    reason: 'usage-unknown',
    testCase: { usage: usage(10 * GiB, null) },
  },
  {
    description: 'a grow already running',
    reason: 'in-flight',
    testCase: { usage: usage(10 * GiB, 9 * GiB), history: { inFlight: true } },
  },
  {
    description: 'failure backoff still running',
    reason: 'backoff',
    testCase: {
      usage: usage(10 * GiB, 9 * GiB),
      history: { consecutiveFailures: 2, backoffUntilMs: NOW + 5_000, lastError: 'boom' },
    },
  },
  {
    description: 'dry run',
    reason: 'dry-run',
    testCase: { usage: usage(10 * GiB, 9 * GiB), dryRun: true },
  },
  {
    description: 'dry run from the configuration',
    reason: 'dry-run',
    testCase: { usage: usage(10 * GiB, 9 * GiB), config: { dryRun: true } },
  },
  {
    description: 'a grow that ended after this observation was taken (no fresh evidence)',
    reason: 'cooldown',
    testCase: {
      usage: usage(10 * GiB, 9.5 * GiB),
      config: { defaults: { cooldown: '0s' } },
      history: { lastGrowAtMs: NOW - 10 },
      takenAtMs: NOW - 500,
    },
  },
];

describe('decide: skip reasons', () => {
  it.each(skipCases)('skips $reason: $description', ({ reason, testCase }) => {
    const { decision } = run(testCase);

    expect(decision).toMatchObject({ kind: 'skip', reason, containerId: ID });
    expect(decision.kind === 'skip' && decision.why.length).toBeGreaterThan(0);
  });

  it('covers every skip reason in the table', () => {
    const covered = new Set(skipCases.map((testCase) => testCase.reason));

    expect([...SKIP_REASONS].filter((reason) => !covered.has(reason))).toEqual([]);
  });

  it('reports the grow a dry run would make', () => {
    const { decision } = run({ usage: usage(10 * GiB, 9 * GiB), dryRun: true });

    expect(decision).toMatchObject({
      reason: 'dry-run',
      wouldGrow: { fromBytes: 10 * GiB, toBytes: 12 * GiB, trigger: 'threshold' },
    });
  });

  it('does not let backoff hide a container that needs nothing', () => {
    const { decision } = run({
      usage: usage(10 * GiB, 1 * GiB),
      history: { consecutiveFailures: 1, backoffUntilMs: NOW + 5_000 },
    });

    expect(decision).toMatchObject({ reason: 'below-threshold' });
  });

  it('grows again once the backoff has ended', () => {
    const { decision } = run({
      usage: usage(10 * GiB, 9 * GiB),
      history: { consecutiveFailures: 3, backoffUntilMs: NOW - 1 },
    });

    expect(decision).toMatchObject({ kind: 'grow' });
  });

  it('grows again once the cooldown has ended', () => {
    const { decision } = run({ usage: usage(10 * GiB, 9 * GiB), history: { lastGrowAtMs: NOW - 120_000 } });

    expect(decision).toMatchObject({ kind: 'grow', trigger: 'threshold' });
  });
});

describe('decide: grow sizing', () => {
  it.each`
    description                                        | config                                            | sizeBytes       | usedBytes    | toBytes
    ${'20% step at the 85% threshold'}                 | ${{}}                                             | ${10 * GiB}     | ${8.5 * GiB} | ${12 * GiB}
    ${'minStep 1G when 20% is smaller'}                | ${{}}                                             | ${512 * MiB}    | ${450 * MiB} | ${1536 * MiB}
    ${'maxStep caps a large 20% step'}                 | ${{ defaults: { maxStep: '5G', maxSize: '1T' } }} | ${50 * GiB}     | ${45 * GiB}  | ${55 * GiB}
    ${'capped at maxSize'}                             | ${{}}                                             | ${95 * GiB}     | ${90 * GiB}  | ${100 * GiB}
    ${'an absolute step'}                              | ${{ defaults: { step: '3G' } }}                   | ${10 * GiB}     | ${9 * GiB}   | ${13 * GiB}
    ${'rounded up to a whole MiB'}                     | ${{ defaults: { minStep: '1' } }}                 | ${10 * MiB + 7} | ${9 * MiB}   | ${13 * MiB}
    ${'maxSize not on a MiB boundary is never passed'} | ${{ defaults: { maxSize: 10737418241 + 5 } }}     | ${10 * GiB}     | ${9 * GiB}   | ${10737418246}
    ${'far over the threshold: back under it'}         | ${{ defaults: { step: '1%', minStep: '1M' } }}    | ${10 * GiB}     | ${10 * GiB}  | ${12048 * MiB + 0}
  `('$description', ({ config, sizeBytes, usedBytes, toBytes }) => {
    const { decision } = run({ config, usage: usage(sizeBytes, usedBytes) });

    expect(decision).toMatchObject({ kind: 'grow', fromBytes: sizeBytes, toBytes });
  });

  it('grows on inodes when the dm filesystem runs out of them', () => {
    const { decision } = run({
      usage: usage(10 * GiB, 1 * GiB, { inodesUsed: 95_000, inodesTotal: 100_000, fsType: 'xfs' }),
    });

    expect(decision).toMatchObject({ kind: 'grow', trigger: 'inodes', toBytes: 12 * GiB });
  });

  it('limits a filesystem grow to the free space above the reserve, less the headroom already promised', () => {
    // 1000G total, 15% reserve = 150G; used 848G leaves 2G above the reserve, of which the
    // container's unused 1G (10G limit, 9G used) is already promised: 1G may be added.
    const { decision } = run({
      usage: usage(10 * GiB, 9 * GiB),
      pool: { ...roomyFilesystem, dataUsedBytes: 848 * GiB },
    });

    expect(decision).toMatchObject({ kind: 'grow', toBytes: 11 * GiB });
    expect(decision.kind === 'grow' && decision.why).toMatch(/limited/);
  });

  it('counts bytes still in flight (not in the pool yet) as headroom, not as used', () => {
    // as above, but 0.5G of the 9G used are btrfs reservations the filesystem does not show yet:
    // 1.5G of the 2G above the reserve are promised, 0.5G may be added
    const { decision } = run({
      usage: { ...usage(10 * GiB, 9 * GiB), inFlightBytes: 0.5 * GiB },
      pool: { ...roomyFilesystem, dataUsedBytes: 848 * GiB },
    });

    expect(decision).toMatchObject({ kind: 'grow', toBytes: 10.5 * GiB });
  });

  it('admits the container nearest to full first when the pool budget is short', () => {
    const config = parseConfigObject({}, 'test');
    const fuller = 'f'.repeat(64);
    const emptier = 'e'.repeat(64);
    const observation: Observation = {
      takenAtMs: NOW,
      driver: 'btrfs',
      // 1000G, reserve 150G, used 845.5G: 4.5G above the reserve, each container wants 2G. The
      // fuller one (0.1G headroom) gets its 2G; 2.5G are left, 1.5G of which the emptier one was
      // already promised (10G limit, 8.5G used): it gets 1G.
      pool: { ...roomyFilesystem, dataUsedBytes: 845.5 * GiB },
      containers: new Map([
        [emptier, { ...usage(10 * GiB, 8.5 * GiB), containerId: emptier }],
        [fuller, { ...usage(10 * GiB, 9.9 * GiB), containerId: fuller }],
      ]),
      errors: new Map(),
    };

    const { decisions } = decide({
      nowMs: NOW,
      config,
      observation,
      containers: [container({ id: emptier, name: 'emptier' }), container({ id: fuller, name: 'fuller' })],
      history: new Map(),
    });

    expect(decisions[1]).toMatchObject({ kind: 'grow', containerId: fuller, toBytes: 12 * GiB });
    expect(decisions[0]).toMatchObject({ kind: 'grow', containerId: emptier, toBytes: 11 * GiB });
  });

  it('refuses a thin-pool grow that would pass the overcommit limit, and trims one that partly fits', () => {
    const trimmed = run({
      usage: usage(10 * GiB, 9 * GiB),
      pool: { ...roomyThinPool, committedBytes: 199 * GiB },
    });
    const refused = run({
      usage: usage(10 * GiB, 9 * GiB),
      pool: { ...roomyThinPool, committedBytes: 200 * GiB - 512 * 1024 },
    });

    expect(trimmed.decision).toMatchObject({ kind: 'grow', toBytes: 11 * GiB });
    expect(refused.decision).toMatchObject({ kind: 'skip', reason: 'pool-overcommit' });
  });

  it('ignores the overcommit ratio on filesystems', () => {
    const { decision } = run({
      usage: usage(10 * GiB, 9 * GiB),
      pool: { ...roomyFilesystem, committedBytes: 5000 * GiB },
    });

    expect(decision).toMatchObject({ kind: 'grow' });
  });

  it('grows when no pool is reported (nothing to check against)', () => {
    const { decision, pool } = run({ usage: usage(10 * GiB, 9 * GiB), pool: null });

    expect(decision).toMatchObject({ kind: 'grow' });
    expect(pool.kind).toBe('unknown');
  });
});

describe('decide: prediction', () => {
  it('grows early when the fill rate reaches the threshold within the horizon', () => {
    // 6G of 10G used, filling at 200M/s: 85% (8.5G) within 30s.
    const { decision, plan } = run({
      usage: usage(10 * GiB, 6 * GiB),
      history: { samples: fillingSamples(6 * GiB, 200 * MiB) },
    });

    expect(decision).toMatchObject({ kind: 'grow', trigger: 'predicted' });
    expect(plan.fillRateBytesPerSecond).toBeCloseTo(200 * MiB, -3);
    expect(plan.timeToFullSeconds).toBeCloseTo(20.48, 1);
  });

  it('sizes a predicted step to cover the rate over the horizon, under the threshold', () => {
    const rate = 200 * MiB;
    const { decision } = run({
      usage: usage(10 * GiB, 6 * GiB),
      history: { samples: fillingSamples(6 * GiB, rate) },
    });

    expect(decision.kind).toBe('grow');
    const toBytes = decision.kind === 'grow' ? decision.toBytes : 0;
    // used + rate x 30s must stay below 85% of the new size.
    expect(0.85 * toBytes).toBeGreaterThan(6 * GiB + rate * 30);
    expect(toBytes - 10 * GiB).toBeGreaterThanOrEqual(rate * 30);
  });

  it('keeps the predicted step within maxStep', () => {
    const { decision } = run({
      config: { defaults: { maxStep: '5G' } },
      usage: usage(10 * GiB, 6 * GiB),
      history: { samples: fillingSamples(6 * GiB, 1 * GiB) },
    });

    expect(decision).toMatchObject({ kind: 'grow', toBytes: 15 * GiB });
  });

  it('does not grow a slow filler early', () => {
    const { decision, plan } = run({
      usage: usage(10 * GiB, 6 * GiB),
      history: { samples: fillingSamples(6 * GiB, 1 * MiB) },
    });

    expect(decision).toMatchObject({ kind: 'skip', reason: 'below-threshold' });
    expect(plan.timeToFullSeconds).toBeCloseTo(4096, 0);
  });

  it('does not grow early when prediction is disabled, but still reports time to full', () => {
    const { decision, plan } = run({
      config: { prediction: { enabled: false } },
      usage: usage(10 * GiB, 6 * GiB),
      history: { samples: fillingSamples(6 * GiB, 200 * MiB) },
    });

    expect(decision).toMatchObject({ kind: 'skip', reason: 'below-threshold' });
    expect(plan.timeToFullSeconds).toBeCloseTo(20.48, 1);
  });

  it('lets the cooldown yield to a container about to be full even with prediction disabled', () => {
    const { decision } = run({
      config: { prediction: { enabled: false } },
      usage: usage(10 * GiB, 9 * GiB),
      history: { lastGrowAtMs: NOW - 10_000, samples: fillingSamples(9 * GiB, 100 * MiB) },
    });

    expect(decision).toMatchObject({ kind: 'grow', trigger: 'threshold', toBytes: 12 * GiB });
  });

  it('overrides the cooldown when the container will be full within the horizon', () => {
    const { decision } = run({
      usage: usage(10 * GiB, 9 * GiB),
      history: { lastGrowAtMs: NOW - 10_000, samples: fillingSamples(9 * GiB, 100 * MiB) },
    });

    expect(decision).toMatchObject({ kind: 'grow', trigger: 'predicted' });
    expect(decision.kind === 'grow' && decision.why).toMatch(/overriding the cooldown/);
  });

  it('holds the cooldown when the container is above the threshold but not filling fast', () => {
    const { decision } = run({
      usage: usage(10 * GiB, 9 * GiB),
      history: { lastGrowAtMs: NOW - 10_000, samples: fillingSamples(9 * GiB, 1 * MiB) },
    });

    expect(decision).toMatchObject({ kind: 'skip', reason: 'cooldown' });
  });
});

describe('decide: pool verdict', () => {
  it('asks to grow the pool when configured and the pool is past its threshold', () => {
    const { pool } = run({
      config: { pool: { grow: { enabled: true } } },
      pool: { ...roomyThinPool, dataUsedBytes: 82 * GiB },
    });

    expect(pool).toMatchObject({ kind: 'grow', fromBytes: 100 * GiB, toBytes: 120 * GiB });
  });

  it('says the pool is low, and stops container growth, when pool growth is disabled', () => {
    const { pool, decision } = run({
      usage: usage(10 * GiB, 9 * GiB),
      pool: { ...roomyThinPool, dataUsedBytes: 90 * GiB },
    });

    expect(pool.kind).toBe('low');
    expect(pool.why).toMatch(/pool growth is disabled/);
    expect(decision).toMatchObject({ kind: 'skip', reason: 'pool-reserve' });
  });

  it('reports needs-grow past the pool threshold while the reserve still holds', () => {
    const { pool, decision } = run({
      usage: usage(10 * GiB, 9 * GiB),
      pool: { ...roomyThinPool, dataUsedBytes: 81 * GiB },
    });

    expect(pool.kind).toBe('needs-grow');
    expect(decision.kind).toBe('grow');
  });

  it('never grows the pool beyond pool.grow.maxSize', () => {
    const { pool } = run({
      config: { pool: { grow: { enabled: true, maxSize: '110G' } } },
      pool: { ...roomyThinPool, dataUsedBytes: 90 * GiB },
    });

    expect(pool).toMatchObject({ kind: 'grow', toBytes: 110 * GiB });
  });
});

describe('decide: precedence (label over rule over default)', () => {
  const rules: ConfigInput['rules'] = [
    { name: 'databases', match: { image: 'postgres:*' }, threshold: '70%', maxSize: '500G', step: '10G' },
    { name: 'team-a', match: { labels: { team: 'a' } }, threshold: '60%' },
    { match: { name: 'batch-??' }, enabled: false },
  ];

  it.each`
    description                                  | overrides                                                             | ruleName       | threshold | maxSize
    ${'defaults when no rule matches'}           | ${{ image: 'nginx:1' }}                                               | ${'defaults'}  | ${0.85}   | ${100 * GiB}
    ${'the matching rule by image glob'}         | ${{ image: 'postgres:16' }}                                           | ${'databases'} | ${0.7}    | ${500 * GiB}
    ${'the first match wins'}                    | ${{ image: 'postgres:16', labels: { team: 'a' } }}                    | ${'databases'} | ${0.7}    | ${500 * GiB}
    ${'a label rule'}                            | ${{ labels: { team: 'a' } }}                                          | ${'team-a'}    | ${0.6}    | ${100 * GiB}
    ${'a label over the rule'}                   | ${{ image: 'postgres:16', labels: { 'autogrow.threshold': '95%' } }}  | ${'label'}     | ${0.95}   | ${500 * GiB}
    ${'a label over the defaults'}               | ${{ labels: { 'autogrow.max-size': '20G' } }}                         | ${'label'}     | ${0.85}   | ${20 * GiB}
    ${'an unnamed rule by name glob'}            | ${{ name: 'batch-01' }}                                               | ${'rules[2]'}  | ${0.85}   | ${100 * GiB}
    ${'an invalid label falls back to the rule'} | ${{ image: 'postgres:16', labels: { 'autogrow.threshold': 'high' } }} | ${'databases'} | ${0.7}    | ${500 * GiB}
  `('uses $description', ({ overrides, ruleName, threshold, maxSize }) => {
    const { plan } = run({ config: { rules }, containerOverrides: overrides });

    expect(plan.ruleName).toBe(ruleName);
    expect(plan.settings.threshold).toBe(threshold);
    expect(plan.maxSizeBytes).toBe(maxSize);
  });

  it('uses the rule step and the label step in order', () => {
    const byRule = run({
      config: { rules },
      containerOverrides: { image: 'postgres:16' },
      usage: usage(10 * GiB, 8 * GiB),
    });
    const byLabel = run({
      config: { rules },
      containerOverrides: { image: 'postgres:16', labels: { 'autogrow.step': '50%' } },
      usage: usage(10 * GiB, 8 * GiB),
    });

    expect(byRule.decision).toMatchObject({ kind: 'grow', toBytes: 20 * GiB });
    expect(byLabel.decision).toMatchObject({ kind: 'grow', toBytes: 15 * GiB });
  });

  it('a rule can disable, and a label can enable again', () => {
    const disabled = run({
      config: { rules },
      containerOverrides: { name: 'batch-07' },
      usage: usage(10 * GiB, 9 * GiB),
    });
    const enabled = run({
      config: { rules },
      containerOverrides: { name: 'batch-07', labels: { 'autogrow.enable': 'true' } },
      usage: usage(10 * GiB, 9 * GiB),
    });

    expect(disabled.decision).toMatchObject({ reason: 'disabled' });
    expect(enabled.decision).toMatchObject({ kind: 'grow' });
  });

  it('a label cooldown replaces the default one', () => {
    const { decision } = run({
      containerOverrides: { labels: { 'autogrow.cooldown': '10s' } },
      usage: usage(10 * GiB, 9 * GiB),
      history: { lastGrowAtMs: NOW - 60_000 },
    });

    expect(decision).toMatchObject({ kind: 'grow' });
  });
});

describe('decide: bad labels', () => {
  it('ignores each invalid label with a warning and still serves the container', () => {
    const { decision, plan } = run({
      containerOverrides: {
        labels: {
          'autogrow.enable': 'maybe',
          'autogrow.threshold': '150%',
          'autogrow.step': '0%',
          'autogrow.max-size': 'lots',
          'autogrow.cooldown': '-5m',
          'autogrow.maxsize': '10G',
        },
      },
      usage: usage(10 * GiB, 9 * GiB),
    });

    expect(decision).toMatchObject({ kind: 'grow', toBytes: 12 * GiB });
    expect(plan.ruleName).toBe('defaults');
    expect(plan.labelWarnings).toHaveLength(6);
    expect(plan.labelWarnings.join('\n')).toMatch(/autogrow.enable="maybe" ignored/);
    expect(plan.labelWarnings.join('\n')).toMatch(/autogrow.maxsize ignored: unknown autogrow label/);
  });

  it('serves the other containers when one has bad labels', () => {
    const config = parseConfigObject({}, 'test');
    const good = 'b'.repeat(64);
    const { decisions, plans } = decide({
      nowMs: NOW,
      config,
      observation: {
        takenAtMs: NOW,
        driver: 'btrfs',
        pool: roomyFilesystem,
        containers: new Map([
          [ID, usage(10 * GiB, 9 * GiB)],
          [good, { ...usage(10 * GiB, 9 * GiB), containerId: good }],
        ]),
        errors: new Map(),
      },
      containers: [
        container({ labels: { 'autogrow.threshold': 'x' } }),
        container({ id: good, name: 'good' }),
      ],
      history: new Map(),
    });

    expect(decisions.map((decision) => decision.kind)).toEqual(['grow', 'grow']);
    expect(plans[0]!.labelWarnings).toHaveLength(1);
    expect(plans[1]!.labelWarnings).toHaveLength(0);
  });
});
