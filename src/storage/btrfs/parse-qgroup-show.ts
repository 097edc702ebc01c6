/**
 * Parses `btrfs qgroup show --raw -re <path>` (btrfs-progs 6.2 text output):
 *
 *   Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path
 *   --------    ----------    ---------  --------------  -------------   ----
 *   0/258         43941888     41959424        67108864           none   btrfs/subvolumes/72a4...
 *
 * Text, not `--format json`: btrfs-progs 6.2 aborts in its JSON printer as soon as any qgroup has
 * a limit (recorded in test/fixtures/btrfs/qgroup-show-json.stderr.txt). Numbers must be raw
 * bytes; human-readable sizes ("1.91MiB") are refused rather than guessed at. The Path column
 * (btrfs-progs >= 5.x) is optional.
 */

import { ToolOutputError, refuseNul } from '../tool-output-error.js';

export interface QgroupId {
  level: number;
  id: number;
}

export interface QgroupRow {
  qgroupId: QgroupId;
  /** "0/258" */
  qgroupKey: string;
  /** Bytes the qgroup references (what Docker's size limit, max_rfer, applies to). */
  referencedBytes: number;
  exclusiveBytes: number;
  /** max_rfer; null when "none" (no limit). */
  maxReferencedBytes: number | null;
  maxExclusiveBytes: number | null;
  /** Subvolume path relative to the filesystem's top level, "<toplevel>", "<stale>", or null. */
  path: string | null;
}

const QGROUP_ID = /^(\d+)\/(\d+)$/;
const RAW_BYTES = /^\d+$/;

export function parseQgroupId(text: string): QgroupId {
  const match = QGROUP_ID.exec(text);
  if (!match) throw new ToolOutputError(`not a qgroup id: ${JSON.stringify(text)}`);
  const level = Number(match[1]);
  const id = Number(match[2]);
  if (!Number.isSafeInteger(level) || !Number.isSafeInteger(id)) {
    throw new ToolOutputError(`qgroup id out of range: ${JSON.stringify(text)}`);
  }
  return { level, id };
}

function rawBytes(text: string, column: string, line: string): number {
  if (!RAW_BYTES.test(text)) {
    throw new ToolOutputError(
      `btrfs qgroup show: ${column} is not a raw byte count (${JSON.stringify(text)}; was --raw given?): ${line}`,
    );
  }
  const value = Number(text);
  if (!Number.isSafeInteger(value))
    throw new ToolOutputError(`btrfs qgroup show: ${column} too large: ${line}`);
  return value;
}

function limitBytes(text: string, column: string, line: string): number | null {
  return text === 'none' ? null : rawBytes(text, column, line);
}

const EXPECTED_HEADER = ['Qgroupid', 'Referenced', 'Exclusive', 'Max referenced', 'Max exclusive'];

export function parseQgroupShow(stdout: string): QgroupRow[] {
  refuseNul(stdout, 'btrfs qgroup show');
  const lines = stdout.split('\n').filter((line) => line.trim() !== '');
  const header = lines[0];
  if (header === undefined) throw new ToolOutputError('btrfs qgroup show printed nothing');
  // "Max referenced" holds a space: split columns on runs of two or more spaces.
  const columns = header.trim().split(/\s{2,}/);
  const expected = EXPECTED_HEADER.every((name, index) => columns[index] === name);
  const hasPath = columns[5] === 'Path';
  if (!expected || columns.length > (hasPath ? 6 : 5)) {
    throw new ToolOutputError(
      `btrfs qgroup show: unexpected header ${JSON.stringify(header.trim())} (expected the columns of --raw -re)`,
    );
  }
  const rows: QgroupRow[] = [];
  for (const line of lines.slice(1)) {
    if (/^[-\s]+$/.test(line)) continue;
    const trimmed = line.trim();
    const fields = trimmed.split(/\s+/);
    if (fields.length < 5 || (!hasPath && fields.length !== 5)) {
      throw new ToolOutputError(`btrfs qgroup show: malformed row: ${line}`);
    }
    const [idText, rfer, excl, maxRfer, maxExcl] = fields as [string, string, string, string, string];
    let rowPath: string | null = null;
    if (hasPath) {
      // the path is the rest of the line after the fifth field, spaces included
      const afterFifth = trimmed.replace(/^(\S+\s+){5}/, '');
      rowPath = fields.length > 5 ? afterFifth : '';
    }
    const qgroupId = parseQgroupId(idText);
    rows.push({
      qgroupId,
      qgroupKey: `${qgroupId.level}/${qgroupId.id}`,
      referencedBytes: rawBytes(rfer, 'Referenced', line),
      exclusiveBytes: rawBytes(excl, 'Exclusive', line),
      maxReferencedBytes: limitBytes(maxRfer, 'Max referenced', line),
      maxExclusiveBytes: limitBytes(maxExcl, 'Max exclusive', line),
      path: rowPath,
    });
  }
  return rows;
}

/** btrfs-progs' message when quotas are off: "ERROR: can't list qgroups: quotas not enabled". */
export function isQuotasDisabledError(stderr: string): boolean {
  return /quotas not enabled/i.test(stderr);
}
