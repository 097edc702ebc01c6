/**
 * The manual grow's persistence refusal, on the one path both the agent (control request) and the
 * CLI without an agent take: a devicemapper grow that the container's next stop + start would undo
 * is refused with the reason and the fix, unless --force; a dry run still plans.
 */
import { describe, expect, it } from 'vitest';
import type { ManualGrowReport } from '../../src/agent/reconciler.js';
import { growContainer } from '../../src/control/grow-container.js';
import type { DockerInfo } from '../../src/docker/model.js';
import { REFERENCE_LVM_DRIVER_STATUS } from '../support/dm-lines.js';
import { FakeInventory, fakeContainer } from '../support/fake-inventory.js';

const withoutDeferredRemoval: DockerInfo['driverStatus'] = REFERENCE_LVM_DRIVER_STATUS.map(([key, value]) =>
  key === 'Deferred Removal Enabled' || key === 'Deferred Deletion Enabled' ? [key, 'false'] : [key, value],
);

function setup(driverStatus: DockerInfo['driverStatus'], driver = 'devicemapper') {
  const container = fakeContainer({ name: 'web', storageDriver: driver });
  const calls: Array<{ dryRun?: boolean; force?: boolean }> = [];
  const deps = {
    inventory: new FakeInventory([container]),
    reconciler: {
      growNow: async (
        _container: unknown,
        _target: unknown,
        options: { dryRun?: boolean; force?: boolean },
      ): Promise<ManualGrowReport> => {
        calls.push(options);
        return { containerId: container.id, name: 'web', result: 'grown' } as ManualGrowReport;
      },
    },
    dockerInfo: { driver, driverStatus },
    requested: new Set<string>(),
  };
  return { deps, calls };
}

describe('manual grow persistence refusal', () => {
  it('refuses a devicemapper grow without deferred removal, naming the reason and the fix', async () => {
    const { deps, calls } = setup(withoutDeferredRemoval);
    await expect(growContainer(deps, 'web', { byBytes: 1 }, {})).rejects.toMatchObject({
      exitCode: 1,
      message: expect.stringMatching(/deferred removal.*last sector read failed.*--force/s),
    });
    expect(calls).toEqual([]);
  });

  it('grows with --force, and plans a dry run without it', async () => {
    const { deps, calls } = setup(withoutDeferredRemoval);
    await growContainer(deps, 'web', { byBytes: 1 }, { force: true });
    await growContainer(deps, 'web', { byBytes: 1 }, { dryRun: true });
    expect(calls).toEqual([{ force: true }, { dryRun: true }]);
  });

  it('lets a grow through where a kernel hold can keep it (deferred removal on) and on other drivers', async () => {
    const deferred = REFERENCE_LVM_DRIVER_STATUS.map(([key, value]): [string, string] =>
      key === 'Deferred Removal Enabled' || key === 'Deferred Deletion Enabled'
        ? [key, 'true']
        : [key, value],
    );
    const dm = setup(deferred);
    await growContainer(dm.deps, 'web', { byBytes: 1 }, {});
    const btrfs = setup([], 'btrfs');
    await growContainer(btrfs.deps, 'web', { byBytes: 1 }, {});
    expect([dm.calls.length, btrfs.calls.length]).toEqual([1, 1]);
  });
});
