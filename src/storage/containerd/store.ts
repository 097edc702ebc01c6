/**
 * Docker's containerd image store (default for fresh installs since Engine 29; opt-in on 24-28 with
 * `"features": {"containerd-snapshotter": true}`): detection, and each container's writable layer
 * found from its overlay mount.
 *
 * There, Docker accepts `--storage-opt size=` and ignores it (moby daemon/containerd/image_snapshot.go
 * never passes StorageOpt on; measured on 28.5.2: a `size=64M` container wrote 100 MiB), writable
 * layers live under containerd's root (`<data-root>/containerd/daemon/io.containerd.snapshotter.v1.
 * overlayfs/snapshots/<n>/fs` when dockerd runs its own containerd, /var/lib/containerd/... with the
 * containerd service), and from API 1.52 inspect has `Storage.RootFS.Snapshot` instead of GraphDriver.
 * The writable layer is the `upperdir=` of the container's root overlay in /proc/<pid>/mountinfo:
 * one file read per running container, no process, no Docker call.
 */
import type { DockerInfo } from '../../docker/model.js';

/** containerd's plugin type for snapshotters, as `docker info` DriverStatus `driver-type` shows it. */
export const CONTAINERD_SNAPSHOTTER_DRIVER_TYPE = 'io.containerd.snapshotter.v1';

export interface ContainerdImageStore {
  /** The snapshotter (overlayfs, native, btrfs, ...): `docker info` Driver. */
  snapshotter: string;
}

/** The containerd image store when `docker info` says so (DriverStatus driver-type), else null. */
export function containerdImageStore(info: DockerInfo): ContainerdImageStore | null {
  const driverType = info.driverStatus.find(([key]) => key === 'driver-type')?.[1];
  return driverType === CONTAINERD_SNAPSHOTTER_DRIVER_TYPE ? { snapshotter: info.driver } : null;
}

/** What doctor and status say about such a host, plainly. */
export function containerdStoreNotice(store: ContainerdImageStore): string {
  return (
    `Docker uses the containerd image store (snapshotter ${store.snapshotter}): it accepts --storage-opt size= and ` +
    "ignores it, so no container on this host has a size limit from Docker; docker-autogrow observes each container's " +
    'writable-layer usage and the filesystem under the containerd root, and, when that filesystem is XFS ' +
    'mounted with pquota, limits and grows the containers labelled autogrow.size=<size> itself (XFS project ' +
    'quotas on their snapshots); otherwise switch to "storage-driver": "overlay2" on XFS with pquota, or ' +
    'btrfs, with "features": {"containerd-snapshotter": false}, for per-container limits'
  );
}

export interface OverlayLayers {
  /** The container's writable layer. */
  upperDir: string;
  workDir: string | null;
  lowerDirs: string[];
  /** The snapshotter's root: everything before /snapshots/<n>/fs (the pool's filesystem lives here). */
  snapshotterRoot: string | null;
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040 ...). */
function unescapeMountinfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/**
 * The overlay mounted at the container's `/`, read from its init process's /proc/<pid>/mountinfo
 * (the container's own mount namespace, so it works whichever namespace dockerd runs in). Null when
 * the root is not an overlay (another snapshotter) or the text has no root line.
 */
export function containerRootOverlay(mountinfo: string): OverlayLayers | null {
  for (const line of mountinfo.split('\n')) {
    const separator = line.indexOf(' - ');
    if (separator < 0) continue;
    const before = line.slice(0, separator).split(' ');
    const after = line.slice(separator + 3).split(' ');
    if (before[4] !== '/' || after[0] !== 'overlay') continue;
    const options = new Map<string, string>();
    for (const option of (after[2] ?? '').split(',')) {
      const equals = option.indexOf('=');
      if (equals > 0) options.set(option.slice(0, equals), unescapeMountinfo(option.slice(equals + 1)));
    }
    const upperDir = options.get('upperdir');
    if (!upperDir?.startsWith('/')) return null;
    const snapshots = /^(.*)\/snapshots\/\d+\/fs$/.exec(upperDir);
    return {
      upperDir,
      workDir: options.get('workdir') ?? null,
      lowerDirs: (options.get('lowerdir') ?? '').split(':').filter((dir) => dir.startsWith('/')),
      snapshotterRoot: snapshots?.[1] ?? null,
    };
  }
  return null;
}
