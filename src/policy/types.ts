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
