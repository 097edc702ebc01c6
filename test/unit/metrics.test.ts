import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { PassReport } from '../../src/report/pass-report.js';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.js';
import { SKIP_REASONS } from '../../src/policy/types.js';
import { find, parseExposition, valueOf, type Sample } from './metrics-exposition.js';
import {
  containerId,
  containerReport,
  samplePassReport,
  sampleThinPoolReport,
} from './metrics-sample-report.js';

const MIB = 1024 ** 2;
const T0 = Date.parse('2026-11-27T12:00:00Z');

async function scrape(metrics: Metrics): Promise<Sample[]> {
  return parseExposition(await metrics.registry.metrics());
}

function newMetrics(): Metrics {
  return createMetrics({ processMetrics: false });
}

function emptyReport(startedAtMs: number, overrides: Partial<PassReport> = {}): PassReport {
  return {
    startedAtMs,
    durationMs: 10,
    driver: 'btrfs',
    dryRun: false,
    pool: null,
    containers: [],
    probes: [],
    errors: [],
    ...overrides,
  };
}

/** Every sample that carries per-container labels. */
function containerSamples(samples: readonly Sample[]): Sample[] {
  return samples.filter((sample) => sample.labels.container_id !== undefined);
}

describe('metrics from pass reports', () => {
  it('exports build info with the package version and the Node.js version', async () => {
    const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
    const samples = await scrape(newMetrics());
    expect(valueOf(samples, 'docker_autogrow_build_info', { version, node_version: process.version })).toBe(
      1,
    );
  });

  it('sets per-container gauges from the last pass, keyed by the short id and name', async () => {
    const metrics = newMetrics();
    metrics.applyPassReport(samplePassReport(T0));
    const samples = await scrape(metrics);
    const web = { container_id: containerId('web-1').slice(0, 12), container_name: 'web-1', driver: 'btrfs' };
    expect(valueOf(samples, 'docker_autogrow_container_size_bytes', web)).toBe(64 * MIB);
    expect(valueOf(samples, 'docker_autogrow_container_used_bytes', web)).toBe(40 * MIB);
    expect(valueOf(samples, 'docker_autogrow_container_max_size_bytes', web)).toBe(1024 * MIB);
    expect(valueOf(samples, 'docker_autogrow_container_inodes_used', web)).toBe(300);
    expect(valueOf(samples, 'docker_autogrow_container_time_to_full_seconds', web)).toBe(1800);
    expect(valueOf(samples, 'docker_autogrow_container_backoff_active', web)).toBe(0);
    expect(valueOf(samples, 'docker_autogrow_container_backoff_active', { container_name: 'cache-1' })).toBe(
      1,
    );
  });

  it('exports no series for values unknown in the last pass (no made-up zeros)', async () => {
    const metrics = newMetrics();
    metrics.applyPassReport(samplePassReport(T0));
    const samples = await scrape(metrics);
    // btrfs has no inode capacity; cache-1 is not filling; nolimit-1 has no usage at all
    expect(find(samples, 'docker_autogrow_container_inodes_capacity')).toEqual([]);
    expect(
      find(samples, 'docker_autogrow_container_time_to_full_seconds', { container_name: 'cache-1' }),
    ).toEqual([]);
    for (const name of ['container_size_bytes', 'container_used_bytes', 'container_max_size_bytes']) {
      expect(find(samples, `docker_autogrow_${name}`, { container_name: 'nolimit-1' })).toEqual([]);
    }
    // but the container is still known: its backoff state is exported
    expect(
      valueOf(samples, 'docker_autogrow_container_backoff_active', { container_name: 'nolimit-1' }),
    ).toBe(0);
    // a filesystem pool has no metadata space
    expect(find(samples, 'docker_autogrow_pool_metadata_used_bytes')).toEqual([]);
  });

  it("removes a destroyed container's series after the next pass, and at once on forgetContainer", async () => {
    const metrics = newMetrics();
    const report = samplePassReport(T0);
    metrics.applyPassReport(report);
    const before = containerSamples(await scrape(metrics));
    expect(before.filter((sample) => sample.labels.container_name === 'db-1').length).toBeGreaterThan(3);

    metrics.applyPassReport({
      ...report,
      startedAtMs: T0 + 1000,
      containers: report.containers.filter((container) => container.name !== 'db-1'),
    });
    const after = containerSamples(await scrape(metrics));
    expect(after.filter((sample) => sample.labels.container_name === 'db-1')).toEqual([]);
    expect(after.filter((sample) => sample.labels.container_name === 'web-1').length).toBeGreaterThan(3);

    metrics.forgetContainer(containerId('web-1')); // the destroy event gives the full id
    const forgotten = containerSamples(await scrape(metrics));
    expect(forgotten.filter((sample) => sample.labels.container_name === 'web-1')).toEqual([]);
    expect(forgotten.filter((sample) => sample.labels.container_name === 'logs-1').length).toBeGreaterThan(3);
  });

  it("keeps the other containers' series on a partial pass (one container's start event)", async () => {
    const metrics = newMetrics();
    const report = samplePassReport(T0);
    metrics.applyPassReport(report);
    const web = report.containers.find((container) => container.name === 'web-1')!;
    const writes = metrics.containerSeriesWrites();
    metrics.applyPassReport({
      ...report,
      startedAtMs: T0 + 1000,
      containers: [web],
      onlyContainerIds: [web.containerId],
    });
    expect(metrics.containerSeriesWrites()).toBe(writes); // web-1 unchanged, the others untouched
    const after = containerSamples(await scrape(metrics));
    expect(after.filter((sample) => sample.labels.container_name === 'db-1').length).toBeGreaterThan(3);
    expect(after.filter((sample) => sample.labels.container_name === 'web-1').length).toBeGreaterThan(3);
  });

  it("a partial pass (the fill guard's) leaves the pool, the pass counters and the last-pass time to whole passes", async () => {
    const metrics = newMetrics();
    const report = samplePassReport(T0);
    metrics.applyPassReport(report);
    const before = await scrape(metrics);
    const web = report.containers.find((container) => container.name === 'web-1')!;
    metrics.applyPassReport({
      ...report,
      startedAtMs: T0 + 500,
      durationMs: 3,
      // the pool a one-container pass sees: committed bytes of that container alone
      pool: report.pool ? { ...report.pool, committedBytes: 1 } : null,
      containers: [web],
      onlyContainerIds: [web.containerId],
    });
    const after = await scrape(metrics);
    for (const name of [
      'docker_autogrow_passes_total',
      'docker_autogrow_last_pass_timestamp_seconds',
      'docker_autogrow_last_pass_duration_seconds',
      'docker_autogrow_pool_committed_bytes',
    ]) {
      expect(find(after, name), name).toEqual(find(before, name));
    }
    const skips = (samples: Sample[]) =>
      find(samples, 'docker_autogrow_skip_decisions_total').reduce((sum, sample) => sum + sample.value, 0);
    expect(skips(after)).toBe(skips(before));
  });

  it('writes only the series that changed: unchanged values are not re-set, changes and removals are', async () => {
    const metrics = newMetrics();
    const report = samplePassReport(T0);
    metrics.applyPassReport(report);
    const firstPassWrites = metrics.containerSeriesWrites();
    // the first pass writes every series it exports
    expect(firstPassWrites).toBe(containerSamples(await scrape(metrics)).length);

    // the same values again: nothing is written, and every per-container sample is as before
    const before = containerSamples(await scrape(metrics));
    metrics.applyPassReport({ ...report, startedAtMs: T0 + 1000 });
    expect(metrics.containerSeriesWrites()).toBe(firstPassWrites);
    expect(containerSamples(await scrape(metrics))).toEqual(before);

    // one value changes: one write, and the scrape shows it
    const web = report.containers.find((container) => container.name === 'web-1')!;
    const webUsed = { ...web, usage: { ...web.usage!, usedBytes: 41 * MIB } };
    const others = report.containers.filter((container) => container !== web);
    metrics.applyPassReport({ ...report, startedAtMs: T0 + 2000, containers: [webUsed, ...others] });
    expect(metrics.containerSeriesWrites()).toBe(firstPassWrites + 1);
    let samples = await scrape(metrics);
    expect(valueOf(samples, 'docker_autogrow_container_used_bytes', { container_name: 'web-1' })).toBe(
      41 * MIB,
    );

    // a value becomes unknown: its series goes (one write), the container's other series stay
    const webNotFilling = { ...webUsed, timeToFullSeconds: null };
    metrics.applyPassReport({ ...report, startedAtMs: T0 + 3000, containers: [webNotFilling, ...others] });
    expect(metrics.containerSeriesWrites()).toBe(firstPassWrites + 2);
    samples = await scrape(metrics);
    expect(
      find(samples, 'docker_autogrow_container_time_to_full_seconds', { container_name: 'web-1' }),
    ).toEqual([]);
    expect(valueOf(samples, 'docker_autogrow_container_size_bytes', { container_name: 'web-1' })).toBe(
      64 * MIB,
    );

    // a container disappears: each of its series is removed once, in that pass only
    const dbSeries = containerSamples(samples).filter((sample) => sample.labels.container_name === 'db-1');
    const withoutDb = others.filter((container) => container.name !== 'db-1');
    metrics.applyPassReport({ ...report, startedAtMs: T0 + 4000, containers: [webNotFilling, ...withoutDb] });
    expect(metrics.containerSeriesWrites()).toBe(firstPassWrites + 2 + dbSeries.length);
    samples = await scrape(metrics);
    expect(containerSamples(samples).filter((sample) => sample.labels.container_name === 'db-1')).toEqual([]);
    metrics.applyPassReport({ ...report, startedAtMs: T0 + 5000, containers: [webNotFilling, ...withoutDb] });
    metrics.forgetContainer(containerId('db-1')); // its destroy event after the pass removed it
    expect(metrics.containerSeriesWrites()).toBe(firstPassWrites + 2 + dbSeries.length);
  });

  it('drops the old series when a container is renamed', async () => {
    const metrics = newMetrics();
    const id = containerId('renamed');
    metrics.applyPassReport(
      emptyReport(T0, { containers: [containerReport({ name: 'old-name', containerId: id })] }),
    );
    metrics.applyPassReport(
      emptyReport(T0 + 1000, { containers: [containerReport({ name: 'new-name', containerId: id })] }),
    );
    const names = new Set(
      containerSamples(await scrape(metrics)).map((sample) => sample.labels.container_name),
    );
    expect([...names]).toEqual(['new-name']);
  });

  it('keeps label sets bounded: only id, name and driver per container, series bounded by live containers', async () => {
    const metrics = newMetrics();
    const live = new Map<string, ReturnType<typeof containerReport>>();
    // 200 passes of churn: containers come and go, at most 20 alive at once
    for (let pass = 0; pass < 200; pass += 1) {
      const created = `c-${pass}`;
      live.set(created, containerReport({ name: created, timeToFullSeconds: pass % 3 === 0 ? 60 : null }));
      if (live.size > 20) live.delete([...live.keys()][pass % live.size] as string);
      metrics.applyPassReport(emptyReport(T0 + pass * 1000, { containers: [...live.values()] }));
    }
    const samples = await scrape(metrics);
    const perContainer = containerSamples(samples);
    const containerNames = new Set(perContainer.map((sample) => sample.labels.container_name));
    expect(containerNames).toEqual(new Set(live.keys()));
    // 7 gauges at most per container (inodes capacity and time to full may be absent)
    expect(perContainer.length).toBeLessThanOrEqual(live.size * 7);
    for (const sample of perContainer) {
      expect(Object.keys(sample.labels).sort()).toEqual(['container_id', 'container_name', 'driver']);
      expect(sample.labels.container_id).toMatch(/^[0-9a-f]{12}$/);
    }
    const allowed = new Set(['container_id', 'container_name', 'driver', 'pool', 'mode', 'probe', 'reason']);
    for (const label of ['trigger', 'result', 'le', 'version', 'node_version', 'kind', 'step'])
      allowed.add(label);
    for (const sample of samples) {
      for (const label of Object.keys(sample.labels)) expect(allowed).toContain(label);
    }
  });

  it('counts decisions by skip reason and by grow trigger, every reason present from the start', async () => {
    const metrics = newMetrics();
    const initial = await scrape(metrics);
    for (const reason of SKIP_REASONS) {
      expect(valueOf(initial, 'docker_autogrow_skip_decisions_total', { reason })).toBe(0);
    }
    metrics.applyPassReport(samplePassReport(T0));
    metrics.applyPassReport(samplePassReport(T0 + 1000));
    const samples = await scrape(metrics);
    expect(valueOf(samples, 'docker_autogrow_skip_decisions_total', { reason: 'below-threshold' })).toBe(2);
    expect(valueOf(samples, 'docker_autogrow_skip_decisions_total', { reason: 'at-max-size' })).toBe(2);
    expect(valueOf(samples, 'docker_autogrow_skip_decisions_total', { reason: 'backoff' })).toBe(2);
    expect(valueOf(samples, 'docker_autogrow_skip_decisions_total', { reason: 'no-limit' })).toBe(2);
    expect(valueOf(samples, 'docker_autogrow_skip_decisions_total', { reason: 'cooldown' })).toBe(0);
    expect(valueOf(samples, 'docker_autogrow_grow_decisions_total', { trigger: 'threshold' })).toBe(2);
    expect(valueOf(samples, 'docker_autogrow_grow_decisions_total', { trigger: 'predicted' })).toBe(0);
  });

  it('counts resizes by driver and result, bytes grown and their durations', async () => {
    const metrics = newMetrics();
    metrics.applyPassReport(samplePassReport(T0));
    const samples = await scrape(metrics);
    const btrfs = { driver: 'btrfs' };
    expect(valueOf(samples, 'docker_autogrow_resizes_total', { ...btrfs, result: 'grown' })).toBe(1);
    expect(valueOf(samples, 'docker_autogrow_resizes_total', { ...btrfs, result: 'failed' })).toBe(1);
    expect(valueOf(samples, 'docker_autogrow_resizes_total', { ...btrfs, result: 'noop' })).toBe(0);
    expect(
      valueOf(samples, 'docker_autogrow_grow_failures_total', { ...btrfs, step: 'btrfs qgroup limit' }),
    ).toBe(1);
    expect(valueOf(samples, 'docker_autogrow_grown_bytes_total', btrfs)).toBe(13 * MIB);
    expect(valueOf(samples, 'docker_autogrow_resize_duration_seconds_count', btrfs)).toBe(2);
    expect(valueOf(samples, 'docker_autogrow_resize_duration_seconds_sum', btrfs)).toBeCloseTo(1.542, 6);
    expect(valueOf(samples, 'docker_autogrow_resize_duration_seconds_bucket', { ...btrfs, le: '0.05' })).toBe(
      1,
    );
    expect(valueOf(samples, 'docker_autogrow_resize_duration_seconds_bucket', { ...btrfs, le: '2.5' })).toBe(
      2,
    );
    // only the host's own driver is zero-initialised
    expect(find(samples, 'docker_autogrow_resizes_total', { driver: 'devicemapper' })).toEqual([]);
  });

  it('does not time planned (dry-run) resizes, and counts pool actions', async () => {
    const metrics = newMetrics();
    metrics.applyPassReport(sampleThinPoolReport(T0));
    const samples = await scrape(metrics);
    const dm = { driver: 'devicemapper' };
    expect(valueOf(samples, 'docker_autogrow_resizes_total', { ...dm, result: 'planned' })).toBe(1);
    expect(valueOf(samples, 'docker_autogrow_resize_duration_seconds_count', dm)).toBe(0);
    expect(valueOf(samples, 'docker_autogrow_grown_bytes_total', dm)).toBe(0);
    expect(valueOf(samples, 'docker_autogrow_pool_resizes_total', { result: 'needed-but-disabled' })).toBe(1);
    expect(valueOf(samples, 'docker_autogrow_pool_resizes_total', { result: 'grown' })).toBe(0);
    expect(valueOf(samples, 'docker_autogrow_dry_run')).toBe(1);
  });

  it('exports pool space, a mode state set with exactly one 1, and needs_check', async () => {
    const metrics = newMetrics();
    metrics.applyPassReport(sampleThinPoolReport(T0));
    const samples = await scrape(metrics);
    const pool = { pool: 'docker-thinpool' };
    expect(valueOf(samples, 'docker_autogrow_pool_data_used_bytes', pool)).toBe(90 * 1024 * MIB);
    expect(valueOf(samples, 'docker_autogrow_pool_data_size_bytes', pool)).toBe(100 * 1024 * MIB);
    expect(valueOf(samples, 'docker_autogrow_pool_metadata_used_bytes', pool)).toBe(900 * MIB);
    expect(valueOf(samples, 'docker_autogrow_pool_metadata_size_bytes', pool)).toBe(1024 * MIB);
    expect(valueOf(samples, 'docker_autogrow_pool_committed_bytes', pool)).toBe(150 * 1024 * MIB);
    expect(valueOf(samples, 'docker_autogrow_pool_needs_check', pool)).toBe(1);
    expect(valueOf(samples, 'docker_autogrow_container_inodes_capacity', { container_name: 'pg-1' })).toBe(
      655_360,
    );
    const modes = find(samples, 'docker_autogrow_pool_mode', pool);
    expect(modes.map((sample) => sample.labels.mode).sort()).toEqual([
      'fail',
      'out_of_data_space',
      'ro',
      'rw',
    ]);
    expect(modes.filter((sample) => sample.value === 1).map((sample) => sample.labels.mode)).toEqual([
      'out_of_data_space',
    ]);
  });

  it('removes pool series when the pool is no longer observed or changes name', async () => {
    const metrics = newMetrics();
    metrics.applyPassReport(sampleThinPoolReport(T0));
    metrics.applyPassReport(samplePassReport(T0 + 1000));
    let samples = await scrape(metrics);
    expect(find(samples, 'docker_autogrow_pool_data_size_bytes', { pool: 'docker-thinpool' })).toEqual([]);
    expect(find(samples, 'docker_autogrow_pool_mode', { pool: 'docker-thinpool' })).toEqual([]);
    expect(find(samples, 'docker_autogrow_pool_metadata_used_bytes')).toEqual([]);
    expect(valueOf(samples, 'docker_autogrow_pool_data_size_bytes', { pool: '/var/lib/docker' })).toBe(
      4096 * MIB,
    );
    metrics.applyPassReport(emptyReport(T0 + 2000));
    samples = await scrape(metrics);
    expect(
      samples.filter((sample) => sample.name.startsWith('docker_autogrow_pool_') && sample.labels.pool),
    ).toEqual([]);
  });

  it('exports per-probe success and duration and removes probes that stopped running', async () => {
    const metrics = newMetrics();
    metrics.applyPassReport(sampleThinPoolReport(T0));
    let samples = await scrape(metrics);
    expect(valueOf(samples, 'docker_autogrow_probe_success', { probe: 'dmsetup status' })).toBe(0);
    expect(valueOf(samples, 'docker_autogrow_probe_duration_seconds', { probe: 'dmsetup status' })).toBe(5);
    expect(valueOf(samples, 'docker_autogrow_probe_success', { probe: 'docker inventory' })).toBe(1);
    metrics.applyPassReport(samplePassReport(T0 + 1000));
    samples = await scrape(metrics);
    expect(find(samples, 'docker_autogrow_probe_success', { probe: 'dmsetup status' })).toEqual([]);
    expect(valueOf(samples, 'docker_autogrow_probe_success', { probe: 'btrfs qgroup show' })).toBe(1);
  });

  it('advances the last successful pass timestamp only for passes without failures', async () => {
    const metrics = newMetrics();
    let samples = await scrape(metrics);
    // never: 0, so `time() - x` is large and the stale-pass alert fires if no pass ever completes
    expect(valueOf(samples, 'docker_autogrow_last_successful_pass_timestamp_seconds')).toBe(0);
    metrics.applyPassReport(samplePassReport(T0));
    metrics.applyPassReport(sampleThinPoolReport(T0 + 5000));
    samples = await scrape(metrics);
    expect(valueOf(samples, 'docker_autogrow_last_successful_pass_timestamp_seconds')).toBe(T0 / 1000);
    expect(valueOf(samples, 'docker_autogrow_last_pass_timestamp_seconds')).toBe(T0 / 1000 + 5);
    expect(valueOf(samples, 'docker_autogrow_last_pass_duration_seconds')).toBe(0.25);
    expect(valueOf(samples, 'docker_autogrow_passes_total')).toBe(2);
    expect(valueOf(samples, 'docker_autogrow_pass_errors_total')).toBe(1);
  });

  it('tracks the event stream, journal errors and label warnings', async () => {
    const metrics = newMetrics();
    expect(valueOf(await scrape(metrics), 'docker_autogrow_event_stream_connected')).toBe(0);
    metrics.setEventStreamConnected(true);
    metrics.incEventStreamReconnects();
    metrics.incEventStreamReconnects();
    metrics.incJournalErrors();
    metrics.incLabelWarnings(3);
    metrics.incLabelWarnings(0);
    const samples = await scrape(metrics);
    expect(valueOf(samples, 'docker_autogrow_event_stream_connected')).toBe(1);
    expect(valueOf(samples, 'docker_autogrow_event_stream_reconnects_total')).toBe(2);
    expect(valueOf(samples, 'docker_autogrow_journal_errors_total')).toBe(1);
    expect(valueOf(samples, 'docker_autogrow_label_warnings_total')).toBe(3);
  });

  it("exports the fill guard's counters as totals since start, and 0 guarded when the guard is off", async () => {
    const metrics = newMetrics();
    metrics.setGuardStats({ guarded: 2, looks: 40, evaluations: 1 });
    metrics.setGuardStats({ guarded: 1, looks: 55, evaluations: 3 });
    let samples = await scrape(metrics);
    expect(valueOf(samples, 'docker_autogrow_guard_containers')).toBe(1);
    expect(valueOf(samples, 'docker_autogrow_guard_looks_total')).toBe(55);
    expect(valueOf(samples, 'docker_autogrow_guard_evaluations_total')).toBe(3);
    metrics.setGuardStats(null);
    samples = await scrape(metrics);
    expect(valueOf(samples, 'docker_autogrow_guard_containers')).toBe(0);
  });

  it('serves the same values on every scrape until the next pass (a scrape computes nothing)', async () => {
    const metrics = newMetrics();
    metrics.applyPassReport(samplePassReport(T0));
    const first = await metrics.registry.metrics();
    const second = await metrics.registry.metrics();
    expect(second).toBe(first);
  });

  it('keeps registries independent (no global state)', async () => {
    const a = newMetrics();
    const b = newMetrics();
    a.applyPassReport(samplePassReport(T0));
    expect(find(await scrape(b), 'docker_autogrow_container_size_bytes')).toEqual([]);
    expect(find(await scrape(a), 'docker_autogrow_container_size_bytes').length).toBe(4);
  });

  it('adds process and Node.js metrics when asked (the default)', async () => {
    const metrics = createMetrics();
    const names = metrics.metricNames();
    expect(names).toContain('process_cpu_seconds_total');
    expect(names).toContain('nodejs_eventloop_lag_seconds');
    expect(
      newMetrics()
        .metricNames()
        .every((name) => name.startsWith('docker_autogrow_')),
    ).toBe(true);
  });
});
