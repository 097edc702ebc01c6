/**
 * `status`: a table like `docker ps -s`, but cheap (it renders a pass report: one batched
 * observation, never `size=true`) and about limits: the pool on top, then one row per container
 * with its size, usage, a usage bar, the rule that applies and what the agent will do next.
 *
 * Pure: the report and the clock come in, text (or JSON) comes out.
 */
import type { ContainerReport, PassReport } from '../report/pass-report.js';
import type { PoolUsage } from '../storage/types.js';
import { formatBytes, formatDurationMs } from '../util/units.js';
import { isPendingPersistenceState, pendingPersistenceAdvice } from '../policy/persistence.js';

/** A container row of `status`: the reconciler's report carries the resolved threshold and cooldown. */
export type StatusContainerReport = ContainerReport;

export interface RenderStatusOptions {
  /** "Now" for countdowns (cooldown, backoff): the caller's clock. */
  nowMs: number;
  /** Width of the usage bar in characters (default 10). */
  barWidth?: number;
}

/** `[#####.....] 52%`: the share rounded down to whole cells so a bar is full only at 100%. */
export function usageBar(ratio: number, width = 10): string {
  const clamped = Math.min(Math.max(ratio, 0), 1);
  const filled = Math.floor(clamped * width);
  const percent = Math.floor(ratio * 100);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(percent).padStart(3)}%`;
}

function percentText(ratio: number): string {
  const value = Math.round(ratio * 1000) / 10;
  return `${Number.isInteger(value) ? value.toFixed(0) : value.toFixed(1)}%`;
}

function remaining(untilMs: number | null | undefined, nowMs: number): string | null {
  if (untilMs === null || untilMs === undefined) return null;
  return formatDurationMs(Math.max(0, untilMs - nowMs));
}

/** What the agent will do next for this container, in a few words. */
export function nextAction(container: StatusContainerReport, options: RenderStatusOptions): string {
  const { nowMs } = options;
  const outcome = container.outcome;
  if (outcome) {
    switch (outcome.kind) {
      case 'grown':
        return `grown to ${formatBytes(outcome.toBytes)}`;
      case 'noop':
        return `already ${formatBytes(outcome.sizeBytes)}`;
      case 'failed':
        return `grow failed: ${outcome.error.split('\n')[0]?.slice(0, 60) ?? ''}`;
      case 'planned':
        return `would grow to ${formatBytes(outcome.toBytes)}`;
      case 'container-gone':
        return 'removed during the grow';
    }
  }
  const decision = container.decision;
  if (decision.kind === 'grow') return `grow to ${formatBytes(decision.toBytes)}`;
  const threshold = container.thresholdRatio;
  const fullIn =
    container.timeToFullSeconds !== null
      ? `, full in ${formatDurationMs(container.timeToFullSeconds * 1000)}`
      : '';
  switch (decision.reason) {
    case 'below-threshold':
      return `grow at ${percentText(threshold)}${fullIn}`;
    case 'cooldown': {
      const left = remaining(container.cooldownUntilMs, nowMs);
      return left ? `cooldown ${left}` : 'cooldown';
    }
    case 'backoff': {
      const left = remaining(container.backoffUntilMs, nowMs);
      return left ? `backoff ${left}` : 'backoff';
    }
    case 'at-max-size':
      return container.maxSizeBytes !== null
        ? `at max ${formatBytes(container.maxSizeBytes)}`
        : 'at max size';
    case 'no-limit': {
      // a backend that knows why there is none says so (containerd store: Docker ignores size)
      const why = container.usage?.detail['limit'];
      return typeof why === 'string' ? why : 'no limit';
    }
    case 'disabled':
      return 'disabled';
    case 'usage-unknown':
      return 'usage unknown';
    case 'in-flight':
      return 'growing now';
    case 'pool-reserve':
      return 'held: pool reserve';
    case 'pool-overcommit':
      return 'held: pool overcommit';
    case 'pool-unhealthy':
      return 'held: pool unhealthy';
    case 'dry-run':
      return decision.wouldGrow ? `would grow to ${formatBytes(decision.wouldGrow.toBytes)}` : 'dry run';
  }
}

interface Row {
  container: string;
  driver: string;
  size: string;
  used: string;
  usedPercent: string;
  rule: string;
  next: string;
}

function rowOf(container: StatusContainerReport, options: RenderStatusOptions): Row {
  const usage = container.usage;
  const sizeBytes = usage?.sizeBytes ?? null;
  const usedBytes = usage?.usedBytes ?? null;
  const ratio = sizeBytes !== null && sizeBytes > 0 && usedBytes !== null ? usedBytes / sizeBytes : null;
  return {
    container: container.name,
    driver: container.driver,
    size: sizeBytes !== null ? formatBytes(sizeBytes) : '-',
    // `~`: an estimate (a layer walk that is not complete, or older than the last change)
    used:
      usedBytes !== null
        ? `${usage?.detail['usedEstimate'] !== undefined ? '~' : ''}${formatBytes(usedBytes)}`
        : '-',
    usedPercent: ratio !== null ? usageBar(ratio, options.barWidth) : '-',
    rule: container.ruleName,
    next: `${nextAction(container, options)}${isPendingPersistenceState(usage?.detail['persistence']) ? `; NOT PERSISTENT (${usage?.detail['persistence']})` : ''}`,
  };
}

const HEADERS: Row = {
  container: 'CONTAINER',
  driver: 'DRIVER',
  size: 'SIZE',
  used: 'USED',
  usedPercent: 'USED%',
  rule: 'RULE',
  next: 'NEXT',
};
const COLUMNS: ReadonlyArray<keyof Row> = [
  'container',
  'driver',
  'size',
  'used',
  'usedPercent',
  'rule',
  'next',
];
/** Sizes read best right-aligned. */
const RIGHT_ALIGNED = new Set<keyof Row>(['size', 'used']);

function table(rows: readonly Row[]): string[] {
  const widths = COLUMNS.map((column) => Math.max(...[HEADERS, ...rows].map((row) => row[column].length)));
  return [HEADERS, ...rows].map((row) =>
    COLUMNS.map((column, index) => {
      const width = widths[index] ?? 0;
      const cell = row[column];
      if (index === COLUMNS.length - 1) return cell;
      return RIGHT_ALIGNED.has(column) ? cell.padStart(width) : cell.padEnd(width);
    })
      .join('  ')
      .trimEnd(),
  );
}

function poolLines(pool: PoolUsage, report: PassReport, options: RenderStatusOptions): string[] {
  const dataRatio = pool.dataTotalBytes > 0 ? pool.dataUsedBytes / pool.dataTotalBytes : 0;
  const lines = [
    `POOL ${pool.name} (${pool.kind}, ${pool.mode}${pool.needsCheck ? ', NEEDS CHECK' : ''})`,
    `  data      ${formatBytes(pool.dataUsedBytes)} / ${formatBytes(pool.dataTotalBytes)}  ${usageBar(dataRatio, options.barWidth)}`,
  ];
  if (pool.metadataUsedBytes !== null && pool.metadataTotalBytes !== null && pool.metadataTotalBytes > 0) {
    lines.push(
      `  metadata  ${formatBytes(pool.metadataUsedBytes)} / ${formatBytes(pool.metadataTotalBytes)}  ${usageBar(pool.metadataUsedBytes / pool.metadataTotalBytes, options.barWidth)}`,
    );
  }
  const committedRatio = pool.dataTotalBytes > 0 ? pool.committedBytes / pool.dataTotalBytes : 0;
  lines.push(`  committed ${formatBytes(pool.committedBytes)} (${percentText(committedRatio)} of data)`);
  const action = report.poolAction;
  if (action) {
    const verb = {
      grown: 'grown',
      failed: 'grow failed',
      planned: 'would grow',
      'needed-but-disabled': 'needs to grow (pool.grow.enabled is false)',
    }[action.kind];
    lines.push(
      `  next      ${verb}: ${formatBytes(action.fromBytes)} -> ${formatBytes(action.toBytes)}${action.error ? `: ${action.error}` : ''}`,
    );
  }
  return lines;
}

/** The `status` table. */
export function renderStatus(report: PassReport, options: RenderStatusOptions): string {
  const lines: string[] = [];
  const mode = report.dryRun ? ', dry run' : '';
  lines.push(
    `docker-autogrow status: ${report.driver ?? 'no driver'}, pass at ${new Date(report.startedAtMs).toISOString()} took ${formatDurationMs(report.durationMs)}${mode}`,
  );
  if (report.pool) lines.push(...poolLines(report.pool, report, options));
  lines.push('');
  if (report.containers.length === 0) {
    lines.push('no containers');
  } else {
    const sorted = [...report.containers].sort((a, b) => a.name.localeCompare(b.name));
    lines.push(...table(sorted.map((container) => rowOf(container, options))));
  }
  const warnings = report.containers.flatMap((container) =>
    container.labelWarnings.map((warning) => `${container.name}: ${warning}`),
  );
  // devicemapper grows dockerd does not cache yet: say so, and what makes them permanent
  for (const container of report.containers) {
    const persistence = container.usage?.detail['persistence'];
    if (isPendingPersistenceState(persistence))
      warnings.push(
        `${container.name}: not persistent (${persistence}): ${pendingPersistenceAdvice(persistence)}`,
      );
  }
  // ... and those of stopped containers, which have no row: theirs is the start at risk
  const inRows = new Set(report.containers.map((container) => container.containerId));
  for (const device of report.unpersisted ?? []) {
    if (inRows.has(device.containerId)) continue;
    warnings.push(
      `${device.name}: not persistent (${device.state}, ${device.running ? 'running' : 'stopped'}): ${pendingPersistenceAdvice(device.state)}`,
    );
  }
  for (const container of report.containers) {
    const estimate = container.usage?.detail['usedEstimate'];
    if (estimate !== undefined) warnings.push(`${container.name}: used is an estimate (${estimate})`);
  }
  const problems = [
    ...report.errors,
    ...report.probes.filter((probe) => !probe.ok).map((p) => `${p.name}: ${p.error ?? 'failed'}`),
  ];
  if (warnings.length > 0 || problems.length > 0) {
    lines.push('');
    for (const warning of warnings) lines.push(`warning: ${warning}`);
    for (const problem of problems) lines.push(`error: ${problem}`);
  }
  return `${lines.join('\n')}\n`;
}

/** `status --json`: the same rows as data (bytes and ratios, not text). */
export function statusJson(report: PassReport, options: RenderStatusOptions): string {
  const containers = [...report.containers]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((container: StatusContainerReport) => {
      const sizeBytes = container.usage?.sizeBytes ?? null;
      const usedBytes = container.usage?.usedBytes ?? null;
      return {
        id: container.containerId,
        name: container.name,
        driver: container.driver,
        sizeBytes,
        usedBytes,
        usedRatio: sizeBytes !== null && sizeBytes > 0 && usedBytes !== null ? usedBytes / sizeBytes : null,
        maxSizeBytes: container.maxSizeBytes,
        rule: container.ruleName,
        decision: container.decision,
        next: nextAction(container, options),
        timeToFullSeconds: container.timeToFullSeconds,
        backoffUntilMs: container.backoffUntilMs,
        persistence: container.usage?.detail['persistence'] ?? null,
        usedEstimate: container.usage?.detail['usedEstimate'] ?? null,
        usedSource: container.usage?.detail['usedSource'] ?? null,
      };
    });
  return `${JSON.stringify(
    {
      takenAt: new Date(report.startedAtMs).toISOString(),
      driver: report.driver,
      dryRun: report.dryRun,
      pool: report.pool,
      poolAction: report.poolAction ?? null,
      containers,
      unpersisted: report.unpersisted ?? [],
      errors: report.errors,
    },
    null,
    2,
  )}\n`;
}
