/**
 * A block device that grew underneath the data filesystem (src/policy/grown-underneath.ts decides,
 * on what ./underneath-probe.ts reads): its two changes, each journaled write-ahead like the LV grow
 * (./grow.ts) in its own journal (`<stateDir>/data-filesystem-underneath-journal.jsonl`), one
 * command per step, argument arrays, re-read after acting:
 *  - grow-filesystem: the filesystem's online grow into its own device (./fs-grow.ts), verified by
 *    statfs. Steps: intent, fs-grown, done.
 *  - pvresize: `pvresize <pv>` (no size: the PV fills its device, never shrinks a grown device),
 *    verified by `pvs`. Steps: intent, pv-resized, done. The LV grow that follows is the normal one.
 * {@link recoverUnderneathGrows} finishes or rolls back what a killed agent left, from what the
 * mount table, statfs and `pvs` say now.
 */
import path from 'node:path';
import type { CommandRunner } from '../../exec/runner.js';
import type { Logger } from '../../log/logger.js';
import { isGrowableFilesystem, type GrowableFilesystem } from '../../policy/data-filesystem.js';
import { errorMessage } from '../../util/errors.js';
import { withDeviceLock } from '../devicemapper/lock.js';
import { readBlockStack, type BlockStackPaths, DEFAULT_BLOCK_STACK_PATHS } from './block-stack.js';
import { fsGrowCommand, parseBtrfsDevices } from './fs-grow.js';
import { DataFsJournal } from './journal.js';
import { isSafePvName, readPvs, type PvsRow } from './underneath-probe.js';

const MIB = 1024 * 1024;
const LVM_TIMEOUT_FLOOR_MS = 120_000;
const FS_GROW_TIMEOUT_FLOOR_MS = 300_000;

export type UnderneathIntent =
  | {
      kind: 'device-fs';
      intentId: string;
      devicePath: string;
      majorMinor: string;
      fsType: GrowableFilesystem;
      mountPoint: string;
      deviceBytes: number;
      fsBeforeBytes: number;
      why: string;
    }
  | {
      kind: 'pv-resize';
      intentId: string;
      vg: string;
      pvName: string;
      fromPvBytes: number;
      devBytes: number;
      why: string;
    };

export type UnderneathJournal = DataFsJournal<UnderneathIntent>;

export function underneathJournalIn(stateDir: string, nowMs?: () => number): UnderneathJournal {
  return new DataFsJournal<UnderneathIntent>(
    path.join(stateDir, 'data-filesystem-underneath-journal.jsonl'),
    nowMs,
  );
}

export interface UnderneathGrowDeps {
  runner: CommandRunner;
  journal: UnderneathJournal;
  stateDir: string;
  statfsTotalBytes(mountPoint: string): Promise<number>;
  logger: Logger;
  commandTimeoutMs: number;
  nowMs(): number;
  blockStackPaths?: BlockStackPaths;
}

export interface UnderneathGrowResult {
  fromBytes: number;
  toBytes: number;
  noop: boolean;
}

