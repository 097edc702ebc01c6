/**
 * What the running agent answers on its control socket: `grow` through the reconciler's manual
 * grow, `once` as a real pass (joining one that runs), `status` as the latest whole-host pass (a
 * dry-run pass here would count as a pass in the metrics). A manual grow that changed a size is
 * followed by a pass, the one the schedule would run anyway, so `status` shows the new size.
 */
import type { Reconciler } from '../agent/reconciler.js';
import type { Inventory } from '../docker/inventory-port.js';
import type { Reclaimer } from '../reclaim/reclaimer.js';
import { growContainer, type GrowContainerDeps } from './grow-container.js';
import {
  CONTROL_PROTOCOL_VERSION,
  ControlRequestError,
  type ControlReply,
  type ControlRequest,
} from './protocol.js';
import type { ControlHandler } from './server.js';

export function createControlHandler(agent: {
  inventory: Inventory;
  reconciler: Pick<Reconciler, 'growNow' | 'runPass' | 'lastReport'>;
  dockerInfo: GrowContainerDeps['dockerInfo'];
  reclaimer?: Pick<Reclaimer, 'run'> | null;
  /** Shown by `status` through the agent, as the CLI shows it when it asks Docker itself. */
  dockerEndpoint?: string;
}): ControlHandler {
  const requested = new Set<string>();
  return async (request: ControlRequest): Promise<ControlReply> => {
    switch (request.op) {
      case 'grow': {
        const report = await growContainer(
          {
            inventory: agent.inventory,
            reconciler: agent.reconciler,
            dockerInfo: agent.dockerInfo,
            requested,
          },
          request.container,
          request.target,
          { dryRun: request.dryRun, force: request.force },
        );
        if (report.result === 'grown') void agent.reconciler.runPass({}).catch(() => undefined);
        return { v: CONTROL_PROTOCOL_VERSION, ok: true, op: 'grow', report };
      }
      case 'once':
        return {
          v: CONTROL_PROTOCOL_VERSION,
          ok: true,
          op: 'once',
          report: await agent.reconciler.runPass({}),
        };
      case 'reclaim': {
        if (!agent.reclaimer)
          throw new ControlRequestError(
            'reclaim: the running agent has reclaim disabled (set reclaim.enabled: true and restart it)',
            1,
          );
        const why = request.dryRun ? 'reclaim --dry-run' : 'reclaim command';
        const report = await agent.reclaimer.run('manual', why, { dryRun: request.dryRun });
        return { v: CONTROL_PROTOCOL_VERSION, ok: true, op: 'reclaim', report };
      }
      case 'status':
        return {
          v: CONTROL_PROTOCOL_VERSION,
          ok: true,
          op: 'status',
          report: agent.reconciler.lastReport ?? (await agent.reconciler.runPass({ dryRun: true })),
          ...(agent.dockerEndpoint ? { dockerEndpoint: agent.dockerEndpoint } : {}),
        };
    }
  };
}
