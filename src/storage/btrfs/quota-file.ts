/**
 * Docker's btrfs quota files: `<dataRoot>/btrfs/quotas/<mountId>` holds the container's size limit
 * as a decimal byte count with no newline. Docker re-applies it with `btrfs qgroup limit` every
 * time it mounts the layer (every container start), so a grow that does not rewrite this file is
 * undone by the next `docker restart` — and the start then fails with "Failed to limit qgroup ...
 * disk quota exceeded" once usage is above the old limit (measured, see
 * /work/shared/reference/real-outputs/README.md).
 */
import { readFile } from 'node:fs/promises';
import { isLayerHash } from '../../docker/ids.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import { pathUnderDataRoot } from '../layerdb.js';

export function quotaFilePath(dataRoot: string, mountId: string): string {
  if (!isLayerHash(mountId)) throw new Error(`not a layer id: ${JSON.stringify(mountId)}`);
  return pathUnderDataRoot(dataRoot, 'btrfs', 'quotas', mountId);
}

/** Docker's own format: decimal digits only (it parses with strconv.ParseUint). */
export function parseQuotaFile(content: string, file: string): number {
  if (!/^\d+$/.test(content))
    throw new Error(`${file}: not a byte count: ${JSON.stringify(content.slice(0, 40))}`);
  const bytes = Number(content);
  if (!Number.isSafeInteger(bytes)) throw new Error(`${file}: byte count out of range`);
  return bytes;
}

/** The limit Docker will re-apply at the next start; null when the file does not exist (no limit). */
export async function readQuotaFile(dataRoot: string, mountId: string): Promise<number | null> {
  const file = quotaFilePath(dataRoot, mountId);
  try {
    return parseQuotaFile(await readFile(file, 'utf8'), file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Atomic replace (temp file, fsync, rename, fsync dir), in Docker's format. */
export function writeQuotaFile(dataRoot: string, mountId: string, bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error(`not a positive byte count: ${bytes}`);
  writeFileAtomic(quotaFilePath(dataRoot, mountId), String(bytes), { mode: 0o644 });
}
