/**
 * Growing the thin pool: lvextend (direct-lvm; never a dmsetup reload of an LVM-owned device) or,
 * for loop-lvm, online: sparse file extended, losetup -c, pool table reloaded and resumed, under
 * the journal (docs/devicemapper.md, "Growing the pool").
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { GrowStep } from '../types.js';
import { type PoolGrowIntent } from './journal.js';
import { withDeviceLock } from './lock.js';
import {
  POOL_METADATA_BLOCK_BYTES,
  SECTOR_BYTES,
  formatThinPoolTable,
  lvmDmName,
  parseLvsReport,
  parseVgsReport,
} from './parse.js';
import { errorMessage } from '../../util/errors.js';
import { type DmContext } from './context.js';
import { type KernelSnapshot } from './snapshot.js';

/** LVM reports as JSON with sizes in bytes and no unit suffix: what parseLvsReport/parseVgsReport read. */
const LVM_JSON_BYTES = ['--reportformat', 'json', '--units', 'b', '--nosuffix'] as const;

/**
 * `lvs` argv of a direct-lvm pool grow: every LV with the fields the backend reads. Exported so the
 * tests script exactly the command the backend runs instead of a copy of it.
 */
export function lvsPoolArgs(): string[] {
  return [...LVM_JSON_BYTES, '-o', 'vg_name,lv_name,lv_size,lv_metadata_size,lv_attr'];
}

/** `vgs` argv for the free space and extent size of one volume group. */
export function vgsFreeArgs(vgName: string): string[] {
  return [...LVM_JSON_BYTES, '-o', 'vg_name,vg_free,vg_extent_size', vgName];
}

export type PoolPart = 'data' | 'metadata';
type PoolGrowResult = { fromBytes: number; toBytes: number; steps: readonly GrowStep[] };

