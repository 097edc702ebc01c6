/**
 * A bounded, resumable walk of one writable layer (an overlay upperdir): the only usage counter the
 * containerd image store's overlayfs snapshotter has. Docker sets no project id and no qgroup there
 * (upperdirs are plain directories), so there is no kernel counter to read; this walk costs one
 * readdir per directory and one lstat per entry, in the agent's process (no child process).
 *
 * A pass gives the walk an entry budget; a walk that runs out keeps its place (the directories not
 * read yet) and goes on at the next pass, so a layer of a million files costs a bounded amount per
 * pass and is complete after a few passes.
 *
 * Bytes are allocated blocks (st_blocks * 512, what `du` counts: a sparse file counts what it
 * holds, delayed-allocation data counts on ext4 and XFS), directories included, an inode with
 * several links once.
 */
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';

/** What the walk needs of the filesystem (tests inject a fake fed with recorded trees). */
export interface WalkFs {
  readdir(dir: string): Promise<string[]>;
  lstat(file: string): Promise<{
    isDirectory(): boolean;
    blocks: number;
    nlink: number;
    ino: number;
  }>;
}

export const nodeWalkFs: WalkFs = {
  readdir: (dir) => readdir(dir),
  lstat: (file) => lstat(file),
};

export interface LayerWalk {
  readonly root: string;
  /** Directories still to read (the root first). */
  pending: string[];
  bytes: number;
  /** Entries seen (files, directories, links, whiteouts), the root included. */
  entries: number;
  /** Inodes with more than one link already counted. */
  readonly linkedInodes: Set<number>;
  /** When the walk started (ms since the epoch). */
  readonly startedAtMs: number;
}

export function startLayerWalk(root: string, nowMs: number): LayerWalk {
  return { root, pending: [root], bytes: 0, entries: 0, linkedInodes: new Set(), startedAtMs: nowMs };
}

export function isWalkDone(walk: LayerWalk): boolean {
  return walk.pending.length === 0;
}

/** lstat calls in flight at once within one directory: enough to hide latency, few fds. */
const STAT_CONCURRENCY = 32;

/**
 * Goes on with `walk` until it is done or about `entryBudget` entries were looked at; returns the
 * entries spent (a directory is read whole, so the budget can be exceeded by one directory's
 * entries). A directory that vanished meanwhile (a file deleted in the container) is skipped; a
 * root that cannot be read throws.
 */
export async function continueLayerWalk(
  walk: LayerWalk,
  entryBudget: number,
  fs: WalkFs = nodeWalkFs,
): Promise<number> {
  let spent = 0;
  if (walk.entries === 0 && walk.pending[0] === walk.root) {
    const rootStat = await fs.lstat(walk.root);
    if (!rootStat.isDirectory()) throw new Error(`${walk.root} is not a directory`);
    walk.bytes += rootStat.blocks * 512;
    walk.entries += 1;
    spent += 1;
  }
  while (walk.pending.length > 0 && spent < entryBudget) {
    const dir = walk.pending.pop()!;
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch (error) {
      if (dir === walk.root) throw error;
      continue; // removed or replaced while the walk was paused: its bytes are gone too
    }
    for (let start = 0; start < names.length; start += STAT_CONCURRENCY) {
      const batch = names.slice(start, start + STAT_CONCURRENCY).map((name) => path.join(dir, name));
      const stats = await Promise.all(batch.map((file) => fs.lstat(file).catch(() => null)));
      stats.forEach((stat, index) => {
        spent += 1;
        if (!stat) return;
        walk.entries += 1;
        if (stat.isDirectory()) walk.pending.push(batch[index]!);
        else if (stat.nlink > 1) {
          if (walk.linkedInodes.has(stat.ino)) return;
          walk.linkedInodes.add(stat.ino);
        }
        walk.bytes += stat.blocks * 512;
      });
    }
  }
  return spent;
}
