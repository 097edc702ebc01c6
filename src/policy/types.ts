/**
 * Decisions: the output of the pure policy function, one per container per pass.
 */

export const SKIP_REASONS = [
  'below-threshold',
  'cooldown',
  'at-max-size',
  'pool-reserve',
  'pool-overcommit',
  'pool-unhealthy',
  'disabled',
  'no-limit',
  'usage-unknown',
  'in-flight',
  'backoff',
  'dry-run',
] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

/** Why a grow was chosen. */
export type GrowTrigger = 'threshold' | 'inodes' | 'predicted' | 'manual';

export type Decision =
  | {
      kind: 'grow';
      containerId: string;
      fromBytes: number;
      toBytes: number;
      trigger: GrowTrigger;
      /** One sentence for logs and status. */
      why: string;
    }
  | {
      kind: 'skip';
      containerId: string;
      reason: SkipReason;
      why: string;
      /** For dry-run: the grow that would have happened. */
      wouldGrow?: { fromBytes: number; toBytes: number; trigger: GrowTrigger };
    };

/** One usage observation kept in a container's history, for the fill-rate estimate. */
export interface UsageSample {
  atMs: number;
  usedBytes: number;
  sizeBytes: number | null;
}

/**
 * What the policy needs to remember about a container between passes (rebuilt from the journal at
 * start, so cooldowns and backoff survive restarts).
 */
export interface ContainerHistory {
  /** End of the last successful grow (ms since epoch): the cooldown runs from here. */
  lastGrowAtMs: number | null;
  lastGrowToBytes: number | null;
  /** Failed grows since the last success. */
  consecutiveFailures: number;
  /** No automatic grow before this time (ms since epoch), or null. */
  backoffUntilMs: number | null;
  lastError: string | null;
  /** Recent samples, oldest first, bounded by the prediction window. */
  samples: readonly UsageSample[];
  /** A grow for this container is running now. */
  inFlight: boolean;
}

/** The pool-level verdict of one pass (containers are admitted against it). */
export type PoolDecision =
  | { kind: 'unknown'; why: string }
  | { kind: 'ok'; why: string }
  | { kind: 'unhealthy'; why: string }
  /** Free data or metadata below the reserve, and the pool cannot (or may not) grow: containers wait. */
  | { kind: 'low'; why: string }
  /** The pool should grow (config pool.grow.enabled); containers are still admitted against today's size. */
  | { kind: 'grow'; fromBytes: number; toBytes: number; why: string }
  /** The pool crossed pool.grow.threshold but pool growth is disabled or at its maxSize. */
  | { kind: 'needs-grow'; why: string };
