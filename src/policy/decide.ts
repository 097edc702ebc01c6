/**
 * The decision function: (now, config, observation, containers, history) -> one decision per
 * container plus the pool verdict. Pure and synchronous: no clock, no I/O, same inputs, same output.
 *
 * Per container, in this order (the first row that applies decides):
 *   | condition                                            | decision                         |
 *   |------------------------------------------------------|----------------------------------|
 *   | autogrow disabled (config, rule or label)            | skip disabled                    |
 *   | a grow for it is running                             | skip in-flight                   |
 *   | no usage observed (probe error, not observed)        | skip usage-unknown               |
 *   | the container has no size limit                     | skip no-limit                    |
 *   | used < threshold, inodes < inodeThreshold, and the   | skip below-threshold             |
 *   |   predicted usage at the horizon < threshold         |                                  |
 *   | size >= maxSize                                      | skip at-max-size                 |
 *   | last grow ended after this observation was taken     | skip cooldown (wait for evidence)|
 *   | failure backoff running                              | skip backoff                     |
 *   | within cooldown, and not predicted full < horizon    | skip cooldown                    |
 *   | pool unhealthy / reserve / overcommit (in order of   | skip pool-*                      |
 *   |   urgency: nearest to full is admitted first)        |                                  |
 *   | dry run                                              | skip dry-run (with wouldGrow)    |
 *   | otherwise                                            | grow                             |
 *
 * Cooldown versus the fill race: the cooldown holds threshold and inode grows, but a container
 * predicted to be FULL within the prediction horizon grows anyway (it would hit ENOSPC before the
 * cooldown ends). This holds with prediction disabled too: the cooldown exists to stop
 * thrashing, never to let a container run out of space that a grow could have given it. Runaway protection then comes from maxSize, maxStep, the pool limits, and the
 * rule that a grow is only ever decided on an observation taken after the previous grow ended.
 */
import type { Config, PolicySettings } from '../config/schema.js';
import type { ContainerInfo } from '../docker/model.js';
import type { Observation } from '../storage/types.js';
import { formatBytes, formatDurationMs } from '../util/units.js';
import { estimateFillRate, timeToFullSeconds } from './fill-rate.js';
import { decidePool, PoolBudget } from './pool.js';
import { resolvePolicy } from './resolve.js';
import { computeTarget, MIB, roundDownToMiB } from './sizing.js';
import type { ContainerHistory, Decision, GrowTrigger, PoolDecision, SkipReason } from './types.js';

export interface DecideInput {
  nowMs: number;
  config: Config;
  observation: Observation;
  /** Containers to decide for (running containers of this pass). */
  containers: readonly ContainerInfo[];
  history: ReadonlyMap<string, ContainerHistory>;
  /** Plan only (config.dryRun or `once --dry-run`); defaults to config.dryRun. */
  dryRun?: boolean;
}

/** Everything the report and `status` need about one container's decision. */
export interface ContainerPlan {
  containerId: string;
  decision: Decision;
  ruleName: string;
  settings: PolicySettings;
  maxSizeBytes: number;
  labelWarnings: readonly string[];
  fillRateBytesPerSecond: number | null;
  timeToFullSeconds: number | null;
  backoffUntilMs: number | null;
  /** used >= threshold x size right now (for the 'threshold crossed' log). */
  aboveThreshold: boolean;
}

export interface DecideOutput {
  /** One per input container, in input order. */
  decisions: Decision[];
  plans: ContainerPlan[];
  pool: PoolDecision;
}

export const EMPTY_HISTORY: ContainerHistory = {
  lastGrowAtMs: null,
  lastGrowToBytes: null,
  consecutiveFailures: 0,
  backoffUntilMs: null,
  lastError: null,
  samples: [],
  inFlight: false,
};

