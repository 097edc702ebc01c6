/**
 * `grow <container>` as both the agent (a control request) and the CLI without an agent run it:
 * find the container, refuse a stopped one, refuse a second grow of a container one is already
 * being asked for, then {@link Reconciler.growNow}. The same answers either way.
 */
import type {
  ManualGrowOptions,
  ManualGrowReport,
  ManualGrowTarget,
  Reconciler,
} from '../agent/reconciler.js';
import type { Inventory } from '../docker/inventory-port.js';
import type { DockerInfo } from '../docker/model.js';
import { manualGrowPersistenceRefusal } from '../policy/persistence.js';
import { growPersistenceFacts } from '../storage/devicemapper/persistence.js';
import { ControlRequestError } from './protocol.js';

export interface GrowContainerDeps {
  inventory: Inventory;
  reconciler: Pick<Reconciler, 'growNow'>;
  /** What decides whether a devicemapper grow can be made persistent (src/policy/persistence.ts). */
  dockerInfo: Pick<DockerInfo, 'driver' | 'driverStatus'>;
  /** Container ids with a grow request being handled (shared by every request of one process). */
  requested: Set<string>;
}

export async function growContainer(
  deps: GrowContainerDeps,
  reference: string,
  target: ManualGrowTarget,
  options: ManualGrowOptions,
): Promise<ManualGrowReport> {
  let container = deps.inventory.find(reference);
  if (!container) {
    // Created a moment ago: the event may not have arrived yet.
    await deps.inventory.resync();
    container = deps.inventory.find(reference);
  }
  if (!container) throw new ControlRequestError(`grow: no container ${JSON.stringify(reference)}`, 2);
  if (!container.running)
    throw new ControlRequestError(`grow: container ${container.name} is not running`, 1);
  // A grow that the next stop + start would undo (devicemapper without deferred removal) is
  // refused unless forced, with the reason and the fix; a dry run still prints the plan.
  const refusal = manualGrowPersistenceRefusal(growPersistenceFacts(deps.dockerInfo), options.force === true);
  if (refusal && options.dryRun !== true) throw new ControlRequestError(`grow: ${refusal}`, 1);
  if (deps.requested.has(container.id)) {
    return {
      containerId: container.id,
      name: container.name,
      result: 'refused',
      reason: 'in-flight',
      why: 'a grow of this container is running (asked for by another command)',
      fromBytes: null,
      toBytes: null,
      warnings: [],
    };
  }
  deps.requested.add(container.id);
  try {
    return await deps.reconciler.growNow(container, target, options);
  } finally {
    deps.requested.delete(container.id);
  }
}
