/**
 * Atomic file replacement: write a temporary file in the same directory, fsync it, rename it over
 * the target, fsync the directory. Readers see the old content or the new, never a mix.
 * Used for Docker's btrfs quota files and devicemapper metadata files.
 */
import {
  closeSync,
  fsyncSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
  chownSync,
} from 'node:fs';
import path from 'node:path';

export function writeFileAtomic(file: string, content: string, options: { mode?: number } = {}): void {
  const directory = path.dirname(file);
  const temporary = path.join(directory, `.${path.basename(file)}.autogrow-${process.pid}.tmp`);
  let existing: { mode: number; uid: number; gid: number } | null = null;
  try {
    const stats = statSync(file);
    existing = { mode: stats.mode & 0o7777, uid: stats.uid, gid: stats.gid };
  } catch {
    existing = null;
  }
  const fd = openSync(temporary, 'w', options.mode ?? existing?.mode ?? 0o600);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkSync(temporary);
    throw error;
  }
  closeSync(fd);
  if (existing) {
    try {
      chownSync(temporary, existing.uid, existing.gid);
    } catch {
      // keep going: ownership only matters when the agent is not root
    }
  }
  renameSync(temporary, file);
  fsyncDirectory(directory);
}

/** Makes renames and creations in `directory` durable (a crash cannot undo them). */
export function fsyncDirectory(directory: string): void {
  const fd = openSync(directory, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
