/**
 * Live qgroup counters from sysfs (kernel >= 5.9): /sys/fs/btrfs/<uuid>/qgroups/<level>_<id>/.
 *
 * Why: `btrfs qgroup show` reports the qgroup's *committed* referenced bytes, which move only at a
 * transaction commit (up to 30 s apart). Measured on this project's host: a writer put 1200 MiB
 * into a container in 1.4 s while `qgroup show` still said 2 MiB. The kernel enforces the limit on
 * referenced + reserved bytes (`rsv_data` and the metadata reservations), which sysfs shows at
 * once. Plain file reads: no process, no sync, no forced commit.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { QgroupId } from './parse-qgroup-show.js';

export const DEFAULT_BTRFS_SYSFS_ROOT = '/sys/fs/btrfs';

const FS_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface LiveQgroupUsage {
  referencedBytes: number;
  /** rsv_data + rsv_meta_pertrans + rsv_meta_prealloc: written but not yet accounted. */
  reservedBytes: number;
  /** max_referenced; null when there is no referenced limit (0 in sysfs). */
  maxReferencedBytes: number | null;
}

function assertUuid(fsUuid: string): string {
  if (!FS_UUID.test(fsUuid)) throw new Error(`not a btrfs filesystem uuid: ${JSON.stringify(fsUuid)}`);
  return fsUuid;
}

// Synchronous on purpose: a sysfs counter is a few bytes served from memory, and six of them per
// container per pass cost ~10x less CPU read synchronously than through the promise-based API
// (measured by the benchmarks: 15-19 ms against 71-230 ms for 600 reads).
function readCounter(file: string): number {
  const text = readFileSync(file, 'utf8').trim();
  if (!/^\d+$/.test(text)) throw new Error(`${file}: not a counter: ${JSON.stringify(text)}`);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new Error(`${file}: counter out of range`);
  return value;
}

export function qgroupSysfsDir(sysfsRoot: string, fsUuid: string, qgroup: QgroupId): string {
  return path.join(sysfsRoot, assertUuid(fsUuid), 'qgroups', `${qgroup.level}_${qgroup.id}`);
}

/** Null when the kernel has no such directory (older kernel, qgroup gone). */
export async function readLiveQgroup(
  sysfsRoot: string,
  fsUuid: string,
  qgroup: QgroupId,
): Promise<LiveQgroupUsage | null> {
  const dir = qgroupSysfsDir(sysfsRoot, fsUuid, qgroup);
  try {
    const [referenced, rsvData, rsvMetaPertrans, rsvMetaPrealloc, maxReferenced, limitFlags] = [
      'referenced',
      'rsv_data',
      'rsv_meta_pertrans',
      'rsv_meta_prealloc',
      'max_referenced',
      'limit_flags',
    ].map((name) => readCounter(path.join(dir, name)));
    // BTRFS_QGROUP_LIMIT_MAX_RFER = 1
    const hasReferencedLimit = ((limitFlags ?? 0) & 1) === 1;
    return {
      referencedBytes: referenced ?? 0,
      reservedBytes: (rsvData ?? 0) + (rsvMetaPertrans ?? 0) + (rsvMetaPrealloc ?? 0),
      maxReferencedBytes: hasReferencedLimit ? (maxReferenced ?? null) : null,
    };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

export interface QuotaFlags {
  /** qgroups/enabled; null when the kernel does not show it. */
  enabled: boolean | null;
  /** qgroups/inconsistent: limits and usage are unreliable until `btrfs quota rescan`. */
  inconsistent: boolean | null;
}

export async function readQuotaFlags(sysfsRoot: string, fsUuid: string): Promise<QuotaFlags> {
  const dir = path.join(sysfsRoot, assertUuid(fsUuid), 'qgroups');
  const flag = async (name: string): Promise<boolean | null> => {
    try {
      return readCounter(path.join(dir, name)) === 1;
    } catch {
      return null;
    }
  };
  return { enabled: await flag('enabled'), inconsistent: await flag('inconsistent') };
}
