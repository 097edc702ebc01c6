/**
 * A failed grow step, the same shape for every driver: which step failed and what it left the
 * storage as. The reconciler carries both into the journal's `grow-failed` record and the metric
 * `docker_autogrow_grow_failures_total{driver,step}`, so an operator sees where grows break
 * without reading logs.
 */
import { errorMessage } from '../util/errors.js';

/**
 * What a failed step left behind. `unchanged`: nothing was changed; `restored`: a change was
 * undone; `grown-fs-pending`: the device grew, its filesystem not yet; `grown-persist-pending`: it
 * grew, but what makes the size outlive a restart is not written yet; `limit-set-file-pending`:
 * the live limit is raised, the file Docker re-applies at start is not (the next grow repairs it);
 * `suspended`: a device is left suspended (needs a hand); `unknown`: the step's effect could not be
 * read back.
 */
export type GrowFailureState =
  | 'unchanged'
  | 'restored'
  | 'grown-fs-pending'
  | 'grown-persist-pending'
  | 'limit-set-file-pending'
  | 'suspended'
  | 'unknown';

/** The `step` of a failure that carried none (a plain error out of a backend). */
export const UNKNOWN_GROW_STEP = 'unknown';

export class StorageGrowError extends Error {
  override readonly name: string = 'StorageGrowError';
  constructor(
    message: string,
    /** A short name of the step (`dmsetup load`, `btrfs qgroup limit`, `read back`): a metric label. */
    readonly step: string,
    readonly deviceState: GrowFailureState,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface GrowFailureDetails {
  step: string;
  deviceState: GrowFailureState;
}

/** The step and state of a failed grow; a plain error says `unknown` for both. */
export function growFailureDetails(error: unknown): GrowFailureDetails {
  if (error instanceof StorageGrowError) return { step: error.step, deviceState: error.deviceState };
  return { step: UNKNOWN_GROW_STEP, deviceState: 'unknown' };
}

/**
 * Where a grow has got to, for backends whose steps are a straight line: mark each step before it
 * runs (`at`), and wrap what escapes (`failed`) so the error names the step it broke in. The
 * message stays the original one.
 */
export class GrowProgress {
  private step = 'prepare';
  private state: GrowFailureState = 'unchanged';

  /** The next step is `step`; if it fails, the storage is left `stateIfFailed`. */
  at(step: string, stateIfFailed: GrowFailureState): void {
    this.step = step;
    this.state = stateIfFailed;
  }

  failed(error: unknown): StorageGrowError {
    if (error instanceof StorageGrowError) return error;
    return new StorageGrowError(errorMessage(error), this.step, this.state, { cause: error });
  }
}

/** Runs a straight-line grow with a {@link GrowProgress}; what escapes names the step it broke in. */
export async function withGrowProgress<T>(grow: (progress: GrowProgress) => Promise<T>): Promise<T> {
  const progress = new GrowProgress();
  try {
    return await grow(progress);
  } catch (error) {
    throw progress.failed(error);
  }
}
