/**
 * Whether a grow can be made to last, and what to say when it cannot yet: pure rules shared by
 * the manual `grow` command, `status` and doctor. The mechanism is in
 * src/storage/devicemapper/persistence.ts; docs/devicemapper.md explains it.
 *
 * Only devicemapper is concerned: btrfs and overlay2 grows are rewritten into the files Docker
 * re-applies at start (quota files), so they last as soon as they are made. A devicemapper grow
 * lasts at once only for running containers: dockerd 20.10 re-creates a stopped container's
 * device with the size it cached in memory, so until dockerd restarts the grown device must stay
 * active while the container is stopped. A kernel hold does that, and it works only when Docker
 * defers removals (`dm.use_deferred_removal=true`; Docker's stop then leaves an open device in
 * place) and deletions (`dm.use_deferred_deletion=true`; `docker rm` of a held device succeeds
 * and the thin device is deleted once the hold is gone).
 */

/** What `grow` knows before it acts (docker info of the host). */
export interface GrowPersistenceFacts {
  driver: string;
  /** docker info DriverStatus "Deferred Removal Enabled" (null: not reported). */
  deferredRemovalEnabled: boolean | null;
  /** docker info DriverStatus "Deferred Deletion Enabled" (null: not reported). */
  deferredDeletionEnabled: boolean | null;
}

/** The fix operators apply to make every devicemapper grow persistent. */
export const DM_HOLD_FIX =
  'add "dm.use_deferred_removal=true" and "dm.use_deferred_deletion=true" to storage-opts in /etc/docker/daemon.json and restart dockerd (with "live-restore": true containers keep running)';

/**
 * Why a grow on this host cannot be made to survive the container's next stop + start without
 * a running agent winning a race, or null when it can. Docker's stop removes a device nothing
 * keeps open; without deferred removal no hold can keep it open (Docker's synchronous removal of
 * an open device fails and so would the stop), and the next start re-creates the device at the
 * size dockerd cached: "last sector read failed".
 */
export function growPersistenceProblem(facts: GrowPersistenceFacts): string | null {
  if (facts.driver !== 'devicemapper') return null;
  const missing = [
    facts.deferredRemovalEnabled === true ? null : 'deferred removal',
    facts.deferredDeletionEnabled === true ? null : 'deferred deletion',
  ].filter((name): name is string => name !== null);
  if (missing.length === 0) return null;
  return `Docker's devicemapper driver runs without ${missing.join(' and ')}, so no kernel hold can keep the grown device while the container is stopped, and dockerd caches the old size until it restarts: after the container's next stop, \`docker start\` fails ("last sector read failed") unless the agent re-creates the device first`;
}

/**
 * The manual `grow` refusal: the reason (with the fix) when the grow cannot be made persistent
 * and `force` is not given, else null.
 */
export function manualGrowPersistenceRefusal(facts: GrowPersistenceFacts, force: boolean): string | null {
  const problem = growPersistenceProblem(facts);
  if (problem === null || force) return null;
  return `not growing: ${problem}. Fix: ${DM_HOLD_FIX}; or restart dockerd right after the grow. --force grows anyway`;
}

/** A devicemapper container's `detail.persistence` when its grow is not persistent yet. */
export type PendingPersistenceState = 'held' | 'unheld';

export function isPendingPersistenceState(value: unknown): value is PendingPersistenceState {
  return value === 'held' || value === 'unheld';
}

/** One line for `status` and doctor: the state and what makes the grow permanent. */
export function pendingPersistenceAdvice(state: PendingPersistenceState): string {
  return state === 'held'
    ? 'grown; dockerd still caches the old size, a kernel hold keeps the grown device over stop/start until dockerd restarts (restart dockerd, live-restore on, to make it permanent)'
    : 'grown; dockerd still caches the old size and nothing holds the device: the next stop + start fails unless the agent re-creates it first; restart dockerd (live-restore on) to make it permanent';
}