function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(1)}%`;
}

function formatSeconds(seconds: number): string {
  return formatDurationMs(seconds * 1000);
}

/** A candidate that wants to grow, before pool admission. */
interface Candidate {
  index: number;
  fromBytes: number;
  toBytes: number;
  trigger: GrowTrigger;
  why: string;
  timeToFullSeconds: number | null;
  usedRatio: number;
  /** Limit minus used before the grow: room the container was already promised. */
  headroomBytes: number;
}

export function decide(input: DecideInput): DecideOutput {
  const { nowMs, config, observation } = input;
  const dryRun = input.dryRun ?? config.dryRun;
  const horizonMs = config.prediction.horizon;
  const pool = decidePool(config, observation.pool);
  const plans: ContainerPlan[] = [];
  const candidates: Candidate[] = [];

  input.containers.forEach((container, index) => {
    const resolved = resolvePolicy(config, container);
    const { settings } = resolved;
    const history = input.history.get(container.id) ?? EMPTY_HISTORY;
    const usage = observation.containers.get(container.id);
    const backoffActive = history.backoffUntilMs !== null && history.backoffUntilMs > nowMs;
    const plan: ContainerPlan = {
      containerId: container.id,
      decision: { kind: 'skip', containerId: container.id, reason: 'usage-unknown', why: '' },
      ruleName: resolved.ruleName,
      settings,
      maxSizeBytes: settings.maxSize,
      labelWarnings: resolved.warnings,
      fillRateBytesPerSecond: null,
      timeToFullSeconds: null,
      backoffUntilMs: backoffActive ? history.backoffUntilMs : null,
      aboveThreshold: false,
    };
    plans.push(plan);
    const skip = (reason: SkipReason, why: string): void => {
      plan.decision = { kind: 'skip', containerId: container.id, reason, why };
    };

    if (!settings.enabled)
      return skip('disabled', `autogrow is disabled for this container (${resolved.ruleName})`);
    if (history.inFlight) return skip('in-flight', 'a grow of this container is running');
    if (!usage || usage.usedBytes === null) {
      const error = observation.errors.get(container.id);
      return skip('usage-unknown', error ? `usage could not be read: ${error}` : 'usage was not observed');
    }
    if (usage.sizeBytes === null || usage.sizeBytes <= 0) {
      return skip('no-limit', 'the container has no size limit to grow');
    }
    const sizeBytes = usage.sizeBytes;
    const usedBytes = usage.usedBytes;
    const usedRatio = usedBytes / sizeBytes;
    // The rate is always estimated: status shows time to full, and the cooldown yields to a container
    // about to be full even with prediction off. prediction.enabled governs early (predicted) grows
    // and rate-sized steps only.
    const rate = estimateFillRate(history.samples, nowMs, config.prediction.window).bytesPerSecond;
    const predictionRate = config.prediction.enabled ? rate : null;
    const ttf = timeToFullSeconds(usedBytes, sizeBytes, rate);
    plan.fillRateBytesPerSecond = rate;
    plan.timeToFullSeconds = ttf;
    plan.aboveThreshold = usedRatio >= settings.threshold;

    const thresholdBytes = settings.threshold * sizeBytes;
    const inodeRatio =
      usage.inodesTotal !== null && usage.inodesUsed !== null && usage.inodesTotal > 0
        ? usage.inodesUsed / usage.inodesTotal
        : null;
    const predictedUsedBytes =
      predictionRate !== null && predictionRate > 0 ? usedBytes + (predictionRate * horizonMs) / 1000 : null;
    let trigger: GrowTrigger | null = null;
    let triggerWhy = '';
    if (usedBytes >= thresholdBytes) {
      trigger = 'threshold';
      triggerWhy = `used ${formatBytes(usedBytes)} of ${formatBytes(sizeBytes)} (${percent(usedRatio)}) is at or above ${percent(settings.threshold)}`;
    } else if (inodeRatio !== null && inodeRatio >= settings.inodeThreshold) {
      trigger = 'inodes';
      triggerWhy = `inodes ${percent(inodeRatio)} used, at or above ${percent(settings.inodeThreshold)}`;
    } else if (predictedUsedBytes !== null && predictedUsedBytes >= thresholdBytes) {
      trigger = 'predicted';
      triggerWhy = `filling at ${formatBytes(rate ?? 0)}/s: ${percent(predictedUsedBytes / sizeBytes)} expected within ${formatDurationMs(horizonMs)}${ttf !== null ? `, full in ${formatSeconds(ttf)}` : ''}`;
    }
    if (trigger === null) {
      return skip(
        'below-threshold',
        `used ${percent(usedRatio)} of ${formatBytes(sizeBytes)}, below ${percent(settings.threshold)}${ttf !== null ? `; full in ${formatSeconds(ttf)} at the current rate` : ''}`,
      );
    }
    if (sizeBytes >= settings.maxSize) {
      return skip(
        'at-max-size',
        `${triggerWhy}, but the size ${formatBytes(sizeBytes)} is at maxSize ${formatBytes(settings.maxSize)}`,
      );
    }
    if (history.lastGrowAtMs !== null && history.lastGrowAtMs >= observation.takenAtMs) {
      return skip('cooldown', 'grown after this observation was taken; waiting for a fresh observation');
    }
    if (backoffActive) {
      return skip(
        'backoff',
        `${history.consecutiveFailures} failed grow(s), retrying after ${formatDurationMs((history.backoffUntilMs ?? nowMs) - nowMs)}${history.lastError ? `: ${history.lastError}` : ''}`,
      );
    }
    const imminentFull = ttf !== null && ttf * 1000 < horizonMs;
    if (history.lastGrowAtMs !== null && nowMs - history.lastGrowAtMs < settings.cooldown) {
      if (!imminentFull) {
        return skip(
          'cooldown',
          `${triggerWhy}; grown ${formatDurationMs(nowMs - history.lastGrowAtMs)} ago, cooldown ${formatDurationMs(settings.cooldown)}`,
        );
      }
      if (predictionRate !== null) trigger = 'predicted';
      triggerWhy = `full in ${formatSeconds(ttf ?? 0)} at ${formatBytes(rate ?? 0)}/s, sooner than the ${formatDurationMs(horizonMs)} horizon: overriding the cooldown`;
    }
    const target = computeTarget({
      sizeBytes,
      usedBytes,
      settings,
      bytesPerSecond: predictionRate,
      horizonMs,
    });
    if (target.toBytes <= sizeBytes) {
      return skip(
        'at-max-size',
        `${triggerWhy}, but no step is left below maxSize ${formatBytes(settings.maxSize)}`,
      );
    }
    candidates.push({
      index,
      fromBytes: sizeBytes,
      toBytes: target.toBytes,
      trigger,
      why: `${triggerWhy}; grow to ${formatBytes(target.toBytes)} (${target.limitedBy})`,
      timeToFullSeconds: ttf,
      usedRatio,
      // in-flight bytes are not in the pool's used space yet: the pool still counts them as free
      headroomBytes: Math.max(0, sizeBytes - usedBytes + (usage.inFlightBytes ?? 0)),
    });
  });

  // Nearest to full first: the shortest time to full, then (no rate known) the highest used share,
  // then the id, so the order never depends on input order.
  candidates.sort(
    (a, b) =>
      (a.timeToFullSeconds ?? Number.POSITIVE_INFINITY) - (b.timeToFullSeconds ?? Number.POSITIVE_INFINITY) ||
      b.usedRatio - a.usedRatio ||
      (plans[a.index]!.containerId < plans[b.index]!.containerId ? -1 : 1),
  );
  const budget = new PoolBudget(config, observation.pool, pool);
  for (const candidate of candidates) {
    const plan = plans[candidate.index]!;
    const containerId = plan.containerId;
    const wantedBytes = candidate.toBytes - candidate.fromBytes;
    // A trimmed grow must still be worth a step (1 MiB); a grow smaller than that is admitted whole.
    const admission = budget.admit(wantedBytes, Math.min(MIB, wantedBytes), candidate.headroomBytes);
    if ('refused' in admission) {
      plan.decision = { kind: 'skip', containerId, reason: admission.refused, why: admission.why };
      continue;
    }
    let { toBytes, why } = candidate;
    if (admission.limited) {
      toBytes = roundDownToMiB(candidate.fromBytes + admission.granted);
      if (toBytes <= candidate.fromBytes) {
        plan.decision = {
          kind: 'skip',
          containerId,
          reason:
            observation.pool && observation.pool.kind !== 'filesystem' ? 'pool-overcommit' : 'pool-reserve',
          why: 'less than 1 MiB of pool budget left for this container',
        };
        continue;
      }
      why = `${why}; limited to ${formatBytes(toBytes)} by the pool`;
    }
    if (dryRun) {
      plan.decision = {
        kind: 'skip',
        containerId,
        reason: 'dry-run',
        why: `dry run: would grow from ${formatBytes(candidate.fromBytes)} to ${formatBytes(toBytes)}: ${why}`,
        wouldGrow: { fromBytes: candidate.fromBytes, toBytes, trigger: candidate.trigger },
      };
      continue;
    }
    plan.decision = {
      kind: 'grow',
      containerId,
      fromBytes: candidate.fromBytes,
      toBytes,
      trigger: candidate.trigger,
      why,
    };
  }
  return { decisions: plans.map((plan) => plan.decision), plans, pool };
}
