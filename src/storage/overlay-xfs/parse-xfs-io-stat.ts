/**
 * Parses `xfs_io -r -c stat <dir> <dir> ...`: xfs_io runs the command on every file it opened, one
 * block per file, each naming its path, so one process reads the project ids of many directories:
 *
 *   fd.path = "/var/lib/docker/overlay2/<id>"
 *   ...
 *   fsxattr.projid = 3
 *
 * (Measured on xfsprogs 6.1: `xfs_io -c lsproj a b c` also works but prints unlabelled lines.)
 */

import { ToolOutputError, refuseNul } from '../tool-output-error.js';

const PATH_LINE = /^fd\.path = "(.*)"$/;
const PROJID_LINE = /^fsxattr\.projid = (\d+)$/;

export function parseXfsIoStatProjectIds(stdout: string): Map<string, number> {
  refuseNul(stdout, 'xfs_io stat');
  const byPath = new Map<string, number>();
  let current: string | null = null;
  for (const line of stdout.split('\n')) {
    const pathMatch = PATH_LINE.exec(line);
    if (pathMatch) {
      current = pathMatch[1] ?? null;
      continue;
    }
    const projidMatch = PROJID_LINE.exec(line);
    if (projidMatch) {
      if (current === null) throw new ToolOutputError(`xfs_io stat: projid before any fd.path: ${line}`);
      const projectId = Number(projidMatch[1]);
      if (!Number.isSafeInteger(projectId))
        throw new ToolOutputError(`xfs_io stat: projid out of range: ${line}`);
      if (byPath.has(current)) throw new ToolOutputError(`xfs_io stat: ${current} reported twice`);
      byPath.set(current, projectId);
      current = null;
    }
  }
  return byPath;
}
