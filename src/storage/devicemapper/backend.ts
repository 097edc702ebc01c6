/**
 * The devicemapper backend, put together from its parts (see index.ts for what each does).
 */
import type { BackendDeps } from '../types.js';
import type { DevicemapperOptions, DevicemapperBackend } from './types.js';

import { createDmContext } from './context.js';
import { createKernelSnapshot } from './snapshot.js';
import { createPersistence } from './holds.js';
import { createObserver } from './observe.js';
import { createDeviceGrower } from './device-grow.js';
import { createRecovery } from './recovery.js';
import { createPoolGrower } from './pool-grow.js';
import { createDoctor } from './doctor.js';

export function createDevicemapperBackend(
  deps: BackendDeps,
  options: DevicemapperOptions = {},
): DevicemapperBackend {
  const ctx = createDmContext(deps, options);
  const kernel = createKernelSnapshot(ctx);
  const persistence = createPersistence(ctx, kernel);
  const observer = createObserver(ctx, kernel, persistence);
  const grower = createDeviceGrower(ctx, kernel, {
    hold: persistence.hold,
    forgetLiveTarget: observer.forgetLiveTarget,
  });
  const { recover } = createRecovery(ctx, kernel, grower, persistence);
  const { growPoolPart } = createPoolGrower(ctx, kernel);
  const { doctor } = createDoctor(ctx, kernel);
  return {
    driver: 'devicemapper',
    observe: observer.observe,
    readLiveUsage: observer.readLiveUsage,
    grow: grower.grow,
    recover,
    onContainerStopped: persistence.onContainerStopped,
    growPool: (toBytes, dryRun) => growPoolPart('data', toBytes, dryRun),
    growPoolMetadata: (toBytes, dryRun) => growPoolPart('metadata', toBytes, dryRun),
    failureCounts: () => ctx.failures,
    releaseHolds: persistence.releaseHolds,
    heldDevices: persistence.heldDevices,
    pendingPersistence: persistence.pendingPersistence,
    doctor,
  };
}
