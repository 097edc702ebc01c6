/**
 * The backing filesystem of Docker's data root, for the quota drivers (btrfs, overlay2 on XFS):
 * its statfs is the "pool" containers grow into, and its mount options (from
 * /proc/self/mountinfo) tell whether quotas can work at all. Node's fs APIs only: no process.
 */
import { ToolOutputError, refuseNul } from './tool-output-error.js';
import { readFile, realpath, statfs } from 'node:fs/promises';
import type { PoolUsage } from './types.js';

/** statfs f_type values (linux/magic.h). */
export const FS_MAGIC = {
  btrfs: 0x9123683e,
  xfs: 0x58465342,
} as const;

export interface FilesystemUsage {
  /** f_type from statfs. */
  typeMagic: number;
  totalBytes: number;
  /** Bytes an unprivileged writer can still use (f_bavail): the conservative free figure. */
  availableBytes: number;
  /** total - available: what admission must treat as taken. */
  usedBytes: number;
  totalInodes: number;
  freeInodes: number;
}

export async function statfsUsage(dir: string): Promise<FilesystemUsage> {
  const stats = await statfs(dir);
  const totalBytes = stats.blocks * stats.bsize;
  const availableBytes = stats.bavail * stats.bsize;
  return {
    typeMagic: stats.type,
    totalBytes,
    availableBytes,
    usedBytes: Math.max(0, totalBytes - availableBytes),
    totalInodes: stats.files,
    freeInodes: stats.ffree,
  };
}

/** The pool of a quota driver: the data root's filesystem. */
export function filesystemPool(
  dataRoot: string,
  usage: FilesystemUsage,
  committedBytes: number,
  readOnly: boolean,
): PoolUsage {
  return {
    name: dataRoot,
    kind: 'filesystem',
    dataUsedBytes: usage.usedBytes,
    dataTotalBytes: usage.totalBytes,
    metadataUsedBytes: null,
    metadataTotalBytes: null,
    mode: readOnly ? 'ro' : 'rw',
    needsCheck: false,
    committedBytes,
  };
}

/** One line of /proc/self/mountinfo (proc(5)). */
export interface MountEntry {
  mountId: number;
  parentId: number;
  /** "major:minor" of st_dev. */
  majorMinor: string;
  /** Root of the mount within the filesystem (a btrfs subvolume shows here). */
  root: string;
  mountPoint: string;
  /** Per-mount options (rw, ro, relatime...). */
  mountOptions: readonly string[];
  fsType: string;
  source: string;
  /** Per-superblock options (prjquota, space_cache=v2, subvol=...). */
  superOptions: readonly string[];
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040, \011, \012, \134). */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Mount ids are small kernel integers; more than 9 digits is not a mount id. */
const MOUNT_ID = /^\d{1,9}$/;
const MAJOR_MINOR = /^\d{1,9}:\d{1,9}$/;

export function parseMountInfo(text: string): MountEntry[] {
  refuseNul(text, 'mountinfo');
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const separator = line.indexOf(' - ');
    if (separator < 0) throw new ToolOutputError(`mountinfo line without separator: ${JSON.stringify(line)}`);
    const left = line.slice(0, separator).split(' ');
    const right = line.slice(separator + 3).split(' ');
    const [mountId, parentId, majorMinor, root, mountPoint, options] = left;
    const [fsType, source, superOptions] = right;
    if (
      mountId === undefined ||
      parentId === undefined ||
      majorMinor === undefined ||
      root === undefined ||
      mountPoint === undefined ||
      options === undefined ||
      fsType === undefined ||
      source === undefined
    ) {
      throw new ToolOutputError(`mountinfo line with missing fields: ${JSON.stringify(line)}`);
    }
    if (!MOUNT_ID.test(mountId) || !MOUNT_ID.test(parentId) || !MAJOR_MINOR.test(majorMinor))
      throw new ToolOutputError(`mountinfo line with a malformed id or device: ${JSON.stringify(line)}`);
    entries.push({
      mountId: Number(mountId),
      parentId: Number(parentId),
      majorMinor,
      root: unescapeMountField(root),
      mountPoint: unescapeMountField(mountPoint),
      mountOptions: options.split(','),
      fsType,
      source: unescapeMountField(source),
      superOptions: (superOptions ?? '').split(',').filter(Boolean),
    });
  }
  return entries;
}

/**
 * The mount a path lives on: the longest mount point that is the path or one of its parents; of
 * several mounts on the same point the last one (it hides the others).
 */
export function findMountFor(entries: readonly MountEntry[], resolvedPath: string): MountEntry | null {
  let best: MountEntry | null = null;
  for (const entry of entries) {
    const point = entry.mountPoint;
    const covers =
      point === '/' ||
      resolvedPath === point ||
      resolvedPath.startsWith(point.endsWith('/') ? point : `${point}/`);
    if (!covers) continue;
    if (!best || point.length >= best.mountPoint.length) best = entry;
  }
  return best;
}

/** The mount holding `dir` (symlinks resolved), from the agent's own mount namespace. */
export async function mountOf(
  dir: string,
  mountInfoFile = '/proc/self/mountinfo',
): Promise<MountEntry | null> {
  const [resolved, text] = await Promise.all([realpath(dir), readFile(mountInfoFile, 'utf8')]);
  return findMountFor(parseMountInfo(text), resolved);
}

export function hasOption(entry: MountEntry, ...names: string[]): boolean {
  return [...entry.mountOptions, ...entry.superOptions].some((option) => names.includes(option));
}
