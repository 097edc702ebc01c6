/**
 * Finishes or reports data-filesystem grows an earlier agent left unfinished (killed between two
 * steps, or a step that failed), at agent start and while any is pending. Per intent, what LVM and
 * the mount table say now decides, not what the journal hoped:
 *  - LV still at its old size: lvextend never took effect; nothing changed -> rolled-back.
 *  - LV grown (to the target or further): the filesystem grow is run again (idempotent) and
 *    verified by statfs -> done.
 *  - the filesystem is no longer mounted from that LV at that mount point, or a command fails: the
 *    intent stays pending, with the reason, and the watcher reports `recovery-pending`.
 */
import { errorMessage } from '../../util/errors.js';
import { withDeviceLock } from '../devicemapper/lock.js';
import { readBlockStack, type BlockStackPaths, DEFAULT_BLOCK_STACK_PATHS } from './block-stack.js';
import { completeFilesystemGrow, lockKey, type DataFsGrowDeps } from './grow.js';
import type { DataFsPendingIntent } from './journal.js';
import { readLogicalVolume } from './lvm.js';

export type RecoveryOutcome = 'completed' | 'rolled-back' | 'pending';

export interface RecoveryReport {
  intentId: string;
  vg: string;
  lv: string;
  outcome: RecoveryOutcome;
  detail: string;
}

export interface DataFsRecoverDeps extends DataFsGrowDeps {
  blockStackPaths?: BlockStackPaths;
}

async function recoverOne(deps: DataFsRecoverDeps, entry: DataFsPendingIntent): Promise<RecoveryReport> {
  const { intent } = entry;
  const report = (outcome: RecoveryOutcome, detail: string): RecoveryReport => ({
    intentId: intent.intentId,
    vg: intent.vg,
    lv: intent.lv,
    outcome,
    detail,
  });
  const lv = await readLogicalVolume(deps.runner, { vg: intent.vg, lv: intent.lv }, deps.commandTimeoutMs);
  if (lv.sizeBytes <= intent.fromLvBytes) {
    deps.journal.record(
      intent.intentId,
      'rolled-back',
      `recovered: LV still ${lv.sizeBytes} bytes, nothing changed`,
    );
    return report('rolled-back', `lvextend never took effect (LV ${lv.sizeBytes} bytes)`);
  }
  const stack = await readBlockStack(intent.mountPoint, deps.blockStackPaths ?? DEFAULT_BLOCK_STACK_PATHS);
  if (stack.mountPoint !== intent.mountPoint || stack.dmName !== intent.dmName) {
    return report(
      'pending',
      `${intent.mountPoint} is not mounted from ${intent.dmName} now (${stack.source} at ${stack.mountPoint}): the filesystem grow waits until it is`,
    );
  }
  // The LV grew (to the target, or further by someone else): fill it.
  const fsAfterBytes = await completeFilesystemGrow(deps, {
    ...intent,
    toLvBytes: Math.max(intent.toLvBytes, lv.sizeBytes),
  });
  return report('completed', `LV ${lv.sizeBytes} bytes, filesystem ${fsAfterBytes} bytes`);
}

/** Recovers every pending intent; never throws (a failure leaves the intent pending, reported). */
export async function recoverDataFilesystemGrows(deps: DataFsRecoverDeps): Promise<RecoveryReport[]> {
  const reports: RecoveryReport[] = [];
  for (const entry of deps.journal.pending()) {
    try {
      reports.push(
        await withDeviceLock(deps.stateDir, lockKey({ vg: entry.intent.vg, lv: entry.intent.lv }), () =>
          recoverOne(deps, entry),
        ),
      );
    } catch (error) {
      reports.push({
        intentId: entry.intent.intentId,
        vg: entry.intent.vg,
        lv: entry.intent.lv,
        outcome: 'pending',
        detail: errorMessage(error),
      });
    }
  }
  for (const report of reports) {
    const log =
      report.outcome === 'pending' ? deps.logger.warn.bind(deps.logger) : deps.logger.info.bind(deps.logger);
    log({ ...report }, 'data filesystem grow recovery');
  }
  if (reports.some((report) => report.outcome !== 'pending')) deps.journal.compact();
  return reports;
}
