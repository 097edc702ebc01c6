/**
 * Recovery at agent start: replays the write-ahead journal of a process killed mid-grow (device or
 * pool), then takes over every grown device an earlier process left (docs/devicemapper.md,
 * "Crash safety").
 */
import type { ContainerInfo } from '../../docker/model.js';
import { type DeviceGrowIntent, type PendingIntent, type PoolGrowIntent } from './journal.js';
import { SECTOR_BYTES } from './parse.js';
import { errorMessage } from '../../util/errors.js';
import { type DmContext } from './context.js';
import { segmentLine, type DmSnapshot, type KernelSnapshot } from './snapshot.js';
import { type Persistence } from './holds.js';
import { type DeviceGrower } from './device-grow.js';

export function createRecovery(
  ctx: DmContext,
  kernel: KernelSnapshot,
  grower: DeviceGrower,
  persistence: Pick<Persistence, 'reconcilePersistence'>,
): { recover: (containers: readonly ContainerInfo[]) => Promise<void> } {
  const { logger, journal, countFailure, dmsetup } = ctx;
  const { snapshot, poolContext, rereadDevice } = kernel;
  const { completeForward, patchMetadata, rememberGrown } = grower;

  async function replayDevice(
    entry: PendingIntent & { intent: DeviceGrowIntent },
    state: DmSnapshot,
  ): Promise<void> {
    const { intent, steps } = entry;
    const info = state.infos.get(intent.deviceName);
    const segments = state.tables.get(intent.deviceName);
    let line = segments && segments.length === 1 && segments[0] ? segmentLine(segments[0]) : null;
    const fsGrown = steps.includes('fs-grown') || steps.includes('verified');
    if (!info) {
      // The container stopped since: nothing to restore. If the new table was live the
      // filesystem may have grown, so the grown size must persist.
      if (steps.includes('resumed')) {
        patchMetadata(intent.hash, intent.deviceId, intent.toSectors * SECTOR_BYTES);
        rememberGrown(intent);
        journal.record(intent.intentId, 'done', 'device inactive; persisted the grown size');
      } else {
        journal.record(intent.intentId, 'rolled-back', 'device inactive before the resume was recorded');
      }
      return;
    }
    if (info.suspended) {
      if (line === intent.newTable && !fsGrown) {
        await dmsetup(['load', intent.deviceName, '--table', intent.savedTable]);
      } else if (line !== intent.newTable && info.inactive) {
        await dmsetup(['clear', intent.deviceName]);
      }
      await dmsetup(['resume', intent.deviceName], true);
      const after = await rereadDevice(intent.deviceName);
      if (after.info?.suspended) throw new Error(`${intent.deviceName} is still suspended after resume`);
      line = after.line;
    } else if (info.inactive) {
      await dmsetup(['clear', intent.deviceName]);
    }
    if (line === intent.savedTable) {
      journal.record(intent.intentId, 'rolled-back', 'recovered: saved table live');
      return;
    }
    if (line !== intent.newTable) {
      journal.record(intent.intentId, 'abandoned', `live table changed by someone else: ${line}`);
      logger.warn(
        { device: intent.deviceName, line },
        'grow intent abandoned: live table is neither the saved nor the new one',
      );
      return;
    }
    journal.record(intent.intentId, 'resumed', 'recovered');
    await completeForward(intent, steps);
  }

  async function replayPool(
    entry: PendingIntent & { intent: PoolGrowIntent },
    state: DmSnapshot,
  ): Promise<void> {
    const { intent } = entry;
    const info = state.infos.get(intent.poolName);
    if (!info) {
      journal.record(intent.intentId, 'abandoned', 'pool not active');
      return;
    }
    // A pool reload only ever lengthens the pool over a data device that already grew, so going
    // forward is as safe as going back: resume what is there, clear what never went live.
    if (info.inactive && !info.suspended) await dmsetup(['clear', intent.poolName]);
    if (info.suspended) await dmsetup(['resume', intent.poolName], true);
    const after = await rereadDevice(intent.poolName);
    if (after.info?.suspended) throw new Error(`pool ${intent.poolName} is still suspended after resume`);
    journal.record(intent.intentId, after.line === intent.newTable ? 'done' : 'rolled-back', 'recovered');
  }

  async function recover(containers: readonly ContainerInfo[]): Promise<void> {
    const pending = journal.pending();
    if (pending.length > 0) {
      const state = await snapshot(false);
      for (const entry of pending) {
        try {
          if (entry.intent.kind === 'device')
            await replayDevice(entry as PendingIntent & { intent: DeviceGrowIntent }, state);
          else await replayPool(entry as PendingIntent & { intent: PoolGrowIntent }, state);
        } catch (error) {
          countFailure('recover');
          logger.error(
            { intent: entry.intent, error: errorMessage(error) },
            'could not recover an interrupted grow',
          );
        }
      }
      journal.compact();
    }
    // Whatever an earlier process left (a `once`, a `grow`, an agent killed or upgraded): holds
    // re-established, stopped grown containers' devices re-created, persistent grows released.
    try {
      const state = await snapshot(false);
      await persistence.reconcilePersistence(state, poolContext(state), containers, 'recover');
    } catch (error) {
      logger.error({ error: errorMessage(error) }, 'could not take over grown devices');
    }
  }

  return { recover };
}
