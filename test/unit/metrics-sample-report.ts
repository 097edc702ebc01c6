/**
 * Realistic pass reports for metrics tests: a btrfs host with a few containers in the states the
 * dashboards and alerts care about (filling, just grown, at max size, in backoff, failed grow).
 * Shared by the unit tests and the promtool / Prometheus integration tests.
 */
import type { ContainerReport, PassReport } from '../../src/report/pass-report.js';

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;

export function containerId(seed: string): string {
  const hex = Buffer.from(seed).toString('hex');
  return hex.padEnd(64, 'a').slice(0, 64);
}

export function containerReport(overrides: Partial<ContainerReport> & { name: string }): ContainerReport {
  const id = overrides.containerId ?? containerId(overrides.name);
  return {
    containerId: id,
    driver: 'btrfs',
    usage: {
      containerId: id,
      driver: 'btrfs',
      sizeBytes: 64 * MIB,
      usedBytes: 10 * MIB,
      inodesUsed: 120,
      inodesTotal: null,
      fsType: null,
      detail: { qgroup: '0/257' },
    },
    ruleName: 'defaults',
    maxSizeBytes: 1 * GIB,
    decision: { kind: 'skip', containerId: id, reason: 'below-threshold', why: 'used 15% < 85%' },
    timeToFullSeconds: null,
    labelWarnings: [],
    backoffUntilMs: null,
    thresholdRatio: 0.85,
    cooldownUntilMs: null,
    ...overrides,
  };
}

/** One pass on a btrfs host: every state the alerts and dashboards need appears at least once. */
export function samplePassReport(startedAtMs: number = Date.now()): PassReport {
  const filling = containerReport({
    name: 'web-1',
    timeToFullSeconds: 1800,
    usage: {
      containerId: containerId('web-1'),
      driver: 'btrfs',
      sizeBytes: 64 * MIB,
      usedBytes: 40 * MIB,
      inodesUsed: 300,
      inodesTotal: null,
      fsType: null,
      detail: {},
    },
  });
  const grown = containerReport({
    name: 'db-1',
    usage: {
      containerId: containerId('db-1'),
      driver: 'btrfs',
      sizeBytes: 64 * MIB,
      usedBytes: 58 * MIB,
      inodesUsed: 80,
      inodesTotal: null,
      fsType: null,
      detail: {},
    },
    timeToFullSeconds: 120,
    decision: {
      kind: 'grow',
      containerId: containerId('db-1'),
      fromBytes: 64 * MIB,
      toBytes: 77 * MIB,
      trigger: 'threshold',
      why: 'used 91% >= 85%',
    },
    outcome: { kind: 'grown', fromBytes: 64 * MIB, toBytes: 77 * MIB, durationMs: 42 },
  });
  const atMax = containerReport({
    name: 'logs-1',
    maxSizeBytes: 64 * MIB,
    timeToFullSeconds: 600,
    usage: {
      containerId: containerId('logs-1'),
      driver: 'btrfs',
      sizeBytes: 64 * MIB,
      usedBytes: 60 * MIB,
      inodesUsed: 4000,
      inodesTotal: null,
      fsType: null,
      detail: {},
    },
    decision: { kind: 'skip', containerId: containerId('logs-1'), reason: 'at-max-size', why: 'at max' },
  });
  const failing = containerReport({
    name: 'cache-1',
    backoffUntilMs: startedAtMs + 60_000,
    decision: { kind: 'skip', containerId: containerId('cache-1'), reason: 'backoff', why: 'backoff 1m' },
    outcome: {
      kind: 'failed',
      fromBytes: 64 * MIB,
      toBytes: 77 * MIB,
      durationMs: 1500,
      error: 'btrfs qgroup limit: exit 1',
      step: 'btrfs qgroup limit',
      deviceState: 'unchanged',
    },
  });
  const unlimited = containerReport({
    name: 'nolimit-1',
    usage: null,
    maxSizeBytes: null,
    decision: { kind: 'skip', containerId: containerId('nolimit-1'), reason: 'no-limit', why: 'no size' },
  });
  return {
    startedAtMs,
    durationMs: 180,
    driver: 'btrfs',
    dryRun: false,
    pool: {
      name: '/var/lib/docker',
      kind: 'filesystem',
      dataUsedBytes: 3 * GIB,
      dataTotalBytes: 4 * GIB,
      metadataUsedBytes: null,
      metadataTotalBytes: null,
      mode: 'rw',
      needsCheck: false,
      committedBytes: 5 * 64 * MIB,
    },
    containers: [filling, grown, atMax, failing, unlimited],
    probes: [
      { name: 'docker inventory', ok: true, durationMs: 12 },
      { name: 'btrfs qgroup show', ok: true, durationMs: 35 },
      { name: 'btrfs filesystem usage', ok: true, durationMs: 20 },
    ],
    errors: [],
  };
}

/** A devicemapper thin-pool host: pool metadata and a non-rw mode appear. */
export function sampleThinPoolReport(startedAtMs: number = Date.now()): PassReport {
  const id = containerId('pg-1');
  return {
    startedAtMs,
    durationMs: 250,
    driver: 'devicemapper',
    dryRun: true,
    pool: {
      name: 'docker-thinpool',
      kind: 'thin-pool-lvm',
      dataUsedBytes: 90 * GIB,
      dataTotalBytes: 100 * GIB,
      metadataUsedBytes: 900 * MIB,
      metadataTotalBytes: 1 * GIB,
      mode: 'out_of_data_space',
      needsCheck: true,
      committedBytes: 150 * GIB,
    },
    poolAction: { kind: 'needed-but-disabled', fromBytes: 100 * GIB, toBytes: 120 * GIB },
    containers: [
      containerReport({
        name: 'pg-1',
        containerId: id,
        driver: 'devicemapper',
        usage: {
          containerId: id,
          driver: 'devicemapper',
          sizeBytes: 10 * GIB,
          usedBytes: 9 * GIB,
          inodesUsed: 50_000,
          inodesTotal: 655_360,
          fsType: 'xfs',
          detail: { device: 'docker-253:1-1234-abc' },
        },
        decision: {
          kind: 'skip',
          containerId: id,
          reason: 'dry-run',
          why: 'dry run',
          wouldGrow: { fromBytes: 10 * GIB, toBytes: 12 * GIB, trigger: 'threshold' },
        },
        outcome: { kind: 'planned', fromBytes: 10 * GIB, toBytes: 12 * GIB, steps: [['dmsetup', 'load']] },
      }),
    ],
    probes: [
      { name: 'docker inventory', ok: true, durationMs: 10 },
      { name: 'dmsetup status', ok: false, durationMs: 5000, error: 'timeout' },
    ],
    errors: ['dmsetup status timed out'],
  };
}
