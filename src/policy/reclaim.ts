/**
 * When the reclaim ladder runs on its own (besides its cron schedules and the `reclaim` command):
 * a pure function of (settings, observation, history, now). It runs when the filesystem under
 * Docker's data (or a storage pool) is at or over `threshold` and cannot grow, and not again
 * within `cooldown` of the last run. "Cannot reclaim" is reported when the last ladder left it
 * still over the threshold: that, with "cannot grow", is what is alerted on.
 *
 * Subjects: the data filesystem (the data-filesystem watcher's looks) and the devicemapper thin
 * pool (each reconciler pass: {@link reclaimObservationOfPool}). {@link decideReclaimAcross} weighs
 * the latest observation of each: one ladder, one cooldown, whichever subject triggers it. The
 * ladder measures the data filesystem itself (statfs across each rung, stopping at `target`); a
 * pool's usage it cannot see, so a pool-triggered run climbs every rung, and the pool's next
 * observation after the run says whether it left the pool over the threshold.
 */
import type { PoolUsage } from '../storage/types.js';
import { formatDurationMs } from '../util/units.js';

export interface ReclaimTriggerSettings {
  /** Run the ladder when bytes used >= this share (and the storage cannot grow). */
  threshold: number;
  /** Stop climbing once bytes used are below this share. */
  target: number;
  cooldownMs: number;
}

export interface ReclaimObservation {
  /** What is watched: `data filesystem /var/lib/docker`, `pool docker-thinpool`. */
  subject: string;
  usedRatio: number;
  /**
   * Why it cannot grow (a reason code of the grower, `growth-disabled` when the agent does not
   * grow it), or null when it can: then growth comes first and the ladder waits.
   */
  cannotGrowReason: string | null;
  /**
   * False when the ladder's own statfs of the data root does not measure this subject (a thin
   * pool): then a run climbs every rung. Default true.
   */
  measuredByLadder?: boolean;
  /** When it was observed; with `lastRunFinishedAtMs` it says whether a run left it over the threshold. */
  observedAtMs?: number;
}

export interface ReclaimHistory {
  lastThresholdRunAtMs: number | null;
  /** Bytes used after the last ladder run still at or over the threshold. */
  lastRunLeftOverThreshold: boolean;
  /** When the last threshold run finished (null: none yet, or one is running). */
  lastRunFinishedAtMs?: number | null;
}

export type ReclaimTriggerDecision =
  | { action: 'none'; why: string; exhausted: false }
  | { action: 'cooldown'; why: string; untilMs: number; exhausted: boolean }
  | { action: 'reclaim'; why: string; exhausted: false; stopAtTarget: boolean };

const percent = (ratio: number) => `${(ratio * 100).toFixed(1)}%`;

export function decideReclaim(
  settings: ReclaimTriggerSettings,
  observation: ReclaimObservation,
  history: ReclaimHistory,
  nowMs: number,
): ReclaimTriggerDecision {
  const usage = `${observation.subject}: ${percent(observation.usedRatio)} used`;
  if (observation.usedRatio < settings.threshold)
    return { action: 'none', why: `${usage}, below ${percent(settings.threshold)}`, exhausted: false };
  if (observation.cannotGrowReason === null)
    return { action: 'none', why: `${usage}, but it can still grow`, exhausted: false };
  const trigger = `${usage} >= ${percent(settings.threshold)} and it cannot grow (${observation.cannotGrowReason})`;
  if (history.lastThresholdRunAtMs !== null && nowMs < history.lastThresholdRunAtMs + settings.cooldownMs) {
    // still over the threshold when looked at after the last run finished: the run left it there
    const seenAfterRun =
      observation.measuredByLadder === false &&
      observation.observedAtMs !== undefined &&
      history.lastRunFinishedAtMs !== undefined &&
      history.lastRunFinishedAtMs !== null &&
      observation.observedAtMs >= history.lastRunFinishedAtMs;
    return {
      action: 'cooldown',
      untilMs: history.lastThresholdRunAtMs + settings.cooldownMs,
      why: `${trigger}; the last ladder ran ${formatDurationMs(nowMs - history.lastThresholdRunAtMs)} ago`,
      exhausted: history.lastRunLeftOverThreshold || seenAfterRun,
    };
  }
  return {
    action: 'reclaim',
    why: trigger,
    exhausted: false,
    stopAtTarget: observation.measuredByLadder !== false,
  };
}

