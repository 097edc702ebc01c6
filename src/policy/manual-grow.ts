/**
 * The manual grow's rules (`docker-autogrow grow`), pure: given what was observed of one
 * container and the pool, and what was asked, either a grow to a whole MiB, a no-op (never
 * shrinks) or a refusal with its reason. Refused beyond the container's maxSize and through the
 * pool reserve or overcommit limit unless forced; always refused on an unhealthy pool or without
 * a limit. Threshold, cooldown and backoff do not apply: the operator asked.
 */
import type { Config } from '../config/schema.js';
import type { PoolUsage } from '../storage/types.js';
import { formatBytes } from '../util/units.js';
import { decidePool, PoolBudget } from './pool.js';
import { roundUpToMiB } from './sizing.js';
import type { SkipReason } from './types.js';

export type ManualGrowTarget = { toBytes: number } | { byBytes: number };

export interface ManualGrowInput {
  config: Config;
  /** The container's resolved maxSize and the rule it came from. */
  maxSizeBytes: number;
  ruleName: string;
  /** The container's size now; null: it has no limit. */
  sizeBytes: number | null;
  pool: PoolUsage | null;
  target: ManualGrowTarget;
  force: boolean;
}

export type ManualGrowVerdict =
  | { kind: 'grow'; fromBytes: number; toBytes: number; warnings: string[]; why: string }
  | { kind: 'noop'; fromBytes: number; why: string }
  | {
      kind: 'refused';
      why: string;
      reason: SkipReason;
      fromBytes: number | null;
      toBytes: number | null;
    };

export function decideManualGrow(input: ManualGrowInput): ManualGrowVerdict {
  const { config, sizeBytes, target, force, maxSizeBytes, ruleName } = input;
  if (sizeBytes === null)
    return {
      kind: 'refused',
      why: 'the container has no size limit to grow',
      reason: 'no-limit',
      fromBytes: null,
      toBytes: null,
    };
  const fromBytes = sizeBytes;
  const requestedBytes = 'toBytes' in target ? target.toBytes : fromBytes + target.byBytes;
  if (!Number.isFinite(requestedBytes) || requestedBytes <= fromBytes) {
    return {
      kind: 'noop',
      fromBytes,
      why: `already ${formatBytes(fromBytes)}, not below ${formatBytes(requestedBytes)}: never shrinks`,
    };
  }
  const warnings: string[] = [];
  let toBytes = roundUpToMiB(requestedBytes);
  if (toBytes > maxSizeBytes) {
    if (!force) {
      return {
        kind: 'refused',
        why: `${formatBytes(toBytes)} is above maxSize ${formatBytes(maxSizeBytes)} (${ruleName}); use --force to go beyond it`,
        reason: 'at-max-size',
        fromBytes,
        toBytes,
      };
    }
    // Rounding must not push a forced exact target further than asked.
    if (requestedBytes <= maxSizeBytes) toBytes = maxSizeBytes;
    warnings.push(`forced beyond maxSize ${formatBytes(maxSizeBytes)} (${ruleName})`);
  }
  const poolDecision = decidePool(config, input.pool);
  const admission = new PoolBudget(config, input.pool, poolDecision).admit(
    toBytes - fromBytes,
    toBytes - fromBytes,
  );
  if ('refused' in admission) {
    if (admission.refused === 'pool-unhealthy' || !force) {
      return {
        kind: 'refused',
        why: `${admission.why}${admission.refused === 'pool-unhealthy' ? '' : '; use --force to grow anyway'}`,
        reason: admission.refused,
        fromBytes,
        toBytes,
      };
    }
    warnings.push(`forced through the pool limit: ${admission.why}`);
  }
  return {
    kind: 'grow',
    fromBytes,
    toBytes,
    warnings,
    why: `manual grow from ${formatBytes(fromBytes)} to ${formatBytes(toBytes)}`,
  };
}
