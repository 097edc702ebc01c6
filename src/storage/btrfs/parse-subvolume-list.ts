/**
 * Parses `btrfs subvolume list <path>` (btrfs-progs 6.2):
 *
 *   ID 258 gen 13 top level 5 path btrfs/subvolumes/72a44e0a...
 *
 * and finds Docker's container subvolumes in it: `<anything/>btrfs/subvolumes/<64 hex>`. Paths are
 * relative to the filesystem's top level, so a data root below it (`/var/lib/docker` on a btrfs
 * root, or inside a `@` subvolume) shows as `var/lib/docker/btrfs/...` or `@/var/lib/...`.
 */

import { ToolOutputError, refuseNul } from '../tool-output-error.js';

export interface SubvolumeRow {
  subvolumeId: number;
  generation: number;
  topLevel: number;
  path: string;
}

const ROW = /^ID (\d+) gen (\d+) top level (\d+) path (.+)$/;
const DOCKER_SUBVOLUME = /(?:^|\/)btrfs\/subvolumes\/([0-9a-f]{64})$/;

export function parseSubvolumeList(stdout: string): SubvolumeRow[] {
  refuseNul(stdout, 'btrfs subvolume list');
  const rows: SubvolumeRow[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    const match = ROW.exec(line);
    if (!match) throw new ToolOutputError(`btrfs subvolume list: unexpected line: ${line}`);
    const [subvolumeId, generation, topLevel] = [match[1], match[2], match[3]].map(Number) as [
      number,
      number,
      number,
    ];
    if (![subvolumeId, generation, topLevel].every(Number.isSafeInteger))
      throw new ToolOutputError(`btrfs subvolume list: number out of range: ${line}`);
    rows.push({
      subvolumeId,
      generation,
      topLevel,
      path: match[4] ?? '',
    });
  }
  return rows;
}

/**
 * Docker layer subvolumes by mount id (the `-init` layers are left out). A mount id that appears
 * twice (two data roots on one filesystem would need a collision of random 256-bit ids) maps to
 * null: ambiguous, never used.
 */
export function dockerSubvolumesByMountId(rows: readonly SubvolumeRow[]): Map<string, number | null> {
  const byMountId = new Map<string, number | null>();
  for (const row of rows) {
    const match = DOCKER_SUBVOLUME.exec(row.path);
    if (!match?.[1]) continue;
    byMountId.set(match[1], byMountId.has(match[1]) ? null : row.subvolumeId);
  }
  return byMountId;
}
