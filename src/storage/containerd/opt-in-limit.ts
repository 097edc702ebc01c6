/**
 * Opt-in size limits on the containerd image store, where Docker ignores `--storage-opt size=`:
 * a container labelled `autogrow.size=<size>` gets an XFS project of its own on its snapshot
 * directory (`.../snapshots/<n>`, the parent of the overlay's upperdir `fs` and workdir `work`)
 * and a hard block limit of that size, which the agent then grows by the normal policy.
 *
 * Why the snapshot directory and not the upperdir: overlayfs copies a file up by creating it in
 * the workdir and renaming it into the upperdir, and XFS refuses (EXDEV) a rename into a
 * PROJINHERIT directory of another project, so the workdir must be in the same project (Docker's
 * overlay2 quota does the same with the layer directory above `diff` and `work`).
 *
 * What persists, and where: the project id lives on the inodes (set recursively with PROJINHERIT,
 * so files created later inherit it), the limit in the filesystem's quota records; both survive a
 * container stop/start, a dockerd restart and an agent restart, because containerd keeps a
 * container's snapshot for the container's life. The agent keeps nothing else: at start it reads
 * the project id back from the directory.
 *
 * Needs the filesystem under the snapshotter root to be XFS mounted with enforced project quotas;
 * otherwise the label is shown as ignored, with why, and the container is observed by the walk.
 */
import path from 'node:path';
import type { MountEntry } from '../filesystem.js';
import { hasOption } from '../filesystem.js';
import { parseSizeBytes } from '../../util/units.js';
import { MAX_PROJECT_ID } from '../overlay-xfs/project-quota.js';

/** The opt-in label: the initial limit. The policy labels (threshold, step, max-size) apply too. */
export const SIZE_LABEL = 'autogrow.size';

/**
 * The agent's project ids start here. Docker's overlay2 quota counts up from 1 (or from its data
 * root's project id), so a containerd root that shares an XFS with overlay2 layers does not collide;
 * within the range the agent takes the next id above every id the quota report shows.
 */
export const AGENT_PROJECT_ID_BASE = 1_000_000_000;

export function isAgentProjectId(projectId: number): boolean {
  return Number.isSafeInteger(projectId) && projectId >= AGENT_PROJECT_ID_BASE && projectId <= MAX_PROJECT_ID;
}

/** Smallest limit the label may ask for: below this a container cannot even start writing. */
const MIN_LIMIT_BYTES = 1024 * 1024;

export type SizeLabel = { bytes: number } | { invalid: string } | null;

/** The container's `autogrow.size` label, parsed; null when it has none. */
export function sizeLabel(labels: Readonly<Record<string, string>>): SizeLabel {
  const raw = labels[SIZE_LABEL];
  if (raw === undefined) return null;
  try {
    const bytes = parseSizeBytes(raw);
    if (bytes < MIN_LIMIT_BYTES) return { invalid: `${SIZE_LABEL}=${raw} is below 1M` };
    return { bytes };
  } catch (error) {
    return { invalid: `${SIZE_LABEL}=${JSON.stringify(raw)} ignored: ${(error as Error).message}` };
  }
}

/**
 * The snapshot directory holding `upperDir` (`.../snapshots/<n>/fs`) and the workdir
 * (`.../snapshots/<n>/work`): the directory the project is set on. Null when the layout is not
 * containerd's overlayfs snapshotter's (then no limit is set).
 */
export function snapshotDirOf(upperDir: string, workDir: string | null): string | null {
  if (!/\/snapshots\/\d+\/fs$/.test(upperDir)) return null;
  const dir = path.dirname(upperDir);
  return workDir === path.join(dir, 'work') ? dir : null;
}

export type QuotaCapability = { mountPoint: string } | { why: string };

/** Whether project quotas can limit layers under the snapshotter root, from its mount. */
export function quotaCapability(root: string, mount: MountEntry | null): QuotaCapability {
  if (!mount) return { why: `no mount found for ${root}` };
  if (mount.fsType !== 'xfs') {
    return {
      why: `the containerd root ${root} is on ${mount.fsType} (${mount.mountPoint}), not XFS with project quotas`,
    };
  }
  if (!hasOption(mount, 'prjquota', 'pquota')) {
    return {
      why: `the containerd root's XFS at ${mount.mountPoint} is mounted without project quotas (${mount.superOptions.join(',')}; mount it with -o pquota)`,
    };
  }
  if (hasOption(mount, 'pqnoenforce')) {
    return {
      why: `the containerd root's XFS at ${mount.mountPoint} accounts project quotas but does not enforce them (pqnoenforce)`,
    };
  }
  return { mountPoint: mount.mountPoint };
}

/** The next free agent project id: above every id in use (in the report or on a known layer). */
export function nextAgentProjectId(reportIds: Iterable<number>, knownIds: Iterable<number>): number {
  let highest = AGENT_PROJECT_ID_BASE - 1;
  for (const id of [...reportIds, ...knownIds]) if (isAgentProjectId(id) && id > highest) highest = id;
  const next = highest + 1;
  if (next > MAX_PROJECT_ID) throw new Error('no XFS project id left in the agent range');
  return next;
}

/**
 * The first limit: the label's size, or, when the layer already holds more than that (labelled
 * container started before the agent could act), what it holds plus the label's size, so setting
 * the limit never makes a running container fail at once. Never below what it holds.
 */
export function initialLimitBytes(labelBytes: number, usedBytes: number): number {
  return usedBytes >= labelBytes ? usedBytes + labelBytes : labelBytes;
}