export function createPoolGrower(
  ctx: DmContext,
  kernel: KernelSnapshot,
): { growPoolPart: (part: PoolPart, toBytes: number, dryRun: boolean) => Promise<PoolGrowResult> } {
  const { deps, runner, logger, journal, countFailure, dmsetup, driverStatus, fileSizeBytes, sysBlockDir } =
    ctx;
  const { snapshot, poolContext, rereadDevice } = kernel;

  function readSysFile(file: string): string {
    return readFileSync(file, 'utf8').trim();
  }

  /** The loop device behind a `/dev/loopN` path, checked against sysfs: maj:min and backing file. */
  function loopDevice(devicePath: string | null, expectedFile: string | null, expectedMajorMinor: string) {
    const name = devicePath ? path.basename(devicePath) : '';
    if (!/^loop\d+$/.test(name) || !expectedFile) throw new Error(`not a loop device: ${devicePath}`);
    const sys = path.join(sysBlockDir, name);
    const majorMinorText = readSysFile(path.join(sys, 'dev'));
    if (majorMinorText !== expectedMajorMinor)
      throw new Error(`${devicePath} is ${majorMinorText}, the pool uses ${expectedMajorMinor}`);
    const backing = readSysFile(path.join(sys, 'loop', 'backing_file'));
    if (backing !== expectedFile)
      throw new Error(`${devicePath} is backed by ${backing}, docker info says ${expectedFile}`);
    return {
      devicePath: `/dev/${name}`,
      file: expectedFile,
      sizeBytes: () => Number(readSysFile(path.join(sys, 'size'))) * SECTOR_BYTES,
    };
  }

  async function growPoolPart(part: PoolPart, toBytes: number, dryRun: boolean): Promise<PoolGrowResult> {
    return withDeviceLock(deps.stateDir, 'dm-pool', async () => {
      const state = await snapshot(true);
      const pool = poolContext(state);
      const status = pool.status;
      if (!status || status.dataTotalBlocks === null || status.metadataTotalBlocks === null) {
        throw new Error(
          `pool ${pool.name} is in Fail mode: repair it (thin_check/thin_repair) before growing`,
        );
      }
      if (status.needsCheck) {
        throw new Error(
          `pool ${pool.name} is flagged needs_check: the kernel would report success and not grow; repair it first`,
        );
      }
      const blockBytes = pool.table.dataBlockSizeSectors * SECTOR_BYTES;
      const fromBytes =
        part === 'data'
          ? status.dataTotalBlocks * blockBytes
          : status.metadataTotalBlocks * POOL_METADATA_BLOCK_BYTES;
      const steps: GrowStep[] = [];
      if (toBytes <= fromBytes) return { fromBytes, toBytes: fromBytes, steps };

      if (pool.kind === 'thin-pool-lvm') {
        const lvs = parseLvsReport(
          (
            await runner.run({
              tool: 'lvs',
              args: lvsPoolArgs(),
              timeoutMs: deps.commandTimeoutMs,
            })
          ).stdout,
        );
        const poolLvName = pool.name.replace(/-tpool$/, '');
        const lv = lvs.find((row) => lvmDmName(row.vgName, row.lvName) === poolLvName);
        if (!lv || !lv.attr.startsWith('t'))
          throw new Error(`no LVM thin pool LV is activated as ${pool.name}`);
        const vg = parseVgsReport(
          (
            await runner.run({
              tool: 'vgs',
              args: vgsFreeArgs(lv.vgName),
              timeoutMs: deps.commandTimeoutMs,
            })
          ).stdout,
        ).find((row) => row.vgName === lv.vgName);
        if (!vg) throw new Error(`volume group ${lv.vgName} not found`);
        const currentLvBytes = part === 'data' ? lv.sizeBytes : (lv.metadataSizeBytes ?? fromBytes);
        const targetBytes = Math.ceil(toBytes / vg.extentSizeBytes) * vg.extentSizeBytes;
        if (targetBytes - currentLvBytes > vg.freeBytes) {
          throw new Error(
            `volume group ${vg.vgName} has ${vg.freeBytes} bytes free; growing ${part} to ${targetBytes} needs ${targetBytes - currentLvBytes}`,
          );
        }
        const args =
          part === 'data'
            ? ['-L', `${targetBytes}b`, `${lv.vgName}/${lv.lvName}`]
            : ['--poolmetadatasize', `${targetBytes}b`, `${lv.vgName}/${lv.lvName}`];
        steps.push({ name: 'lvextend', argv: ['lvextend', ...args] });
        if (dryRun) return { fromBytes, toBytes: targetBytes, steps };
        try {
          await runner.run({
            tool: 'lvextend',
            args,
            timeoutMs: Math.max(deps.commandTimeoutMs, 120_000),
            killOnTimeout: false,
          });
        } catch (error) {
          countFailure('lvextend');
          throw error;
        }
      } else if (pool.kind === 'thin-pool-loop') {
        const docker = driverStatus();
        const loopPath = part === 'data' ? docker.dataLoopDevice : docker.metadataLoopDevice;
        const loopFile = part === 'data' ? docker.dataLoopFile : docker.metadataLoopFile;
        const loop = loopDevice(
          loopPath,
          loopFile,
          part === 'data' ? pool.table.dataDevice : pool.table.metadataDevice,
        );
        const alignBytes = part === 'data' ? blockBytes : POOL_METADATA_BLOCK_BYTES;
        const targetBytes = Math.ceil(toBytes / alignBytes) * alignBytes;
        const targetSectors = part === 'data' ? targetBytes / SECTOR_BYTES : pool.lengthSectors;
        const newTable = formatThinPoolTable(targetSectors, pool.table);
        const truncateArgs = ['-s', `>${targetBytes}`, loop.file]; // `>`: only ever extends
        steps.push(
          { name: 'truncate', argv: ['truncate', ...truncateArgs] },
          { name: 'losetup -c', argv: ['losetup', '-c', loop.devicePath] },
          { name: 'dmsetup load', argv: ['dmsetup', 'load', pool.name, '--table', newTable] },
          { name: 'dmsetup resume', argv: ['dmsetup', 'resume', pool.name] },
        );
        if (dryRun) return { fromBytes, toBytes: targetBytes, steps };
        if (fileSizeBytes(loop.file) < targetBytes) {
          await runner.run({ tool: 'truncate', args: truncateArgs, timeoutMs: deps.commandTimeoutMs });
        }
        if (loop.sizeBytes() < targetBytes) {
          await runner.run({
            tool: 'losetup',
            args: ['-c', loop.devicePath],
            timeoutMs: deps.commandTimeoutMs,
          });
        }
        if (loop.sizeBytes() < targetBytes)
          throw new Error(
            `${loop.devicePath} is ${loop.sizeBytes()} bytes after losetup -c; expected ${targetBytes}`,
          );
        const intent: PoolGrowIntent = {
          kind: 'pool',
          intentId: ctx.nextIntentId(),
          poolName: pool.name,
          savedTable: formatThinPoolTable(pool.lengthSectors, pool.table),
          newTable,
          fromSectors: pool.lengthSectors,
          toSectors: targetSectors,
        };
        journal.begin(intent);
        try {
          await dmsetup(['load', pool.name, '--table', newTable]);
          journal.record(intent.intentId, 'loaded');
        } catch (error) {
          countFailure('dmsetup load');
          await dmsetup(['clear', pool.name]).catch(() => undefined);
          journal.record(intent.intentId, 'rolled-back', errorMessage(error));
          throw error;
        }
        try {
          await dmsetup(['resume', pool.name], true);
        } catch (error) {
          countFailure('dmsetup resume');
          const after = await rereadDevice(pool.name);
          if (after.info?.suspended) {
            // A rejected pool table (e.g. "too small") leaves the pool suspended: every container
            // hangs. Put the old table back and resume.
            await dmsetup(['load', pool.name, '--table', intent.savedTable]);
            await dmsetup(['resume', pool.name], true);
          }
          journal.record(intent.intentId, 'rolled-back', errorMessage(error));
          throw error;
        }
        journal.record(intent.intentId, 'done');
      } else {
        throw new Error(
          `pool ${pool.name} is neither LVM-owned nor docker loop-lvm: growing it is not supported`,
        );
      }
      // Read back: the kernel may accept the reload and still not grow (needs_check).
      const afterState = await snapshot(true);
      const afterPool = poolContext(afterState);
      const afterStatus = afterPool.status;
      const afterBytes =
        part === 'data'
          ? (afterStatus?.dataTotalBlocks ?? 0) * blockBytes
          : (afterStatus?.metadataTotalBlocks ?? 0) * POOL_METADATA_BLOCK_BYTES;
      if (afterBytes <= fromBytes) {
        countFailure('verify pool');
        throw new Error(
          `pool ${pool.name} ${part} is still ${afterBytes} bytes after growing (mode ${afterStatus?.mode}${afterStatus?.needsCheck ? ', needs_check' : ''})`,
        );
      }
      logger.info({ pool: pool.name, part, fromBytes, toBytes: afterBytes }, 'thin pool grown');
      return { fromBytes, toBytes: afterBytes, steps };
    });
  }

  return { growPoolPart };
}
