/** A container's usage as a backend reports it, for policy, report and guard tests. */
import type { ContainerUsage } from '../../src/storage/types.js';

/** btrfs-style usage: no inodes, no filesystem type; `extra` overrides any field. */
export function containerUsage(
  containerId: string,
  sizeBytes: number | null,
  usedBytes: number | null,
  extra: Partial<ContainerUsage> = {},
): ContainerUsage {
  return {
    containerId,
    driver: 'btrfs',
    sizeBytes,
    usedBytes,
    inodesUsed: null,
    inodesTotal: null,
    fsType: null,
    detail: {},
    ...extra,
  };
}
