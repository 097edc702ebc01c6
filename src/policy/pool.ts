/**
 * Pool admission: the shared space containers grow into (a thin pool, or the backing filesystem for
 * quota drivers) and how much of it this pass may promise.
 *
 * Thin pools: growing a thin device allocates nothing, it only promises space. Two limits apply:
 *  - reserve: while free data or free metadata is below `pool.reserve` of its total, no container
 *    grows (pool-reserve); the pool is grown instead when `pool.grow.enabled`.
 *  - overcommit: the sum of device sizes may not exceed `pool.maxOvercommit` x data size; each grow
 *    spends from that budget (pool-overcommit when it is spent).
 * Filesystems (btrfs, XFS project quotas): a quota limit is a promise on the filesystem and the
 * container can fill it at once, so each grow spends its increment from the free space above the
 * reserve (pool-reserve when it is spent), and the container's own unused limit counts as already
 * promised: a limit is never raised past used + free space, where the filesystem would fill first. The overcommit ratio does NOT apply: Docker hosts
 * routinely set `--storage-opt size=` far above the disk size per container, and limiting that sum
 * would block growth on healthy hosts; the free-space budget is the real protection there.
 * Unknown pool (the backend reports none): nothing to check, nothing is blocked.
 */
import type { Config, Step } from '../config/schema.js';
import type { PoolUsage } from '../storage/types.js';
import { formatBytes } from '../util/units.js';
import { roundUpToMiB } from './sizing.js';
import type { PoolDecision } from './types.js';

export function isThinPool(pool: PoolUsage): boolean {
  return pool.kind !== 'filesystem';
}

