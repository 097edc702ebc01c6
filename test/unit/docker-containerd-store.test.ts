/**
 * The containerd image store on outputs recorded from a real dockerd 28.5.2 with
 * `"features": {"containerd-snapshotter": true}` (test/fixtures/docker/containerd/README.txt): detection
 * from `docker info`, inspect without GraphDriver data (and the API 1.52 shape with
 * Storage.RootFS.Snapshot), the writable layer from the container's mountinfo, and what doctor and the
 * CLI say.
 */
import { describe, expect, it } from 'vitest';
import { mapContainerInspect, mapDockerInfo } from '../../src/docker/mapping.js';
import { driverChecks } from '../../src/doctor/checks.js';
import { silentLogger } from '../../src/log/logger.js';
import { containerRootOverlay, containerdImageStore } from '../../src/storage/containerd/store.js';
import { createBackendFor } from '../../src/storage/select.js';
import type { BackendDeps } from '../../src/storage/types.js';
import { fixture } from '../support/scripted-runner.js';

const INFO = mapDockerInfo(
  JSON.parse(fixture('docker/containerd/info.json')),
  JSON.parse(fixture('docker/containerd/version.json')),
);
const INSPECT = JSON.parse(fixture('docker/containerd/inspect-running-sized.json')) as Record<
  string,
  unknown
>;

describe('containerd image store', () => {
  it('is detected from docker info (Driver overlayfs, driver-type io.containerd.snapshotter.v1), not on graphdrivers', () => {
    expect(INFO.driver).toBe('overlayfs');
    expect(INFO.serverVersion).toMatch(/^28\.5\./);
    expect(containerdImageStore(INFO)).toEqual({ snapshotter: 'overlayfs' });
    const btrfs = mapDockerInfo(JSON.parse(fixture('docker/btrfs/info.json')));
    expect(containerdImageStore(btrfs)).toBeNull();
  });

  it('maps inspect on API 1.51 (GraphDriver without Data) and 1.52 (Storage.RootFS.Snapshot, no GraphDriver)', () => {
    const v151 = mapContainerInspect(INSPECT);
    expect(v151).toMatchObject({
      storageDriver: 'overlayfs',
      graphDriverData: {},
      storageOptSizeBytes: 64 * 1024 ** 2,
    });
    // Engine 29 / API 1.52: the same container as moby's inspect.go writes it
    const { GraphDriver: _omitted, ...rest } = INSPECT;
    const v152 = mapContainerInspect({
      ...rest,
      Driver: '',
      Storage: { RootFS: { Snapshot: { Name: 'overlayfs' } } },
    });
    expect(v152.storageDriver).toBe('overlayfs');
  });

  it("finds the writable layer from the container's root overlay in mountinfo", () => {
    const layers = containerRootOverlay(fixture('docker/containerd/mountinfo-container.txt'));
    expect(layers?.upperDir).toMatch(
      /\/containerd\/daemon\/io\.containerd\.snapshotter\.v1\.overlayfs\/snapshots\/3\/fs$/,
    );
    expect(layers?.workDir).toMatch(/\/snapshots\/3\/work$/);
    expect(layers?.lowerDirs).toHaveLength(2);
    expect(layers?.snapshotterRoot).toMatch(
      /\/containerd\/daemon\/io\.containerd\.snapshotter\.v1\.overlayfs$/,
    );
    // octal escapes decoded; a root that is not an overlay is not guessed at
    const escaped =
      '1 0 0:43 / / rw - overlay overlay rw,lowerdir=/a\\040b/snapshots/1/fs,upperdir=/a\\040b/snapshots/2/fs,workdir=/a\\040b/snapshots/2/work';
    expect(containerRootOverlay(escaped)?.snapshotterRoot).toBe('/a b');
    expect(containerRootOverlay('1 0 8:1 / / rw - ext4 /dev/sda1 rw')).toBeNull();
    expect(containerRootOverlay('')).toBeNull();
  });

  it('gets the observe-only backend, and doctor says plainly that Docker ignores size limits there', async () => {
    // the store gets the observe-only backend (test/unit/containerd-backend.test.ts); doctor says why
    const deps = { logger: silentLogger(), dockerInfo: INFO } as unknown as BackendDeps;
    expect((await createBackendFor(INFO, deps)).driver).toBe('containerd');
    const [check] = driverChecks(INFO, null);
    expect(check).toMatchObject({ name: 'storage driver supported', ok: false });
    expect(JSON.stringify(check)).toMatch(/ignores it, so no container on this host has a size limit/);
  });
});
