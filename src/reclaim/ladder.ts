/**
 * Climbs the reclaim ladder: for each rung in order, read Docker afresh, select (./select.ts,
 * pure), remove those items one by one without force, re-read the filesystem. A dry run reads
 * once and prints every rung's selection against the inventory the earlier rungs would leave,
 * removing nothing. With a `stopBelowRatio` (a threshold-triggered run) the climb stops at the
 * first rung after which the filesystem is under it; a scheduled or manual run climbs every rung.
 *
 * A removal Docker refuses (in use, conflict) is reported and skipped; the ladder goes on.
 */
import type { Logger } from '../log/logger.js';
import type { FilesystemUsage } from '../storage/filesystem.js';
import { errorMessage } from '../util/errors.js';
import { knownBytes, selectRung, withoutItems } from './select.js';
import type {
  ReclaimDockerApi,
  ReclaimInventory,
  ReclaimItem,
  ReclaimKind,
  ReclaimRung,
} from '../contracts/reclaim.js';

export type ReclaimTrigger = 'threshold' | 'schedule' | 'manual';
export const RECLAIM_TRIGGERS: readonly ReclaimTrigger[] = ['threshold', 'schedule', 'manual'];

/** How a run ended (a metric label). */
export type ReclaimResult = 'freed' | 'nothing' | 'planned' | 'failed';
export const RECLAIM_RESULTS: readonly ReclaimResult[] = ['freed', 'nothing', 'planned', 'failed'];

export interface RungFailure {
  id: string;
  error: string;
}

export interface RungReport {
  kind: ReclaimKind;
  /** Removed (or, in a dry run, what would be). */
  items: ReclaimItem[];
  failures: RungFailure[];
  /** Docker's sizes of the items (build cache: what Docker says the prune reclaimed). */
  itemBytes: number;
  /** What the filesystem got back across the rung (statfs before - after, at least 0); null in a dry run. */
  freedBytes: number | null;
}

export interface ReclaimReport {
  trigger: ReclaimTrigger;
  dryRun: boolean;
  why: string;
  startedAtMs: number;
  durationMs: number;
  result: ReclaimResult;
  dataRoot: string;
  usedRatioBefore: number | null;
  usedRatioAfter: number | null;
  rungs: RungReport[];
  /** The climb stopped early: the filesystem was under the target (threshold runs only). */
  stoppedAtTarget: boolean;
  /** The run itself failed (Docker unreachable); rungs done before are still listed. */
  error: string | null;
}

export interface LadderDeps {
  docker: ReclaimDockerApi;
  dataRoot: string;
  statfs(dir: string): Promise<FilesystemUsage>;
  logger: Logger;
  nowMs(): number;
}

export interface LadderOptions {
  rungs: readonly ReclaimRung[];
  trigger: ReclaimTrigger;
  why: string;
  dryRun: boolean;
  /** Stop after the first rung that leaves bytes used under this share (null: climb every rung). */
  stopBelowRatio: number | null;
}

const usedRatio = (usage: FilesystemUsage) => (usage.totalBytes > 0 ? usage.usedBytes / usage.totalBytes : 0);

async function readInventory(
  docker: ReclaimDockerApi,
  rungs: readonly ReclaimRung[],
): Promise<ReclaimInventory> {
  const wants = (kind: ReclaimKind) => rungs.some((rung) => rung.kind === kind);
  const [images, containers, buildCache, volumes] = await Promise.all([
    docker.listImagesForReclaim(),
    docker.listContainersForReclaim(),
    wants('build-cache') ? docker.listBuildCache() : Promise.resolve(null),
    wants('volumes') ? docker.listVolumesForReclaim() : Promise.resolve(null),
  ]);
  return { images, containers, buildCache, volumes };
}

/** Reads before a real rung: the build-cache rung is one prune, needing no listing (a /system/df). */
async function readInventoryFor(docker: ReclaimDockerApi, rung: ReclaimRung): Promise<ReclaimInventory> {
  if (rung.kind === 'build-cache') return { images: [], containers: [], buildCache: null, volumes: null };
  return readInventory(docker, [rung]);
}

async function removeItem(docker: ReclaimDockerApi, item: ReclaimItem): Promise<void> {
  switch (item.kind) {
    case 'dangling-images':
      return docker.removeImage(item.id);
    case 'unused-images':
      // tag by tag, as `docker image prune -a`: removing the last tag removes the image
      for (const reference of item.references ?? []) await docker.removeImage(reference);
      return;
    case 'stopped-containers':
      return docker.removeContainer(item.id);
    case 'volumes':
      return docker.removeVolume(item.name);
    case 'build-cache':
      throw new Error('build cache is pruned as a whole');
  }
}

