/**
 * The device grow state machine: lock, read the live table, journal, load, resume, re-read, grow
 * the filesystem, verify with statfs, patch Docker's metadata file, remember the grown size and
 * hold it; every failed step leaves the device as it was or grown with its filesystem pending
 * (docs/devicemapper.md, "Growing a container").
 */
import { readFileSync } from 'node:fs';
import { type ToolName } from '../../exec/runner.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import type { GrowRequest, GrowResult, GrowStep } from '../types.js';
import { type DeviceGrowIntent, type GrowStepName } from './journal.js';
import { withDeviceLock } from './lock.js';
import {
  SECTOR_BYTES,
  formatThinTable,
  parseDockerDeviceMetadata,
  parseGraphDriverData,
  patchDockerDeviceMetadataSize,
} from './parse.js';
import { errorMessage } from '../../util/errors.js';
import { type DmContext } from './context.js';
import { liveThin, type KernelSnapshot } from './snapshot.js';
import { DevicemapperGrowError } from './types.js';
import { type Persistence } from './holds.js';
import { mountOf, readMounts } from './observe.js';

/** Thin device lengths are kept a multiple of 4 KiB (8 sectors): filesystems grow in whole blocks. */
const DEVICE_ALIGN_SECTORS = 8;

export function bytesToAlignedSectors(bytes: number): number {
  const sectors = Math.ceil(bytes / SECTOR_BYTES);
  return Math.ceil(sectors / DEVICE_ALIGN_SECTORS) * DEVICE_ALIGN_SECTORS;
}

export function fsGrowCommand(
  fsType: string,
  mountPath: string,
  deviceName: string,
): { tool: ToolName; args: string[] } {
  if (fsType === 'xfs') return { tool: 'xfs_growfs', args: ['-d', mountPath] };
  if (fsType === 'ext4') return { tool: 'resize2fs', args: [`/dev/mapper/${deviceName}`] };
  throw new Error(`cannot grow a ${fsType} filesystem online (xfs and ext4 only)`);
}

export interface DeviceGrower {
  grow: (request: GrowRequest) => Promise<GrowResult>;
  /** Steps after the device went live at the new size (recover() resumes here). */
  completeForward: (intent: DeviceGrowIntent, done: readonly GrowStepName[]) => Promise<void>;
  patchMetadata: (hash: string, deviceId: number, sizeBytes: number) => void;
  rememberGrown: (intent: DeviceGrowIntent) => void;
}

