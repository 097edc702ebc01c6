/**
 * The `status` lines of the filesystem under Docker's data root (one dry-run look of the
 * data-filesystem watcher), and its JSON form.
 */
import type { DataFsStatus } from '../storage/data-filesystem/watcher.js';
import { formatBytes } from '../util/units.js';

function percent(part: number, whole: number): string {
  return whole > 0 ? `${((part / whole) * 100).toFixed(1)}%` : '-';
}

export function renderDataFilesystemLines(status: DataFsStatus): string[] {
  const look = status.look;
  if (!look) return [`Data filesystem ${status.dataRoot}: cannot look (${status.error ?? 'unknown error'})`];
  const { stack, usage, lv } = look;
  const on = lv
    ? `LVM ${lv.vg}/${lv.lv}, LV ${formatBytes(lv.sizeBytes)}, VG free ${formatBytes(lv.vgFreeBytes)}`
    : `not LVM: ${look.observation.notLvmReason ?? 'unknown'}`;
  const inodes =
    usage.totalInodes > 0
      ? `, inodes ${percent(usage.totalInodes - usage.freeInodes, usage.totalInodes)} used`
      : '';
  const lines = [
    `Data filesystem ${stack.mountPoint}: ${stack.fsType} on ${on}`,
    `  ${formatBytes(usage.usedBytes)} / ${formatBytes(usage.totalBytes)} used (${percent(usage.usedBytes, usage.totalBytes)}), ${formatBytes(usage.availableBytes)} free${inodes}`,
  ];
  const decision = status.decision;
  if (decision?.action === 'cannot-grow')
    lines.push(`  next: cannot grow (${decision.reason}): ${decision.why}`);
  else if (decision?.action === 'grow') lines.push(`  next: grow: ${decision.why}`);
  else if (decision)
    lines.push(`  next: ${decision.action === 'cooldown' ? 'cooldown' : 'none'}: ${decision.why}`);
  for (const pending of status.pendingRecoveries)
    lines.push(`  unfinished grow of ${pending.vg}/${pending.lv}: ${pending.detail}`);
  const underneath = status.underneath;
  if (underneath) {
    const { decision, outcome } = underneath;
    if (decision.action !== 'none' || decision.unusedBytes > 0)
      lines.push(
        `  device: ${formatBytes(decision.unusedBytes)} unused underneath; ${decision.action === 'manual' ? `needs the operator: ${decision.why}; ${decision.fix}` : `${decision.action}: ${decision.why}`}`,
      );
    if (outcome?.kind === 'planned') lines.push(`  device: would run ${outcome.commands.join('; ')}`);
    if (outcome?.kind === 'failed') lines.push(`  device: ${outcome.action} failed: ${outcome.error}`);
    if (underneath.probeError) lines.push(`  device: cannot compare sizes: ${underneath.probeError}`);
    for (const pending of underneath.pendingRecoveries)
      lines.push(`  unfinished grow of ${pending.subject}: ${pending.detail}`);
  }
  return lines;
}

/** The fields of a status worth printing as JSON (not the raw look). */
export function dataFilesystemJson(status: DataFsStatus): Record<string, unknown> {
  const look = status.look;
  return {
    dataRoot: status.dataRoot,
    mountPoint: look?.stack.mountPoint ?? null,
    fsType: look?.stack.fsType ?? null,
    lvm: look?.lv
      ? { vg: look.lv.vg, lv: look.lv.lv, lvSizeBytes: look.lv.sizeBytes, vgFreeBytes: look.lv.vgFreeBytes }
      : null,
    notLvmReason: look?.observation.notLvmReason ?? null,
    sizeBytes: look?.usage.totalBytes ?? null,
    usedBytes: look?.usage.usedBytes ?? null,
    freeBytes: look?.usage.availableBytes ?? null,
    inodes: look?.usage.totalInodes ?? null,
    inodesFree: look?.usage.freeInodes ?? null,
    decision: status.decision,
    pendingRecoveries: status.pendingRecoveries,
    device: status.underneath
      ? {
          unusedBytes: status.underneath.decision.unusedBytes,
          decision: status.underneath.decision,
          outcome: status.underneath.outcome,
          probeError: status.underneath.probeError,
          pendingRecoveries: status.underneath.pendingRecoveries,
        }
      : null,
    error: status.error,
  };
}