function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(1)}%`;
}

/** Why the pool is unusable, or null when it is healthy. */
export function poolUnhealthyReason(pool: PoolUsage): string | null {
  if (pool.needsCheck) return `pool ${pool.name} needs a check (needs_check set): repair it before growing`;
  if (pool.mode === 'ro') return `pool ${pool.name} is read-only`;
  if (pool.mode === 'out_of_data_space') return `pool ${pool.name} is out of data space`;
  if (pool.mode === 'fail') return `pool ${pool.name} has failed`;
  if (pool.dataTotalBytes <= 0) return `pool ${pool.name} reports no data size`;
  return null;
}

/** Free data (and metadata, when known) measured against the reserve. */
export function reserveShortfall(pool: PoolUsage, reserveRatio: number): string | null {
  const dataFree = pool.dataTotalBytes - pool.dataUsedBytes;
  const dataReserve = reserveRatio * pool.dataTotalBytes;
  if (dataFree < dataReserve) {
    return `pool ${pool.name} free data ${formatBytes(dataFree)} is below the ${percent(reserveRatio)} reserve (${formatBytes(dataReserve)})`;
  }
  if (pool.metadataTotalBytes !== null && pool.metadataUsedBytes !== null && pool.metadataTotalBytes > 0) {
    const metadataFree = pool.metadataTotalBytes - pool.metadataUsedBytes;
    const metadataReserve = reserveRatio * pool.metadataTotalBytes;
    if (metadataFree < metadataReserve) {
      return `pool ${pool.name} free metadata ${formatBytes(metadataFree)} is below the ${percent(reserveRatio)} reserve (${formatBytes(metadataReserve)})`;
    }
  }
  return null;
}

function poolStepBytes(step: Step, totalBytes: number): number {
  return step.kind === 'ratio' ? Math.ceil(totalBytes * step.ratio) : step.bytes;
}

/** The pool verdict for this pass (pure). */
export function decidePool(config: Config, pool: PoolUsage | null): PoolDecision {
  if (pool === null) return { kind: 'unknown', why: 'the backend reports no pool; no pool limits applied' };
  const unhealthy = poolUnhealthyReason(pool);
  if (unhealthy !== null) return { kind: 'unhealthy', why: unhealthy };
  const shortfall = reserveShortfall(pool, config.pool.reserve);
  const dataRatio = pool.dataUsedBytes / pool.dataTotalBytes;
  const metadataRatio =
    pool.metadataTotalBytes && pool.metadataUsedBytes !== null
      ? pool.metadataUsedBytes / pool.metadataTotalBytes
      : 0;
  const growSettings = config.pool.grow;
  const wantsGrow =
    shortfall !== null || dataRatio >= growSettings.threshold || metadataRatio >= growSettings.threshold;
  if (wantsGrow) {
    const usage = `data ${percent(dataRatio)} used${pool.metadataTotalBytes ? `, metadata ${percent(metadataRatio)} used` : ''}`;
    if (!growSettings.enabled || pool.dataTotalBytes >= growSettings.maxSize) {
      const whyNot = !growSettings.enabled
        ? 'pool growth is disabled (pool.grow.enabled)'
        : `the pool is at pool.grow.maxSize ${formatBytes(growSettings.maxSize)}`;
      if (shortfall !== null) return { kind: 'low', why: `${shortfall}; ${whyNot}` };
      return { kind: 'needs-grow', why: `pool ${pool.name} ${usage}; ${whyNot}` };
    }
    const toBytes = Math.min(
      growSettings.maxSize,
      roundUpToMiB(pool.dataTotalBytes + poolStepBytes(growSettings.step, pool.dataTotalBytes)),
    );
    return {
      kind: 'grow',
      fromBytes: pool.dataTotalBytes,
      toBytes,
      why: `${shortfall ?? `pool ${pool.name} ${usage}, at or above ${percent(growSettings.threshold)}`}; growing the pool to ${formatBytes(toBytes)}`,
    };
  }
  return { kind: 'ok', why: `pool ${pool.name} data ${percent(dataRatio)} used` };
}

/**
 * The growth budget of one pass: what may still be promised, spent by admitted grows in order.
 * Reserve shortfalls (thin pools) and unhealthy pools admit nothing.
 */
export class PoolBudget {
  /** Bytes the filesystem can still promise above the reserve (filesystem pools). */
  private freeAboveReserveBytes: number;
  /** Bytes the thin pool can still promise below the overcommit limit (thin pools). */
  private overcommitRemainingBytes: number;

  constructor(
    private readonly config: Config,
    private readonly pool: PoolUsage | null,
    private readonly decision: PoolDecision,
  ) {
    if (pool === null) {
      this.freeAboveReserveBytes = Number.POSITIVE_INFINITY;
      this.overcommitRemainingBytes = Number.POSITIVE_INFINITY;
      return;
    }
    this.freeAboveReserveBytes = isThinPool(pool)
      ? Number.POSITIVE_INFINITY
      : Math.floor(pool.dataTotalBytes - pool.dataUsedBytes - config.pool.reserve * pool.dataTotalBytes);
    this.overcommitRemainingBytes = isThinPool(pool)
      ? Math.floor(config.pool.maxOvercommit * pool.dataTotalBytes - pool.committedBytes)
      : Number.POSITIVE_INFINITY;
  }

  /**
   * Admits up to `wantedBytes` of growth. Returns the granted bytes (possibly less than wanted, at
   * least `minimumBytes`) or a refusal with its reason.
   */
  admit(
    wantedBytes: number,
    minimumBytes: number,
    /** Filesystem pools: the container's unused limit, already a claim on the free space. */
    headroomBytes = 0,
  ):
    | { granted: number; limited: boolean }
    | { refused: 'pool-unhealthy' | 'pool-reserve' | 'pool-overcommit'; why: string } {
    if (this.decision.kind === 'unhealthy') return { refused: 'pool-unhealthy', why: this.decision.why };
    if (this.pool === null) return { granted: wantedBytes, limited: false };
    if (isThinPool(this.pool)) {
      const shortfall = reserveShortfall(this.pool, this.config.pool.reserve);
      if (shortfall !== null) {
        return {
          refused: 'pool-reserve',
          why: `${shortfall}${this.decision.kind === 'grow' ? '; growing the pool first' : ''}`,
        };
      }
      const granted = Math.min(wantedBytes, this.overcommitRemainingBytes);
      if (granted < minimumBytes) {
        return {
          refused: 'pool-overcommit',
          why: `pool ${this.pool.name} would exceed ${this.config.pool.maxOvercommit}x overcommit (committed ${formatBytes(this.pool.committedBytes)} of ${formatBytes(this.pool.dataTotalBytes)}, ${formatBytes(Math.max(0, this.overcommitRemainingBytes))} left this pass)`,
        };
      }
      this.overcommitRemainingBytes -= granted;
      return { granted, limited: granted < wantedBytes };
    }
    // A limit beyond used + free space could never be honoured (the filesystem fills first), so the
    // container's existing headroom counts against the free space it may be promised.
    const granted = Math.min(wantedBytes, this.freeAboveReserveBytes - Math.max(0, headroomBytes));
    if (granted < minimumBytes) {
      return {
        refused: 'pool-reserve',
        why: `filesystem ${this.pool.name} has ${formatBytes(Math.max(0, this.freeAboveReserveBytes))} free above the ${percent(this.config.pool.reserve)} reserve this pass`,
      };
    }
    this.freeAboveReserveBytes -= granted;
    return { granted, limited: granted < wantedBytes };
  }
}
