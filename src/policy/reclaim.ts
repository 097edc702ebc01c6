/**
 * When the reclaim ladder runs on its own (besides its cron schedules and the `reclaim` command):
 * a pure function of (settings, observation, history, now). It runs when the filesystem under
 * Docker's data (or a storage pool) is at or over `threshold` and cannot grow, and not again
 * within `cooldown` of the last run. "Cannot reclaim" is reported when the last ladder left it
 * still over the threshold: that, with "cannot grow", is what is alerted on.
 */
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
}

export interface ReclaimHistory {
  lastThresholdRunAtMs: number | null;
  /** Bytes used after the last ladder run still at or over the threshold. */
  lastRunLeftOverThreshold: boolean;
}

export type ReclaimTriggerDecision =
  | { action: 'none'; why: string; exhausted: false }
  | { action: 'cooldown'; why: string; untilMs: number; exhausted: boolean }
  | { action: 'reclaim'; why: string; exhausted: false };

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
    return {
      action: 'cooldown',
      untilMs: history.lastThresholdRunAtMs + settings.cooldownMs,
      why: `${trigger}; the last ladder ran ${formatDurationMs(nowMs - history.lastThresholdRunAtMs)} ago`,
      exhausted: history.lastRunLeftOverThreshold,
    };
  }
  return { action: 'reclaim', why: trigger, exhausted: false };
}

/** Whether the ladder may stop climbing: the usage re-read after a rung is under `target`. */
export function reclaimTargetReached(
  settings: Pick<ReclaimTriggerSettings, 'target'>,
  usedRatio: number,
): boolean {
  return usedRatio < settings.target;
}