/** Where a failed change left the system (as DataFsGrowError's state). */
export class UnderneathGrowError extends Error {
  override readonly name = 'UnderneathGrowError';
  constructor(
    message: string,
    readonly step: string,
    readonly state: 'unchanged' | 'pending',
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

let intentCounter = 0;
const newIntentId = (deps: UnderneathGrowDeps) => `${deps.nowMs()}-${process.pid}-u${(intentCounter += 1)}`;

function deviceLockKey(devicePath: string): string {
  return `datafs-dev-${path.basename(devicePath)}`;
}

function pvLockKey(vg: string): string {
  return `datafs-pv-${vg}`;
}

/** The planned command lines, for the dry run and status. */
export function plannedUnderneathCommands(
  action: { action: 'grow-filesystem'; devicePath: string } | { action: 'pvresize'; pvName: string },
  fsType: string,
  mountPoint: string,
): string[] {
  if (action.action === 'pvresize') return [`pvresize ${action.pvName}`];
  if (fsType === 'btrfs') return [`btrfs filesystem resize <devid>:max ${mountPoint}`];
  if (!isGrowableFilesystem(fsType)) return [];
  const { tool, args } = fsGrowCommand(fsType, action.devicePath, mountPoint, null);
  return [[tool, ...args].join(' ')];
}

/** The filesystem grow and its statfs verification (idempotent: recovery runs it again). */
async function completeDeviceFsGrow(
  deps: UnderneathGrowDeps,
  intent: Extract<UnderneathIntent, { kind: 'device-fs' }>,
): Promise<number> {
  let tool = 'btrfs filesystem show';
  try {
    let devid: number | null = null;
    if (intent.fsType === 'btrfs') {
      const devices = parseBtrfsDevices(
        (
          await deps.runner.run({
            tool: 'btrfs',
            args: ['filesystem', 'show', '--raw', intent.mountPoint],
            timeoutMs: deps.commandTimeoutMs,
          })
        ).stdout,
      );
      const mine = devices.filter((device) => device.path === intent.devicePath);
      devid = (mine.length === 1 ? mine[0] : devices.length === 1 ? devices[0] : undefined)?.devid ?? null;
      if (devid === null) throw new Error(`no btrfs device ${intent.devicePath}`);
    }
    const command = fsGrowCommand(intent.fsType, intent.devicePath, intent.mountPoint, devid);
    tool = command.tool;
    await deps.runner.run({
      tool: command.tool,
      args: command.args,
      timeoutMs: Math.max(deps.commandTimeoutMs, FS_GROW_TIMEOUT_FLOOR_MS),
    });
  } catch (error) {
    deps.journal.record(intent.intentId, 'failed', `${tool}: ${errorMessage(error)}`);
    throw new UnderneathGrowError(
      `${intent.devicePath}: ${tool} failed (the filesystem stays usable at its old size; retried later): ${errorMessage(error)}`,
      tool,
      'pending',
      { cause: error },
    );
  }
  deps.journal.record(intent.intentId, 'fs-grown');
  const after = await deps.statfsTotalBytes(intent.mountPoint);
  if (after <= intent.fsBeforeBytes || after > intent.deviceBytes) {
    const detail = `verify: filesystem ${after} bytes (before ${intent.fsBeforeBytes}, device ${intent.deviceBytes})`;
    // the tool ran and said nothing was wrong, yet nothing changed: roll back, do not loop on it
    deps.journal.record(intent.intentId, after === intent.fsBeforeBytes ? 'rolled-back' : 'failed', detail);
    throw new UnderneathGrowError(
      `${intent.devicePath}: ${detail}`,
      'verify',
      after === intent.fsBeforeBytes ? 'unchanged' : 'pending',
    );
  }
  deps.journal.record(intent.intentId, 'done', `filesystem ${after} bytes`);
  return after;
}

/** Grows the filesystem on its own (whole) device into the space the device gained. */
export async function growFilesystemToDevice(
  deps: UnderneathGrowDeps,
  request: {
    devicePath: string;
    majorMinor: string;
    fsType: GrowableFilesystem;
    mountPoint: string;
    deviceBytes: number;
    why: string;
  },
): Promise<UnderneathGrowResult> {
  return withDeviceLock(deps.stateDir, deviceLockKey(request.devicePath), async () => {
    const fsBeforeBytes = await deps.statfsTotalBytes(request.mountPoint);
    const intent = { kind: 'device-fs' as const, intentId: newIntentId(deps), ...request, fsBeforeBytes };
    deps.journal.begin(intent);
    deps.logger.info(
      { device: request.devicePath, deviceBytes: request.deviceBytes, fsBeforeBytes, why: request.why },
      'growing the data filesystem into its grown device',
    );
    const after = await completeDeviceFsGrow(deps, intent);
    deps.logger.info({ device: request.devicePath, fsBytes: after }, 'data filesystem grown into its device');
    return { fromBytes: fsBeforeBytes, toBytes: after, noop: false };
  });
}

async function pvRow(deps: UnderneathGrowDeps, vg: string, pvName: string): Promise<PvsRow> {
  const rows = await readPvs(deps.runner, vg, Math.max(deps.commandTimeoutMs, LVM_TIMEOUT_FLOOR_MS));
  const row = rows.find((candidate) => candidate.pvName === pvName);
  if (!row) throw new Error(`pvs lists no PV ${pvName} in VG ${vg}`);
  return row;
}

/** `pvresize <pv>`, then pvs: the PV fills the device it sits on (never shrinks: re-read first). */
async function completePvResize(
  deps: UnderneathGrowDeps,
  intent: Extract<UnderneathIntent, { kind: 'pv-resize' }>,
): Promise<number> {
  let pvresizeError: unknown = null;
  try {
    await deps.runner.run({
      tool: 'pvresize',
      args: [intent.pvName],
      timeoutMs: Math.max(deps.commandTimeoutMs, LVM_TIMEOUT_FLOOR_MS),
    });
  } catch (error) {
    pvresizeError = error;
  }
  let after: PvsRow;
  try {
    after = await pvRow(deps, intent.vg, intent.pvName);
  } catch (error) {
    deps.journal.record(intent.intentId, 'failed', `pvs after pvresize: ${errorMessage(error)}`);
    throw new UnderneathGrowError(
      `${intent.pvName}: cannot re-read the PV: ${errorMessage(error)}`,
      'pvs',
      'pending',
      {
        cause: error,
      },
    );
  }
  if (after.pvSizeBytes <= intent.fromPvBytes) {
    const why = pvresizeError
      ? errorMessage(pvresizeError)
      : `PV still ${after.pvSizeBytes} bytes after pvresize`;
    deps.journal.record(intent.intentId, 'rolled-back', `pvresize: ${why}`);
    throw new UnderneathGrowError(
      `${intent.pvName}: pvresize failed (nothing changed): ${why}`,
      'pvresize',
      'unchanged',
      {
        cause: pvresizeError,
      },
    );
  }
  deps.journal.record(intent.intentId, 'pv-resized');
  deps.journal.record(intent.intentId, 'done', `PV ${after.pvSizeBytes} bytes`);
  return after.pvSizeBytes;
}

/** Resizes a PV of the data LV's VG to its grown device. */
export async function pvresizeUnderneath(
  deps: UnderneathGrowDeps,
  request: { vg: string; pvName: string; why: string },
): Promise<UnderneathGrowResult> {
  if (!isSafePvName(request.pvName))
    throw new Error(`not a PV device path: ${JSON.stringify(request.pvName)}`);
  return withDeviceLock(deps.stateDir, pvLockKey(request.vg), async () => {
    const before = await pvRow(deps, request.vg, request.pvName);
    if (before.devSizeBytes - before.peStartBytes - before.pvSizeBytes < MIB)
      return { fromBytes: before.pvSizeBytes, toBytes: before.pvSizeBytes, noop: true };
    const intent = {
      kind: 'pv-resize' as const,
      intentId: newIntentId(deps),
      vg: request.vg,
      pvName: request.pvName,
      fromPvBytes: before.pvSizeBytes,
      devBytes: before.devSizeBytes,
      why: request.why,
    };
    deps.journal.begin(intent);
    deps.logger.info(
      {
        pv: request.pvName,
        fromBytes: before.pvSizeBytes,
        deviceBytes: before.devSizeBytes,
        why: request.why,
      },
      'resizing a PV whose device grew',
    );
    const after = await completePvResize(deps, intent);
    deps.logger.info({ pv: request.pvName, pvBytes: after }, 'PV resized');
    return { fromBytes: before.pvSizeBytes, toBytes: after, noop: false };
  });
}

export interface UnderneathRecoveryReport {
  intentId: string;
  subject: string;
  outcome: 'completed' | 'rolled-back' | 'pending';
  detail: string;
}

/** Finishes what a killed or failed change left (never throws; a failure stays pending). */
export async function recoverUnderneathGrows(deps: UnderneathGrowDeps): Promise<UnderneathRecoveryReport[]> {
  const reports: UnderneathRecoveryReport[] = [];
  for (const { intent, steps } of deps.journal.pending()) {
    const subject = intent.kind === 'device-fs' ? intent.devicePath : `PV ${intent.pvName}`;
    const report = (outcome: UnderneathRecoveryReport['outcome'], detail: string) =>
      reports.push({ intentId: intent.intentId, subject, outcome, detail });
    try {
      if (intent.kind === 'pv-resize') {
        await withDeviceLock(deps.stateDir, pvLockKey(intent.vg), async () => {
          const now = await pvRow(deps, intent.vg, intent.pvName);
          if (now.pvSizeBytes > intent.fromPvBytes) {
            if (!steps.includes('pv-resized')) deps.journal.record(intent.intentId, 'pv-resized');
            deps.journal.record(intent.intentId, 'done', `recovered: PV ${now.pvSizeBytes} bytes`);
            report('completed', `PV ${now.pvSizeBytes} bytes`);
            return;
          }
          const after = await completePvResize(deps, intent);
          report('completed', `pvresize run again: PV ${after} bytes`);
        });
        continue;
      }
      await withDeviceLock(deps.stateDir, deviceLockKey(intent.devicePath), async () => {
        const stack = await readBlockStack(
          intent.mountPoint,
          deps.blockStackPaths ?? DEFAULT_BLOCK_STACK_PATHS,
        );
        if (stack.mountPoint !== intent.mountPoint || stack.deviceMajorMinor !== intent.majorMinor) {
          report(
            'pending',
            `${intent.mountPoint} is not mounted from ${intent.devicePath} now: the grow waits until it is`,
          );
          return;
        }
        const after = await completeDeviceFsGrow(deps, intent);
        report('completed', `filesystem ${after} bytes`);
      });
    } catch (error) {
      const unchanged = error instanceof UnderneathGrowError && error.state === 'unchanged';
      report(unchanged ? 'rolled-back' : 'pending', errorMessage(error));
    }
  }
  for (const entry of reports)
    (entry.outcome === 'pending' ? deps.logger.warn.bind(deps.logger) : deps.logger.info.bind(deps.logger))(
      { ...entry },
      'data filesystem grown-underneath recovery',
    );
  if (reports.some((entry) => entry.outcome !== 'pending')) deps.journal.compact();
  return reports;
}
