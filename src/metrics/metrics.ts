/**
 * Every Prometheus metric the agent exports, defined in this module as tables (src/metrics/define.ts
 * turns them into prom-client objects). Callers never touch label maps: they hand over a {@link PassReport} or call a
 * domain verb, and this module turns it into gauges and counters.
 *
 * Values are copied from the last pass when the pass ends; a scrape only serialises what is
 * already in memory and never runs a command (HELP texts say "from the last pass").
 *
 * Conventions (docs/metrics.md has the full reference):
 * - prefix `docker_autogrow_`, base units (bytes, seconds), counters end in `_total`;
 * - per-container series carry `container_id` (the 12-character short id, as `docker ps` shows
 *   it), `container_name` and `driver`, nothing else: no image names and no Docker labels, so the
 *   series count is bounded by the containers alive on the host; a container's series are removed
 *   when it is destroyed or no longer seen in a pass;
 * - a value that is unknown in the last pass has no series (absent), never a made-up 0;
 * - counters with a fixed label set (skip reasons, resize results) start at 0 so `increase()`
 *   and alerts work before the first event.
 */
import { packageVersion } from '../util/package-version.js';
import { UNKNOWN_GROW_STEP } from '../storage/grow-error.js';
import { METRIC_PREFIX, Registry, collectProcessMetrics, defineMetrics, type Gauge } from './define.js';
import type { ContainerReport, PassReport, PoolAction } from '../report/pass-report.js';
import { SKIP_REASONS, type GrowTrigger } from '../policy/types.js';
import type { PoolMode, StorageDriverName } from '../storage/types.js';
import { createDataFilesystemMetrics, type DataFilesystemMetrics } from './data-filesystem-metrics.js';
import { createReclaimMetrics, type ReclaimMetrics } from './reclaim-metrics.js';

export { METRIC_PREFIX };

/** The pool modes exported as a state set: exactly one of them is 1 for a pool. */
export const POOL_MODES = ['rw', 'ro', 'out_of_data_space', 'fail'] as const satisfies readonly PoolMode[];

/** Results of a container resize, the `result` label of `docker_autogrow_resizes_total`. */
export const RESIZE_RESULTS = ['grown', 'noop', 'failed', 'planned', 'container-gone'] as const;

export const POOL_RESIZE_RESULTS = [
  'grown',
  'failed',
  'planned',
  'needed-but-disabled',
] as const satisfies readonly PoolAction['kind'][];

export const GROW_TRIGGERS = [
  'threshold',
  'inodes',
  'predicted',
  'manual',
] as const satisfies readonly GrowTrigger[];

