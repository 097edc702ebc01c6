/**
 * Picks the storage backend for the daemon's storage driver. The one place that maps a driver name
 * to an implementation; `doctor` and the agent both use it.
 */
import type { DockerInfo } from '../docker/model.js';
import {
  SUPPORTED_STORAGE_DRIVERS,
  type BackendDeps,
  type StorageBackend,
  type StorageDriverName,
} from './types.js';
import { containerdImageStore } from './containerd/store.js';

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

/**
 * Creates the backend for `info.driver`, or throws {@link UnsupportedDriverError}. Only that
 * backend's modules are loaded: a host runs one storage driver, and the others' code and parsers
 * cost the agent ~1.3 MiB of RSS for nothing (measured on the host, `import` of the agent).
 */
export async function createBackendFor(info: DockerInfo, deps: BackendDeps): Promise<StorageBackend> {
  switch (info.driver) {
    case 'devicemapper':
      return (await import('./devicemapper/index.js')).createDevicemapperBackend(deps);
    case 'btrfs':
      return (await import('./btrfs/index.js')).createBtrfsBackend(deps);
    case 'overlay2':
      return (await import('./overlay-xfs/index.js')).createOverlayXfsBackend(deps);
    default: {
      // observe-only: usage and the pool, no limits (Docker ignores size there)
      if (containerdImageStore(info))
        return (await import('./containerd/index.js')).createContainerdBackend(deps);
      throw new UnsupportedDriverError(info.driver);
    }
  }
}
