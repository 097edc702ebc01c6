/**
 * What LVM says about the logical volume under the data filesystem and its volume group: ONE
 * `lvs --reportformat json` call per look, LV and VG fields in the same row, sizes in bytes. And the
 * argv of the one LVM change the grower makes (`lvextend -L <bytes>b`).
 */
import { ToolOutputError, refuseNul } from '../tool-output-error.js';
import type { CommandRunner } from '../../exec/runner.js';
import { isValidLvmName, type LvmName } from './block-stack.js';

export const LVS_FIELDS = [
  'lv_name',
  'vg_name',
  'lv_uuid',
  'lv_attr',
  'lv_size',
  'segtype',
  'lv_kernel_major',
  'lv_kernel_minor',
  'vg_size',
  'vg_free',
  'vg_extent_size',
] as const;

export interface LogicalVolumeReport {
  vg: string;
  lv: string;
  lvUuid: string;
  /** lv_attr, e.g. `-wi-ao----` (position 5 `a`: active, 6 `o`: open). */
  attr: string;
  sizeBytes: number;
  /** Segment type; segments of different types are joined with `+` (never extended). */
  segtype: string;
  /** "major:minor" of the active LV, or null when inactive (lvs prints -1). */
  kernelMajorMinor: string | null;
  vgSizeBytes: number;
  vgFreeBytes: number;
  vgExtentBytes: number;
}

function lvArgument(name: LvmName): string {
  if (!isValidLvmName(name.vg) || !isValidLvmName(name.lv))
    throw new Error(`not an LVM name: ${JSON.stringify(`${name.vg}/${name.lv}`)}`);
  return `${name.vg}/${name.lv}`;
}

export function lvsArgs(name: LvmName): string[] {
  return [
    '--reportformat',
    'json',
    '--units',
    'b',
    '--nosuffix',
    '-o',
    LVS_FIELDS.join(','),
    lvArgument(name),
  ];
}

/** `lvextend -L <bytes>b vg/lv`: an absolute size, so running it twice never grows twice. */
export function lvextendArgs(name: LvmName, toBytes: number): string[] {
  if (!Number.isSafeInteger(toBytes) || toBytes <= 0) throw new Error(`not a byte count: ${toBytes}`);
  return ['-L', `${toBytes}b`, lvArgument(name)];
}

function byteField(row: Record<string, unknown>, field: string): number {
  const value = row[field];
  const bytes = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(bytes))
    throw new ToolOutputError(`lvs: field ${field} is not a byte count: ${JSON.stringify(value)}`);
  return bytes;
}

function textField(row: Record<string, unknown>, field: string): string {
  const value = row[field];
  if (typeof value !== 'string') throw new ToolOutputError(`lvs: field ${field} missing`);
  return value;
}

/**
 * Parses the JSON report of {@link lvsArgs}. `segtype` is a segment field, so lvs prints one row
 * per segment: an LV extended after a neighbour was allocated has two (recorded:
 * lvm/lvs-ext4-after.json). The rows of one LV are merged; rows of two LVs are refused.
 */
export function parseLvsReport(stdout: string): LogicalVolumeReport {
  refuseNul(stdout, 'lvs');
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new ToolOutputError('lvs: the report is not JSON');
  }
  const report =
    parsed !== null && typeof parsed === 'object' ? (parsed as { report?: unknown }).report : undefined;
  const rows = (
    Array.isArray(report)
      ? (report as unknown[]).flatMap((entry) => {
          const lv = entry !== null && typeof entry === 'object' ? (entry as { lv?: unknown }).lv : undefined;
          return Array.isArray(lv) ? (lv as unknown[]) : [];
        })
      : []
  ).filter((row): row is Record<string, unknown> => row !== null && typeof row === 'object');
  const first = rows[0];
  if (!first) throw new ToolOutputError('lvs: expected one logical volume, found 0');
  const uuids = new Set(rows.map((row) => textField(row, 'lv_uuid')));
  if (uuids.size !== 1) throw new ToolOutputError(`lvs: expected one logical volume, found ${uuids.size}`);
  const segtypes = new Set(rows.map((row) => textField(row, 'segtype')));
  const major = textField(first, 'lv_kernel_major');
  const minor = textField(first, 'lv_kernel_minor');
  return {
    vg: textField(first, 'vg_name'),
    lv: textField(first, 'lv_name'),
    lvUuid: textField(first, 'lv_uuid'),
    attr: textField(first, 'lv_attr'),
    sizeBytes: byteField(first, 'lv_size'),
    segtype: segtypes.size === 1 ? [...segtypes][0]! : [...segtypes].sort().join('+'),
    kernelMajorMinor: /^\d+$/.test(major) && /^\d+$/.test(minor) ? `${major}:${minor}` : null,
    vgSizeBytes: byteField(first, 'vg_size'),
    vgFreeBytes: byteField(first, 'vg_free'),
    vgExtentBytes: byteField(first, 'vg_extent_size'),
  };
}

export async function readLogicalVolume(
  runner: CommandRunner,
  name: LvmName,
  timeoutMs?: number,
): Promise<LogicalVolumeReport> {
  const result = await runner.run({ tool: 'lvs', args: lvsArgs(name), timeoutMs });
  const report = parseLvsReport(result.stdout);
  if (report.vg !== name.vg || report.lv !== name.lv)
    throw new Error(`lvs answered for ${report.vg}/${report.lv}, asked for ${name.vg}/${name.lv}`);
  return report;
}