async function statfsOrNull(deps: LadderDeps): Promise<FilesystemUsage | null> {
  try {
    return await deps.statfs(deps.dataRoot);
  } catch (error) {
    deps.logger.warn({ err: errorMessage(error) }, 'reclaim: cannot statfs the data root');
    return null;
  }
}

async function runRung(deps: LadderDeps, rung: ReclaimRung): Promise<Omit<RungReport, 'freedBytes'>> {
  if (rung.kind === 'build-cache') {
    const pruned = await deps.docker.pruneBuildCache(
      rung.unusedForMs === undefined ? {} : { unusedForMs: rung.unusedForMs },
    );
    return {
      kind: rung.kind,
      items: pruned.deletedIds.map((id) => ({ kind: 'build-cache', id, name: id, sizeBytes: null })),
      failures: [],
      itemBytes: pruned.reclaimedBytes,
    };
  }
  const items = selectRung(rung, await readInventoryFor(deps.docker, rung), deps.nowMs());
  const removed: ReclaimItem[] = [];
  const failures: RungFailure[] = [];
  for (const item of items) {
    try {
      await removeItem(deps.docker, item);
      removed.push(item);
    } catch (error) {
      failures.push({ id: item.id, error: errorMessage(error) });
      deps.logger.warn(
        { kind: item.kind, id: item.id, err: errorMessage(error) },
        'reclaim: Docker refused a removal',
      );
    }
  }
  return { kind: rung.kind, items: removed, failures, itemBytes: knownBytes(removed) };
}

export async function runLadder(deps: LadderDeps, options: LadderOptions): Promise<ReclaimReport> {
  const startedAtMs = deps.nowMs();
  const before = await statfsOrNull(deps);
  const rungs: RungReport[] = [];
  let error: string | null = null;
  let stoppedAtTarget = false;
  let last = before;
  try {
    if (options.dryRun) {
      let inventory = await readInventory(deps.docker, options.rungs);
      let estimatedUsedBytes = before?.usedBytes ?? null;
      for (const rung of options.rungs) {
        const items = selectRung(rung, inventory, deps.nowMs());
        inventory = withoutItems(inventory, items);
        const itemBytes = knownBytes(items);
        rungs.push({ kind: rung.kind, items, failures: [], itemBytes, freedBytes: null });
        if (estimatedUsedBytes !== null && before && options.stopBelowRatio !== null) {
          estimatedUsedBytes = Math.max(0, estimatedUsedBytes - itemBytes);
          if (estimatedUsedBytes / Math.max(1, before.totalBytes) < options.stopBelowRatio) {
            stoppedAtTarget = true;
            break;
          }
        }
      }
    } else {
      for (const rung of options.rungs) {
        const done = await runRung(deps, rung);
        const after = await statfsOrNull(deps);
        const freedBytes = last && after ? Math.max(0, last.usedBytes - after.usedBytes) : null;
        rungs.push({ ...done, freedBytes });
        deps.logger.info(
          {
            kind: rung.kind,
            removed: done.items.length,
            refused: done.failures.length,
            freedBytes,
            itemBytes: done.itemBytes,
          },
          'reclaim rung done',
        );
        last = after ?? last;
        if (options.stopBelowRatio !== null && after && usedRatio(after) < options.stopBelowRatio) {
          stoppedAtTarget = true;
          break;
        }
      }
    }
  } catch (caught) {
    error = errorMessage(caught);
    deps.logger.error({ err: error }, 'reclaim failed');
  }
  const removedAny = rungs.some((rung) => rung.items.length > 0);
  const result: ReclaimResult =
    error !== null ? 'failed' : options.dryRun ? 'planned' : removedAny ? 'freed' : 'nothing';
  const after = options.dryRun ? null : await statfsOrNull(deps);
  return {
    trigger: options.trigger,
    dryRun: options.dryRun,
    why: options.why,
    startedAtMs,
    durationMs: deps.nowMs() - startedAtMs,
    result,
    dataRoot: deps.dataRoot,
    usedRatioBefore: before ? usedRatio(before) : null,
    usedRatioAfter: after ? usedRatio(after) : null,
    rungs,
    stoppedAtTarget,
    error,
  };
}
