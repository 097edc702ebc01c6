/**
 * Parses `xfs_quota -x -c 'report -p -b -N -n' <mount>`: one line per project, no header (-N),
 * numeric ids (-n), block counts in KiB:
 *
 *   #0                2212          0          0     00 [--------]
 *   #3              101384          0     307200     00 [--------]
 *
 * (format from xfsprogs 6.1; see /work/shared/reference/real-outputs/docker-quota/30-overlay2.txt)
 */

import { ToolOutputError, refuseNul } from '../tool-output-error.js';

export interface ProjectQuotaRow {
  projectId: number;
  usedBytes: number;
  softLimitBytes: number | null;
  /** The enforced limit; null when 0 (no limit). */
  hardLimitBytes: number | null;
}

const ROW = /^#(\d+)\s+(\d+)\s+(\d+)\s+(\d+)(?:\s|$)/;
/** Lines of the report's header, printed when -N is not honoured. */
const HEADER = /^(Project quota on |\s*Blocks\s*$|Project ID\s|-{5,})/;

function kibToBytes(text: string, line: string): number {
  const bytes = Number(text) * 1024;
  if (!Number.isSafeInteger(bytes))
    throw new ToolOutputError(`xfs_quota report: number out of range: ${line}`);
  return bytes;
}

export function parseProjectQuotaReport(stdout: string): Map<number, ProjectQuotaRow> {
  refuseNul(stdout, 'xfs_quota report');
  const rows = new Map<number, ProjectQuotaRow>();
  for (const line of stdout.split('\n')) {
    if (!line.trim() || HEADER.test(line)) continue;
    const match = ROW.exec(line.trim());
    if (!match)
      throw new ToolOutputError(`xfs_quota report: unexpected line (numeric ids and -b expected): ${line}`);
    const projectId = Number(match[1]);
    if (!Number.isSafeInteger(projectId))
      throw new ToolOutputError(`xfs_quota report: project id out of range: ${line}`);
    const soft = kibToBytes(match[3] ?? '', line);
    const hard = kibToBytes(match[4] ?? '', line);
    rows.set(projectId, {
      projectId,
      usedBytes: kibToBytes(match[2] ?? '', line),
      softLimitBytes: soft === 0 ? null : soft,
      hardLimitBytes: hard === 0 ? null : hard,
    });
  }
  return rows;
}