export function createDeviceGrower(
  ctx: DmContext,
  kernel: KernelSnapshot,
  hooks: {
    hold: Persistence['hold'];
    forgetLiveTarget: (containerId: string) => void;
  },
): DeviceGrower {
  const { deps, runner, logger, journal, grown, countFailure, dmsetup, statfs, driverStatus } = ctx;
  const { mountPathOf, metadataPathOf, mountinfoPath } = ctx;
  const { snapshot, poolContext, rereadDevice } = kernel;
  const { hold } = hooks;

  function deviceSteps(intent: DeviceGrowIntent): GrowStep[] {
    const fsGrow = fsGrowCommand(intent.fsType, intent.mountPath, intent.deviceName);
    return [
      { name: 'dmsetup load', argv: ['dmsetup', 'load', intent.deviceName, '--table', intent.newTable] },
      { name: 'dmsetup resume', argv: ['dmsetup', 'resume', intent.deviceName] },
      { name: fsGrow.tool, argv: [fsGrow.tool, ...fsGrow.args] },
      { name: 'verify statfs', argv: ['statfs', intent.mountPath] },
      {
        name: 'patch docker metadata',
        argv: ['write', metadataPathOf(intent.hash), `size=${intent.toSectors * SECTOR_BYTES}`],
      },
    ];
  }

  /** Puts a device back the way it was after a failed load or resume: never leaves it suspended. */
  async function restoreDevice(
    deviceName: string,
    savedTable: string,
  ): Promise<'restored' | 'grown' | 'suspended'> {
    let after = await rereadDevice(deviceName);
    if (!after.info) return 'restored';
    if (after.info.suspended) {
      if (after.line !== savedTable) {
        // The new table went live but the device stayed suspended (a failed preresume): the
        // filesystem has not grown, so the saved table is safe to put back.
        await dmsetup(['load', deviceName, '--table', savedTable]);
      } else if (after.info.inactive) {
        await dmsetup(['clear', deviceName]);
      }
      await dmsetup(['resume', deviceName], true);
      after = await rereadDevice(deviceName);
      if (!after.info || after.info.suspended) return 'suspended';
    }
    if (after.info.inactive) {
      await dmsetup(['clear', deviceName]);
      after = await rereadDevice(deviceName);
    }
    return after.line === savedTable ? 'restored' : 'grown';
  }

  async function fsSizeBytes(mountPath: string): Promise<number> {
    const fs = await statfs(mountPath);
    return fs.totalBlocks * fs.blockSizeBytes;
  }

  /** Steps after the device went live at the new size: grow the fs, verify, persist. Idempotent. */
  async function completeForward(intent: DeviceGrowIntent, done: readonly GrowStepName[]): Promise<void> {
    const fsBeforeBytes = intent.fsBeforeBytes;
    const deviceBytes = intent.toSectors * SECTOR_BYTES;
    if (!done.includes('verified')) {
      const fsGrow = fsGrowCommand(intent.fsType, intent.mountPath, intent.deviceName);
      try {
        await runner.run({
          tool: fsGrow.tool,
          args: fsGrow.args,
          timeoutMs: Math.max(deps.commandTimeoutMs, 120_000),
        });
      } catch (error) {
        countFailure(fsGrow.tool);
        journal.record(intent.intentId, 'failed', `${fsGrow.tool}: ${errorMessage(error)}`);
        throw new DevicemapperGrowError(
          `${intent.deviceName}: device grown to ${deviceBytes} bytes but ${fsGrow.tool} failed (the device stays usable; recover() retries): ${errorMessage(error)}`,
          fsGrow.tool,
          'grown-fs-pending',
          { cause: error },
        );
      }
      journal.record(intent.intentId, 'fs-grown');
      const fsAfterBytes = await fsSizeBytes(intent.mountPath);
      if (fsAfterBytes <= fsBeforeBytes || fsAfterBytes > deviceBytes) {
        countFailure('verify');
        journal.record(
          intent.intentId,
          'failed',
          `verify: fs ${fsAfterBytes} bytes (before ${fsBeforeBytes}), device ${deviceBytes}`,
        );
        throw new DevicemapperGrowError(
          `${intent.deviceName}: after ${fsGrow.tool} the filesystem is ${fsAfterBytes} bytes (before ${fsBeforeBytes}, device ${deviceBytes})`,
          'verify',
          'grown-fs-pending',
        );
      }
      journal.record(intent.intentId, 'verified');
    }
    if (!done.includes('metadata-patched')) {
      try {
        patchMetadata(intent.hash, intent.deviceId, deviceBytes);
      } catch (error) {
        countFailure('patch docker metadata');
        journal.record(intent.intentId, 'failed', `metadata: ${errorMessage(error)}`);
        throw new DevicemapperGrowError(
          `${intent.deviceName}: grown, but Docker's metadata file could not be patched: ${errorMessage(error)}`,
          'patch docker metadata',
          'grown-persist-pending',
          { cause: error },
        );
      }
      journal.record(intent.intentId, 'metadata-patched');
    }
    rememberGrown(intent);
    await hold(intent.hash, intent.deviceName);
    journal.record(intent.intentId, 'done');
  }

  function rememberGrown(intent: DeviceGrowIntent): void {
    const previous = grown.get(intent.hash);
    grown.put({
      containerId: intent.containerId,
      deviceName: intent.deviceName,
      deviceId: intent.deviceId,
      hash: intent.hash,
      sizeSectors: Math.max(intent.toSectors, previous?.sizeSectors ?? 0),
      poolName: driverStatus().poolName,
    });
  }

  /** Patches "size" in Docker's metadata file (never lowers it), atomically. */
  function patchMetadata(hash: string, deviceId: number, sizeBytes: number): void {
    const file = metadataPathOf(hash);
    const text = readFileSync(file, 'utf8');
    const metadata = parseDockerDeviceMetadata(text);
    if (metadata.deviceId !== deviceId) {
      throw new Error(`${file} has device_id ${metadata.deviceId}, the device is ${deviceId}`);
    }
    if (metadata.sizeBytes >= sizeBytes) return;
    writeFileAtomic(file, patchDockerDeviceMetadataSize(text, sizeBytes));
  }

  async function grow(request: GrowRequest): Promise<GrowResult> {
    const container = request.container;
    // the device and filesystem sizes the fast path knows are about to change
    if (!request.dryRun) hooks.forgetLiveTarget(container.id);
    if (container.storageDriver !== 'devicemapper')
      throw new Error(`${container.name} uses ${container.storageDriver}, not devicemapper`);
    const device = parseGraphDriverData(container.graphDriverData);
    return withDeviceLock(deps.stateDir, `dm-${device.hash}`, async () => {
      const state = await snapshot(true);
      const pool = poolContext(state);
      const live = liveThin(state, device, pool);
      if (!live)
        throw new Error(
          `${container.name}: device ${device.deviceName} is not active (is the container running?)`,
        );
      if (live.info.suspended || live.info.inactive) {
        throw new Error(
          `${device.deviceName} is ${live.info.suspended ? 'suspended' : 'carrying an inactive table'}: run recover (agent restart) first`,
        );
      }
      const fromBytes = live.lengthSectors * SECTOR_BYTES;
      const toSectors = bytesToAlignedSectors(request.toBytes);
      if (toSectors <= live.lengthSectors) {
        return {
          containerId: container.id,
          fromBytes,
          toBytes: fromBytes,
          steps: [],
          dryRun: request.dryRun,
          noop: true,
        };
      }
      const mountPath = mountPathOf(device.hash);
      const mount = mountOf(readMounts(mountinfoPath), mountPath, live.info);
      if (!mount) throw new Error(`${mountPath} is not mounted`);
      const intent: DeviceGrowIntent = {
        kind: 'device',
        intentId: ctx.nextIntentId(),
        containerId: container.id,
        deviceName: device.deviceName,
        deviceId: device.deviceId,
        hash: device.hash,
        savedTable: live.line,
        newTable: formatThinTable(toSectors, live.table),
        fromSectors: live.lengthSectors,
        toSectors,
        fsType: mount.fsType,
        mountPath,
        poolDevice: pool.majorMinor,
        fsBeforeBytes: await fsSizeBytes(mountPath),
      };
      const steps = deviceSteps(intent); // also refuses filesystems it cannot grow
      if (request.dryRun) {
        return {
          containerId: container.id,
          fromBytes,
          toBytes: toSectors * SECTOR_BYTES,
          steps,
          dryRun: true,
          noop: false,
        };
      }
      if (
        pool.status &&
        (pool.status.mode === 'ro' || pool.status.mode === 'fail' || pool.status.needsCheck)
      ) {
        throw new Error(
          `pool ${pool.name} is ${pool.status.mode}${pool.status.needsCheck ? ' and needs_check' : ''}: not growing containers on it`,
        );
      }
      journal.begin(intent);
      logger.info(
        { device: intent.deviceName, fromSectors: intent.fromSectors, toSectors },
        'growing thin device',
      );

      try {
        await dmsetup(['load', intent.deviceName, '--table', intent.newTable]);
      } catch (error) {
        countFailure('dmsetup load');
        const outcome = await restoreDevice(intent.deviceName, intent.savedTable);
        journal.record(
          intent.intentId,
          outcome === 'restored' ? 'rolled-back' : 'failed',
          `load: ${errorMessage(error)}`,
        );
        throw new DevicemapperGrowError(
          `${intent.deviceName}: dmsetup load failed: ${errorMessage(error)}`,
          'dmsetup load',
          outcome === 'suspended' ? 'suspended' : 'unchanged',
          { cause: error },
        );
      }
      journal.record(intent.intentId, 'loaded');

      let resumeError: unknown = null;
      try {
        await dmsetup(['resume', intent.deviceName], true);
      } catch (error) {
        resumeError = error;
      }
      // Whatever resume returned, the kernel's state decides.
      const after = await rereadDevice(intent.deviceName);
      const wentLive =
        after.info !== undefined &&
        !after.info.suspended &&
        !after.info.inactive &&
        after.line === intent.newTable;
      if (!wentLive) {
        countFailure('dmsetup resume');
        const outcome = await restoreDevice(intent.deviceName, intent.savedTable);
        if (outcome !== 'grown') {
          journal.record(
            intent.intentId,
            outcome === 'restored' ? 'rolled-back' : 'failed',
            `resume: ${errorMessage(resumeError ?? 'table not live')}`,
          );
          throw new DevicemapperGrowError(
            `${intent.deviceName}: dmsetup resume ${resumeError ? `failed: ${errorMessage(resumeError)}` : 'did not make the new table live'}`,
            'dmsetup resume',
            outcome === 'suspended' ? 'suspended' : 'restored',
            { cause: resumeError },
          );
        }
      } else if (resumeError) {
        logger.warn(
          { device: intent.deviceName, error: errorMessage(resumeError) },
          'dmsetup resume reported an error but the new table is live',
        );
      }
      journal.record(intent.intentId, 'resumed');
      await completeForward(intent, []);
      const fsAfterBytes = await fsSizeBytes(mountPath);
      logger.info({ device: intent.deviceName, toSectors, fsSizeBytes: fsAfterBytes }, 'thin device grown');
      return {
        containerId: container.id,
        fromBytes,
        toBytes: toSectors * SECTOR_BYTES,
        steps,
        dryRun: false,
        noop: false,
      };
    });
  }

  return { grow, completeForward, patchMetadata, rememberGrown };
}
