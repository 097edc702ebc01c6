/**
 * Parses the filesystem UUID out of `btrfs filesystem show --raw <path>`:
 *
 *   Label: none  uuid: 2e9355e8-d328-42ec-9aac-de79ee1866b4
 *
 * The UUID names the filesystem's directory in sysfs (/sys/fs/btrfs/<uuid>/qgroups/...).
 */

import { ToolOutputError, refuseNul } from '../tool-output-error.js';

const UUID_LINE = /\buuid: ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b/;

export function parseFilesystemUuid(stdout: string): string {
  refuseNul(stdout, 'btrfs filesystem show');
  const uuids = stdout
    .split('\n')
    .map((line) => UUID_LINE.exec(line)?.[1])
    .filter((uuid): uuid is string => uuid !== undefined);
  if (uuids.length !== 1) {
    throw new ToolOutputError(`btrfs filesystem show: expected one filesystem uuid, found ${uuids.length}`);
  }
  return uuids[0] as string;
}
