/**
 * The report of one pass: everything the agent observed, decided and did. Logs, metrics, `once
 * --json` and `status` are all derived from it, so they can never disagree.
 */
import type { Decision } from '../policy/types.js';
import type { GrowFailureDetails } from '../storage/grow-error.js';
import type { ContainerUsage, PoolUsage, StorageDriverName, UnpersistedDevice } from '../storage/types.js';

export interface ProbeReport {
  /** e.g. `btrfs qgroup show`, `dmsetup status`, `docker inventory` */
  name: string;
  ok: boolean;
  durationMs: number;
  error?: string;
}

export type GrowOutcome =
  | { kind: 'grown'; fromBytes: number; toBytes: number; durationMs: number }
  | { kind: 'noop'; sizeBytes: number; durationMs: number }
  // step and deviceState: where it broke (`unknown` when the backend did not say), what it left
  | ({
      kind: 'failed';
      fromBytes: number;
      toBytes: number;
      durationMs: number;
      error: string;
    } & Partial<GrowFailureDetails>)
  | { kind: 'planned'; fromBytes: number; toBytes: number; steps: ReadonlyArray<readonly string[]> }
  // the grow failed because Docker removed the container meanwhile: not a failure (no backoff)
  | { kind: 'container-gone'; fromBytes: number; toBytes: number; durationMs: number; error: string };

export interface ContainerReport {
  containerId: string;
  name: string;
  driver: StorageDriverName;
  usage: ContainerUsage | null;
  /** Name of the rule that applies (`defaults` when none matched; `label` when labels overrode). */
  ruleName: string;
  /** Effective max size for this container, for status and the at-max alert. */
  maxSizeBytes: number | null;
  decision: Decision;
  /** Estimated seconds until full at the recent fill rate; null when not filling or unknown. */
  timeToFullSeconds: number | null;
  outcome?: GrowOutcome;
  /** Warnings about this container's labels (invalid values ignored). */
  labelWarnings: readonly string[];
  /** Active failure backoff: when it ends (ms since epoch) or null. */
  backoffUntilMs: number | null;
  /** Effective grow threshold (0..1) after labels, rules and defaults. */
  thresholdRatio: number;
  /** When the cooldown after the last successful grow ends (ms since epoch), or null when none runs. */
  cooldownUntilMs: number | null;
}

export interface PoolAction {
  kind: 'grown' | 'failed' | 'planned' | 'needed-but-disabled';
  fromBytes: number;
  toBytes: number;
  error?: string;
}

export interface PassReport {
  startedAtMs: number;
  durationMs: number;
  driver: StorageDriverName | null;
  dryRun: boolean;
  pool: PoolUsage | null;
  poolAction?: PoolAction;
  containers: readonly ContainerReport[];
  probes: readonly ProbeReport[];
  /** Pass-level problems (the pass went on). */
  errors: readonly string[];
  /**
   * Set when the pass covered only these containers (`runPass({ onlyContainerId })`); consumers
   * must not treat containers missing from `containers` as gone. Absent for whole-host passes
   * (scheduled passes and start events); the fill guard asks for one-container passes.
   */
  onlyContainerIds?: readonly string[];
  /**
   * devicemapper: grown devices dockerd does not cache at their grown size yet, including those
   * of stopped containers (absent from `containers`): status, the unpersisted metric and doctor
   * name them with the fix. Absent for other drivers.
   */
  unpersisted?: readonly UnpersistedReport[];
}

export interface UnpersistedReport extends UnpersistedDevice {
  /** The container's name from the inventory (its short id when the inventory lacks it). */
  name: string;
}