/** Seconds: grows take milliseconds (quota) to tens of seconds (dm suspend + xfs_growfs on a busy host). */
const RESIZE_DURATION_BUCKETS_SECONDS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** States of `docker_autogrow_devicemapper_unpersisted_devices` (a devicemapper container's `detail.persistence`). */
export const DM_PERSISTENCE_STATES = ['held', 'unheld'] as const;

const LINT_FAILING_DEFAULT_METRICS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** Docker names are `[a-zA-Z0-9][a-zA-Z0-9_.-]*`; anything longer than this is cut so a label stays small. */
const MAX_CONTAINER_NAME_LENGTH = 128;

/** The registry seen by the HTTP server: serialise the metrics, and the content type to send them with. */
export interface MetricsRegistry {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export interface CreateMetricsOptions {
  /** A private registry (default: a new one). Never the prom-client global registry. */
  registry?: Registry;
  /** Agent version for build_info (default: package.json). */
  version?: string;
  /** Node.js version for build_info (default: process.version). */
  nodeVersion?: string;
  /** Export `process_*` and `nodejs_*` (prom-client default metrics); default true. */
  processMetrics?: boolean;
}

export interface Metrics {
  readonly registry: MetricsRegistry;
  /** Copy everything observed, decided and done in one pass into the metrics. */
  applyPassReport(report: PassReport): void;
  /** Docker's event stream went up (true) or down (false). */
  setEventStreamConnected(connected: boolean): void;
  incEventStreamReconnects(): void;
  incJournalErrors(): void;
  /**
   * The fill guard's counters as they stand (src/agent/guard.ts); null when the guard is off.
   * Totals are since agent start: the counters advance by the difference.
   */
  setGuardStats(stats: { guarded: number; looks: number; evaluations: number } | null): void;
  /** Count invalid autogrow label values that were ignored (call when labels are parsed, not per pass). */
  incLabelWarnings(count: number): void;
  /** A container was destroyed: remove its series now (full or short id). */
  forgetContainer(containerId: string): void;
  /** Names of every metric this module registered (for the docs test). */
  metricNames(): string[];
  /**
   * Per-container series written so far (each set or removal of one series). A pass writes only
   * the series whose value changed, so this shows tests and benchmarks what a pass cost.
   */
  containerSeriesWrites(): number;
  /** The filesystem under Docker's data root (src/metrics/data-filesystem-metrics.ts). */
  readonly dataFilesystem: DataFilesystemMetrics;
  /** The reclaim ladder (src/metrics/reclaim-metrics.ts). */
  readonly reclaim: ReclaimMetrics;
}

type ContainerLabels = { container_id: string; container_name: string; driver: string };

/** The per-container gauges: at most one series each per container. */
const CONTAINER_GAUGES = [
  'size',
  'used',
  'maxSize',
  'inodesUsed',
  'inodesCapacity',
  'timeToFull',
  'backoffActive',
] as const;
type ContainerGauge = (typeof CONTAINER_GAUGES)[number];

/** Values of a container that has no series yet (every key present: one object shape for V8). */
function noSeries(): Record<ContainerGauge, number | undefined> {
  return {
    size: undefined,
    used: undefined,
    maxSize: undefined,
    inodesUsed: undefined,
    inodesCapacity: undefined,
    timeToFull: undefined,
    backoffActive: undefined,
  };
}

/**
 * What one container exports now: its labels and the value of each of its series (absent: no
 * series). prom-client hashes the label set on every set and remove, which cost tens of
 * milliseconds per pass at 1000 containers when every series was re-set each pass; remembering
 * the exported values lets a pass write only the series that changed. The exposition stays what
 * re-setting everything gives: setting an existing series only replaces its value, in place.
 */
interface ExportedContainer {
  labels: ContainerLabels;
  /** Undefined: no series. */
  values: Record<ContainerGauge, number | undefined>;
  /** The number of the last pass that reported the container. */
  lastPass: number;
}

/** The 12-character short id shown by `docker ps`; unique on one host in practice. */
export function shortContainerId(containerId: string): string {
  return containerId.slice(0, 12);
}

function containerNameLabel(name: string): string {
  const bare = name.startsWith('/') ? name.slice(1) : name;
  return bare.slice(0, MAX_CONTAINER_NAME_LENGTH);
}

export function createMetrics(options: CreateMetricsOptions = {}): Metrics {
  const registry = options.registry ?? new Registry();

  const CACHED = 'From the last pass.';
  const CONTAINER = ['container_id', 'container_name', 'driver'] as const;
  const POOL = ['pool'] as const;

  const self = defineMetrics(registry, {
    buildInfo: {
      type: 'gauge',
      name: 'build_info',
      help: 'Always 1; labels carry the agent version and the Node.js version it runs on.',
      labels: ['version', 'node_version'],
    },
    passes: {
      type: 'counter',
      name: 'passes_total',
      help: 'Whole-host observation passes completed (one-container passes of the fill guard are not counted).',
    },
    passErrors: {
      type: 'counter',
      name: 'pass_errors_total',
      help: 'Pass-level problems reported by passes that went on (e.g. a pool probe failed).',
    },
    lastPassTimestamp: {
      type: 'gauge',
      name: 'last_pass_timestamp_seconds',
      help: 'Unix time when the last completed pass started.',
    },
    lastSuccessfulPassTimestamp: {
      type: 'gauge',
      name: 'last_successful_pass_timestamp_seconds',
      help: 'Unix time when the last pass whose probes all succeeded and that had no pass-level error started.',
    },
    lastPassDuration: {
      type: 'gauge',
      name: 'last_pass_duration_seconds',
      help: 'Wall time of the last pass (observe, decide, grow).',
    },
    probeSuccess: {
      type: 'gauge',
      name: 'probe_success',
      help: `1 when the probe (one batched command or API call per pass) succeeded, else 0. ${CACHED}`,
      labels: ['probe'],
    },
    probeDuration: {
      type: 'gauge',
      name: 'probe_duration_seconds',
      help: `Wall time of the probe. ${CACHED}`,
      labels: ['probe'],
    },
    dryRun: {
      type: 'gauge',
      name: 'dry_run',
      help: `1 when the agent decides and reports but never changes storage. ${CACHED}`,
    },
    eventStreamConnected: {
      type: 'gauge',
      name: 'event_stream_connected',
      help: '1 while the Docker event stream is connected, else 0.',
    },
    eventStreamReconnects: {
      type: 'counter',
      name: 'event_stream_reconnects_total',
      help: 'Reconnections of the Docker event stream after it dropped.',
    },
    guardContainers: {
      type: 'gauge',
      name: 'guard_containers',
      help: 'Containers the fill guard re-reads between passes (small headroom against guard.peakWriteRate); 0 when the guard is off.',
    },
    guardLooks: {
      type: 'counter',
      name: 'guard_looks_total',
      help: 'Process-free reads of one container by the fill guard.',
    },
    guardEvaluations: {
      type: 'counter',
      name: 'guard_evaluations_total',
      help: 'One-container passes the fill guard asked for (a container at its threshold or filling faster than the pass interval).',
    },
    journalErrors: {
      type: 'counter',
      name: 'journal_errors_total',
      help: 'Failed writes to the action journal.',
    },
    labelWarnings: {
      type: 'counter',
      name: 'label_warnings_total',
      help: 'Invalid autogrow label values on containers that were ignored.',
    },
  });
  const pools = defineMetrics(registry, {
    dataUsed: {
      type: 'gauge',
      name: 'pool_data_used_bytes',
      help: `Data space used in the thin pool or backing filesystem. ${CACHED}`,
      labels: POOL,
    },
    dataSize: {
      type: 'gauge',
      name: 'pool_data_size_bytes',
      help: `Data space of the thin pool or backing filesystem. ${CACHED}`,
      labels: POOL,
    },
    metadataUsed: {
      type: 'gauge',
      name: 'pool_metadata_used_bytes',
      help: `Metadata space used in the thin pool (absent for filesystems). ${CACHED}`,
      labels: POOL,
    },
    metadataSize: {
      type: 'gauge',
      name: 'pool_metadata_size_bytes',
      help: `Metadata space of the thin pool (absent for filesystems). ${CACHED}`,
      labels: POOL,
    },
    committed: {
      type: 'gauge',
      name: 'pool_committed_bytes',
      help: `Sum of container sizes (thin device lengths or quota limits) promised from the pool. ${CACHED}`,
      labels: POOL,
    },
    mode: {
      type: 'gauge',
      name: 'pool_mode',
      help: `State set: 1 for the pool's current mode (rw, ro, out_of_data_space, fail), 0 for the others. ${CACHED}`,
      labels: ['pool', 'mode'],
    },
    needsCheck: {
      type: 'gauge',
      name: 'pool_needs_check',
      help: `1 when the thin pool metadata has the needs_check flag (the pool must be repaired offline). ${CACHED}`,
      labels: POOL,
    },
    resizes: {
      type: 'counter',
      name: 'pool_resizes_total',
      help: 'Pool grow actions by result: grown, failed, planned (dry run), needed-but-disabled.',
      labels: ['result'],
    },
  });
  const perContainerGauges = defineMetrics(registry, {
    size: {
      type: 'gauge',
      name: 'container_size_bytes',
      help: `Current size of the container's writable layer: thin device length or quota limit. ${CACHED}`,
      labels: CONTAINER,
    },
    used: {
      type: 'gauge',
      name: 'container_used_bytes',
      help: `Bytes used in the container's writable layer. ${CACHED}`,
      labels: CONTAINER,
    },
    maxSize: {
      type: 'gauge',
      name: 'container_max_size_bytes',
      help: `Largest size policy lets the container grow to. ${CACHED}`,
      labels: CONTAINER,
    },
    inodesUsed: {
      type: 'gauge',
      name: 'container_inodes_used',
      help: `Inodes used in the container's writable layer. ${CACHED}`,
      labels: CONTAINER,
    },
    inodesCapacity: {
      type: 'gauge',
      name: 'container_inodes_capacity',
      help: `Inodes available in total to the container's writable layer. ${CACHED}`,
      labels: CONTAINER,
    },
    timeToFull: {
      type: 'gauge',
      name: 'container_time_to_full_seconds',
      help: `Estimated seconds until the writable layer is full at the recent fill rate; absent when not filling. ${CACHED}`,
      labels: CONTAINER,
    },
    backoffActive: {
      type: 'gauge',
      name: 'container_backoff_active',
      help: `1 while grows of the container are paused after a failed grow, else 0. ${CACHED}`,
      labels: CONTAINER,
    },
  }) satisfies Record<ContainerGauge, Gauge<string>>;
  const actions = defineMetrics(registry, {
    skipDecisions: {
      type: 'counter',
      name: 'skip_decisions_total',
      help: 'Per-container decisions not to grow, by reason (one decision per container per pass).',
      labels: ['reason'],
    },
    growDecisions: {
      type: 'counter',
      name: 'grow_decisions_total',
      help: 'Per-container decisions to grow, by trigger.',
      labels: ['trigger'],
    },
    resizes: {
      type: 'counter',
      name: 'resizes_total',
      help: 'Container resizes by driver and result: grown, noop (already large enough), failed, planned (dry run), container-gone (removed by Docker during the grow; not a failure).',
      labels: ['driver', 'result'],
    },
    grownBytes: {
      type: 'counter',
      name: 'grown_bytes_total',
      help: 'Bytes added to containers by successful resizes.',
      labels: ['driver'],
    },
    resizeDuration: {
      type: 'histogram',
      name: 'resize_duration_seconds',
      help: 'Wall time of container resizes that ran (grown, noop or failed).',
      labels: ['driver'],
      buckets: RESIZE_DURATION_BUCKETS_SECONDS,
    },
  });
  // devicemapper grows that dockerd does not cache yet (src/storage/devicemapper/persistence.ts)
  const dmPersistence = defineMetrics(registry, {
    unpersisted: {
      type: 'gauge',
      name: 'devicemapper_unpersisted_devices',
      help: `Running devicemapper containers grown beyond the size dockerd caches for them, by state: held (a kernel hold keeps the grown size over stop and start until dockerd restarts) or unheld (the next stop and start fails unless the agent re-creates the device). ${CACHED}`,
      labels: ['state'],
    },
  });
  // failed container grows by the step that broke (src/storage/grow-error.ts); a series appears
  // with its first failure, since the steps are the backend's to name
  const { growFailures } = defineMetrics(registry, {
    growFailures: {
      type: 'counter',
      name: 'grow_failures_total',
      help: 'Failed container grows by driver and the step that failed (e.g. dmsetup resume, btrfs qgroup limit, read back; unknown when the backend did not say).',
      labels: ['driver', 'step'],
    },
  });
  const { buildInfo, passes, passErrors, lastPassTimestamp, lastSuccessfulPassTimestamp } = self;
  const { lastPassDuration, probeSuccess, probeDuration, dryRun, eventStreamConnected } = self;
  const { eventStreamReconnects, guardContainers, guardLooks, guardEvaluations } = self;
  const { journalErrors, labelWarnings } = self;
  let guardLooksCounted = 0;
  let guardEvaluationsCounted = 0;
  const { skipDecisions, growDecisions, resizes, grownBytes, resizeDuration } = actions;
  const poolResizes = pools.resizes;
  const poolMode = pools.mode;

  if (options.processMetrics ?? true) {
    collectProcessMetrics(registry);
    // Gauges named `_total` break the naming rules (`promtool check metrics` flags them); each is
    // only the sum of the per-type gauge without the suffix, e.g. sum(nodejs_active_handles).
    for (const misnamed of LINT_FAILING_DEFAULT_METRICS) registry.removeSingleMetric(misnamed);
  }

  // --- initial values -------------------------------------------------------------------------
  buildInfo.set(
    { version: options.version ?? packageVersion(), node_version: options.nodeVersion ?? process.version },
    1,
  );
  eventStreamConnected.set(0);
  dryRun.set(0);
  for (const reason of SKIP_REASONS) skipDecisions.inc({ reason }, 0);
  for (const trigger of GROW_TRIGGERS) growDecisions.inc({ trigger }, 0);
  for (const result of POOL_RESIZE_RESULTS) poolResizes.inc({ result }, 0);
  const driversSeen = new Set<StorageDriverName>();
  /** Zero the per-driver series once the host's driver is known (not for drivers this host cannot have). */
  function initDriver(driver: StorageDriverName): void {
    if (driversSeen.has(driver)) return;
    driversSeen.add(driver);
    for (const result of RESIZE_RESULTS) resizes.inc({ driver, result }, 0);
    grownBytes.inc({ driver }, 0);
    resizeDuration.zero({ driver });
  }

  // --- state needed to remove series that must disappear --------------------------------------
  /** Exported containers by short container id. */
  const exportedContainers = new Map<string, ExportedContainer>();
  let passNumber = 0;
  let containerSeriesWrites = 0;
  let exportedPool: string | null = null;
  const exportedProbes = new Set<string>();

  function removeContainerSeries(exported: ExportedContainer): void {
    for (const gauge of CONTAINER_GAUGES) {
      if (exported.values[gauge] === undefined) continue;
      perContainerGauges[gauge].remove(exported.labels);
      exported.values[gauge] = undefined;
      containerSeriesWrites += 1;
    }
  }

  /** Sets the series to `value`, or removes it when the value is unknown; nothing when unchanged. */
  function setOrRemove(
    exported: ExportedContainer,
    gauge: ContainerGauge,
    value: number | null | undefined,
  ): void {
    const next = value === null || value === undefined || !Number.isFinite(value) ? undefined : value;
    if (exported.values[gauge] === next) return;
    if (next === undefined) perContainerGauges[gauge].remove(exported.labels);
    else perContainerGauges[gauge].set(exported.labels, next);
    exported.values[gauge] = next;
    containerSeriesWrites += 1;
  }

  /** Decisions of one pass, counted here and added to the counters once per label value. */
  const skipsThisPass = new Map<string, number>();
  const growsThisPass = new Map<string, number>();
  function tally(counts: Map<string, number>, key: string): void {
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }

  function applyContainer(container: ContainerReport): void {
    const id = shortContainerId(container.containerId);
    const containerName = containerNameLabel(container.name);
    let exported = exportedContainers.get(id);
    if (
      exported === undefined ||
      exported.labels.container_name !== containerName ||
      exported.labels.driver !== container.driver
    ) {
      // a renamed container: drop the series under the old name so no stale twin stays behind
      if (exported) removeContainerSeries(exported);
      exported = {
        labels: { container_id: id, container_name: containerName, driver: container.driver },
        values: noSeries(),
        lastPass: passNumber,
      };
      exportedContainers.set(id, exported);
    }
    exported.lastPass = passNumber;

    const usage = container.usage;
    setOrRemove(exported, 'size', usage?.sizeBytes);
    setOrRemove(exported, 'used', usage?.usedBytes);
    setOrRemove(exported, 'inodesUsed', usage?.inodesUsed);
    setOrRemove(exported, 'inodesCapacity', usage?.inodesTotal);
    setOrRemove(exported, 'maxSize', container.maxSizeBytes);
    setOrRemove(exported, 'timeToFull', container.timeToFullSeconds);
    setOrRemove(exported, 'backoffActive', container.backoffUntilMs === null ? 0 : 1);

    const decision = container.decision;
    if (decision.kind === 'skip') tally(skipsThisPass, decision.reason);
    else tally(growsThisPass, decision.trigger);

    const outcome = container.outcome;
    if (outcome) {
      initDriver(container.driver);
      resizes.inc({ driver: container.driver, result: outcome.kind });
      if (outcome.kind === 'grown') {
        grownBytes.inc({ driver: container.driver }, Math.max(0, outcome.toBytes - outcome.fromBytes));
      }
      if (outcome.kind !== 'planned')
        resizeDuration.observe({ driver: container.driver }, outcome.durationMs / 1000);
      if (outcome.kind === 'failed')
        growFailures.inc({ driver: container.driver, step: outcome.step ?? UNKNOWN_GROW_STEP });
    }
  }

  function removePoolSeries(pool: string): void {
    for (const gauge of [
      pools.dataUsed,
      pools.dataSize,
      pools.metadataUsed,
      pools.metadataSize,
      pools.committed,
      pools.needsCheck,
    ]) {
      gauge.remove({ pool });
    }
    for (const mode of POOL_MODES) poolMode.remove({ pool, mode });
  }

  function applyPool(report: PassReport): void {
    const pool = report.pool;
    if (exportedPool !== null && exportedPool !== pool?.name) removePoolSeries(exportedPool);
    exportedPool = pool?.name ?? null;
    if (pool) {
      const labels = { pool: pool.name };
      pools.dataUsed.set(labels, pool.dataUsedBytes);
      pools.dataSize.set(labels, pool.dataTotalBytes);
      if (pool.metadataUsedBytes === null) pools.metadataUsed.remove(labels);
      else pools.metadataUsed.set(labels, pool.metadataUsedBytes);
      if (pool.metadataTotalBytes === null) pools.metadataSize.remove(labels);
      else pools.metadataSize.set(labels, pool.metadataTotalBytes);
      pools.committed.set(labels, pool.committedBytes);
      pools.needsCheck.set(labels, pool.needsCheck ? 1 : 0);
      for (const mode of POOL_MODES) poolMode.set({ pool: pool.name, mode }, pool.mode === mode ? 1 : 0);
    }
    if (report.poolAction) poolResizes.inc({ result: report.poolAction.kind });
  }

  function applyProbes(report: PassReport): void {
    const seen = new Set<string>();
    for (const probe of report.probes) {
      seen.add(probe.name);
      exportedProbes.add(probe.name);
      probeSuccess.set({ probe: probe.name }, probe.ok ? 1 : 0);
      probeDuration.set({ probe: probe.name }, probe.durationMs / 1000);
    }
    for (const probe of [...exportedProbes]) {
      if (seen.has(probe)) continue;
      probeSuccess.remove({ probe });
      probeDuration.remove({ probe });
      exportedProbes.delete(probe);
    }
  }

  const dataFilesystem = createDataFilesystemMetrics(registry);
  const reclaim = createReclaimMetrics(registry);
  return {
    registry,
    dataFilesystem,
    reclaim,

    applyPassReport(report: PassReport): void {
      if (report.driver) initDriver(report.driver);
      passNumber += 1;
      for (const container of report.containers) applyContainer(container);
      const partial = report.onlyContainerIds !== undefined;
      // Every series of a label value already exists (zeroed at start), so one inc per value
      // exports the same as one per container. A partial pass (the fill guard's, for one
      // container) counts its grows and resizes, but its skips would count the same container's
      // decision twice in one interval.
      if (!partial) for (const [reason, count] of skipsThisPass) skipDecisions.inc({ reason }, count);
      for (const [trigger, count] of growsThisPass) growDecisions.inc({ trigger }, count);
      skipsThisPass.clear();
      growsThisPass.clear();
      if (partial) {
        // It says nothing about the other containers, and its pool (committed bytes of one
        // container), probes and timing are not the host's: only a pool resize it made counts.
        if (report.poolAction) poolResizes.inc({ result: report.poolAction.kind });
        return;
      }
      for (const [id, exported] of exportedContainers) {
        if (exported.lastPass === passNumber) continue;
        removeContainerSeries(exported);
        exportedContainers.delete(id);
      }
      applyPool(report);
      applyProbes(report);
      if (report.driver === 'devicemapper') {
        for (const state of DM_PERSISTENCE_STATES) {
          // the report's list has stopped containers too (they have no row)
          const count = report.unpersisted
            ? report.unpersisted.filter((device) => device.state === state).length
            : report.containers.filter((container) => container.usage?.detail['persistence'] === state)
                .length;
          dmPersistence.unpersisted.set({ state }, count);
        }
      }

      passes.inc();
      passErrors.inc(report.errors.length);
      dryRun.set(report.dryRun ? 1 : 0);
      const startedAtSeconds = report.startedAtMs / 1000;
      lastPassTimestamp.set(startedAtSeconds);
      lastPassDuration.set(report.durationMs / 1000);
      if (report.errors.length === 0 && report.probes.every((probe) => probe.ok)) {
        lastSuccessfulPassTimestamp.set(startedAtSeconds);
      }
    },

    setEventStreamConnected(connected: boolean): void {
      eventStreamConnected.set(connected ? 1 : 0);
    },

    incEventStreamReconnects(): void {
      eventStreamReconnects.inc();
    },

    incJournalErrors(): void {
      journalErrors.inc();
    },

    setGuardStats(stats): void {
      if (!stats) {
        guardContainers.set(0);
        return;
      }
      guardContainers.set(stats.guarded);
      if (stats.looks > guardLooksCounted) guardLooks.inc(stats.looks - guardLooksCounted);
      if (stats.evaluations > guardEvaluationsCounted) {
        guardEvaluations.inc(stats.evaluations - guardEvaluationsCounted);
      }
      guardLooksCounted = stats.looks;
      guardEvaluationsCounted = stats.evaluations;
    },

    incLabelWarnings(count: number): void {
      if (count > 0) labelWarnings.inc(count);
    },

    forgetContainer(containerId: string): void {
      const id = shortContainerId(containerId);
      const exported = exportedContainers.get(id);
      if (!exported) return;
      removeContainerSeries(exported);
      exportedContainers.delete(id);
    },

    metricNames(): string[] {
      return registry.getMetricsAsArray().map((metric) => metric.name);
    },

    containerSeriesWrites(): number {
      return containerSeriesWrites;
    },
  };
}