/**
 * The latest observation of each subject, weighed together: the first that triggers a run wins;
 * else a subject in cooldown (exhausted when any is); else none. No observation: none.
 */
export function decideReclaimAcross(
  settings: ReclaimTriggerSettings,
  observations: readonly ReclaimObservation[],
  history: ReclaimHistory,
  nowMs: number,
): ReclaimTriggerDecision {
  const decisions = observations.map((observation) => decideReclaim(settings, observation, history, nowMs));
  const reclaim = decisions.find((decision) => decision.action === 'reclaim');
  if (reclaim) return reclaim;
  const cooldowns = decisions.filter((decision) => decision.action === 'cooldown');
  const cooldown = cooldowns.find((decision) => decision.exhausted) ?? cooldowns[0];
  if (cooldown) return cooldown;
  return {
    action: 'none',
    why: decisions.map((decision) => decision.why).join('; ') || 'nothing observed yet',
    exhausted: false,
  };
}

/** Pool data or metadata used, whichever is fuller (either full stops writes). */
export function poolUsedRatio(pool: PoolUsage): number {
  const data = pool.dataTotalBytes > 0 ? pool.dataUsedBytes / pool.dataTotalBytes : 0;
  const metadata =
    pool.metadataTotalBytes && pool.metadataUsedBytes !== null
      ? pool.metadataUsedBytes / pool.metadataTotalBytes
      : 0;
  return Math.max(data, metadata);
}

/**
 * What one reconciler pass tells the reclaim policy about the storage pool, when it is a thin
 * pool (a filesystem "pool" is the data filesystem, which the watcher reports). Why it cannot grow:
 *  - `pool-cannot-grow`: the pool policy wants a grow that is disabled, at `pool.grow.maxSize`, or
 *    that the backend cannot do (the pass's pool action is needed-but-disabled);
 *  - `pool-grow-failed`: the grow was tried and failed (backoff follows);
 *  - `pool-out-of-data-space`: the kernel switched the pool to out_of_data_space;
 * null while it can still grow (grown, planned, or no grow wanted). A failed, read-only or
 * needs_check pool is no reclaim subject (removals there fail too): null observation.
 */
export function reclaimObservationOfPool(
  pool: PoolUsage | null,
  /** The pass's pool action (its `kind`: grown, failed, planned, needed-but-disabled). */
  poolAction: { kind: string } | undefined,
  observedAtMs: number,
): ReclaimObservation | null {
  if (!pool || pool.kind === 'filesystem' || pool.dataTotalBytes <= 0) return null;
  if (pool.needsCheck || pool.mode === 'ro' || pool.mode === 'fail') return null;
  let cannotGrowReason: string | null = null;
  if (pool.mode === 'out_of_data_space') cannotGrowReason = 'pool-out-of-data-space';
  else if (poolAction?.kind === 'needed-but-disabled') cannotGrowReason = 'pool-cannot-grow';
  else if (poolAction?.kind === 'failed') cannotGrowReason = 'pool-grow-failed';
  return {
    subject: `pool ${pool.name}`,
    usedRatio: poolUsedRatio(pool),
    cannotGrowReason,
    measuredByLadder: false,
    observedAtMs,
  };
}

/** Whether the ladder may stop climbing: the usage re-read after a rung is under `target`. */
export function reclaimTargetReached(
  settings: Pick<ReclaimTriggerSettings, 'target'>,
  usedRatio: number,
): boolean {
  return usedRatio < settings.target;
}
