/**
 * Picks the storage backend for the daemon's storage driver. The one place that maps a driver name
 * to an implementation; `doctor` and the agent both use it.
 */
import type { DockerInfo } from '../docker/model.js';
import { createBtrfsBackend } from './btrfs/index.js';
import { createDevicemapperBackend } from './devicemapper/index.js';
import { createOverlayXfsBackend } from './overlay-xfs/index.js';
import {
  SUPPORTED_STORAGE_DRIVERS,
  type BackendDeps,
  type StorageBackend,
  type StorageDriverName,
} from './types.js';
import { containerdImageStore } from './containerd/store.js';
import { createContainerdBackend } from './containerd/index.js';

export { SUPPORTED_STORAGE_DRIVERS };

export class UnsupportedDriverError extends Error {
  override readonly name = 'UnsupportedDriverError';
  constructor(
    readonly driver: string,
    /** Why, when there is more to say than the name (the containerd image store). */
    notice?: string,
  ) {
    super(
      notice ??
        `storage driver ${JSON.stringify(driver)} is not supported: docker-autogrow serves devicemapper, btrfs ` +
          'and overlay2 on XFS with project quotas',
    );
  }
}

export function isSupportedDriver(driver: string): driver is StorageDriverName {
  return (SUPPORTED_STORAGE_DRIVERS as readonly string[]).includes(driver);
}

/** Creates the backend for `info.driver`, or throws {@link UnsupportedDriverError}. */
export function createBackendFor(info: DockerInfo, deps: BackendDeps): StorageBackend {
  switch (info.driver) {
    case 'devicemapper':
      return createDevicemapperBackend(deps);
    case 'btrfs':
      return createBtrfsBackend(deps);
    case 'overlay2':
      return createOverlayXfsBackend(deps);
    default: {
      const store = containerdImageStore(info);
      // observe-only: usage and the pool, no limits (Docker ignores size there)
      if (store) return createContainerdBackend(deps);
      throw new UnsupportedDriverError(info.driver);
    }
  }
}
