/**
 * The online filesystem grow after the LV grew, one command per filesystem, each one idempotent
 * (a second run after a crash finds nothing to do and succeeds):
 *  - ext4: `resize2fs <device>` (no size: fill the device)
 *  - XFS: `xfs_growfs <mount point>` (XFS grows through the mounted filesystem only)
 *  - btrfs: `btrfs filesystem resize <devid>:max <mount point>`; the devid of our device comes from
 *    `btrfs filesystem show --raw <mount point>` (a multi-device btrfs has several).
 */
import { ToolOutputError, refuseNul } from '../tool-output-error.js';
import type { CommandRunner, ToolName } from '../../exec/runner.js';
import type { GrowableFilesystem } from '../../policy/data-filesystem.js';

export interface FsGrowCommand {
  tool: ToolName;
  args: string[];
}

/** One `devid N size S used U path P` line of `btrfs filesystem show --raw`. */
export interface BtrfsDevice {
  devid: number;
  sizeBytes: number;
  usedBytes: number;
  path: string;
}

const DEVID_LINE = /^\s*devid\s+(\d+)\s+size\s+(\d+)\s+used\s+(\d+)\s+path\s+(\S+)\s*$/;

export function parseBtrfsDevices(stdout: string): BtrfsDevice[] {
  refuseNul(stdout, 'btrfs filesystem show');
  const devices: BtrfsDevice[] = [];
  for (const line of stdout.split('\n')) {
    const match = DEVID_LINE.exec(line);
    if (!match) continue;
    const [devid, sizeBytes, usedBytes] = [match[1], match[2], match[3]].map(Number) as [
      number,
      number,
      number,
    ];
    if (![devid, sizeBytes, usedBytes].every(Number.isSafeInteger))
      throw new ToolOutputError(`btrfs filesystem show: number out of range: ${line}`);
    devices.push({ devid, sizeBytes, usedBytes, path: match[4] as string });
  }
  return devices;
}

/**
 * The devid of the device among `devices`: by path as btrfs prints it, which is one of the names of
 * the dm device (/dev/mapper/<dmName> or /dev/dm-N); when there is only one device, that one.
 */
export function btrfsDevidFor(
  devices: readonly BtrfsDevice[],
  dmName: string,
  kernelName: string | null,
): number {
  const names = new Set([`/dev/mapper/${dmName}`, ...(kernelName ? [`/dev/${kernelName}`] : [])]);
  const matching = devices.filter((device) => names.has(device.path));
  if (matching.length === 1 && matching[0]) return matching[0].devid;
  if (devices.length === 1 && devices[0]) return devices[0].devid;
  throw new Error(
    `btrfs filesystem show lists ${devices.length} devices, none of them is /dev/mapper/${dmName}`,
  );
}

export function fsGrowCommand(
  fsType: GrowableFilesystem,
  devicePath: string,
  mountPoint: string,
  btrfsDevid: number | null,
): FsGrowCommand {
  switch (fsType) {
    case 'ext4':
      return { tool: 'resize2fs', args: [devicePath] };
    case 'xfs':
      return { tool: 'xfs_growfs', args: [mountPoint] };
    case 'btrfs':
      if (btrfsDevid === null) throw new Error('btrfs grow needs the devid of the device');
      return { tool: 'btrfs', args: ['filesystem', 'resize', `${btrfsDevid}:max`, mountPoint] };
  }
}

export async function readBtrfsDevid(
  runner: CommandRunner,
  mountPoint: string,
  dmName: string,
  kernelName: string | null,
  timeoutMs?: number,
): Promise<number> {
  const result = await runner.run({
    tool: 'btrfs',
    args: ['filesystem', 'show', '--raw', mountPoint],
    timeoutMs,
  });
  return btrfsDevidFor(parseBtrfsDevices(result.stdout), dmName, kernelName);
}
