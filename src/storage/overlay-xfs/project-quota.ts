/**
 * XFS project quota mechanics shared by the backends that limit a directory with a project: the
 * overlay2-on-XFS graphdriver (Docker set the project) and the containerd image store's opt-in
 * limits (the agent sets it). One home for: the per-pass report, project ids read in batches, and
 * the grow with its read-back.
 *
 * Every -c string handed to xfs_quota is parsed by xfs_quota itself, so each is built here from
 * checked integers (and, for `project -s`, a path checked against a strict character set).
 */
import type { CommandRunner } from '../../exec/runner.js';
import { isSafeUint } from '../../docker/ids.js';
import type { GrowProgress } from '../grow-error.js';
import type { GrowResult, GrowStep } from '../types.js';
import { parseProjectQuotaReport, type ProjectQuotaRow } from './parse-quota-report.js';
import { parseXfsIoStatProjectIds } from './parse-xfs-io-stat.js';

/** XFS project ids are 32-bit; 0 is "no project" and 2^32-1 is reserved (-1). */
export const MAX_PROJECT_ID = 2 ** 32 - 2;
/** xfs_io opens every file at once: keep each call's argv and fd count bounded. */
const XFS_IO_BATCH = 256;
/** XFS keeps limits in filesystem blocks; targets are rounded up to this. */
export const LIMIT_GRANULE_BYTES = 4096;
const MAX_XFS_BLOCK_BYTES = 64 * 1024;

export interface QuotaTools {
  runner: CommandRunner;
  commandTimeoutMs: number;
}

export function isUsableProjectId(projectId: number): boolean {
  return isSafeUint(projectId) && projectId >= 1 && projectId <= MAX_PROJECT_ID;
}

/** The only way a `limit` command string is made: two checked integers. */
export function buildLimitCommand(projectId: number, hardLimitBytes: number): string {
  if (!isUsableProjectId(projectId)) throw new Error(`not a usable XFS project id: ${projectId}`);
  if (!isSafeUint(hardLimitBytes) || hardLimitBytes <= 0) {
    throw new Error(`not a positive byte count: ${hardLimitBytes}`);
  }
  return `limit -p bsoft=0 bhard=${hardLimitBytes} ${projectId}`;
}

/** Paths that may go into an xfs_quota -c string: absolute, normalised, no blanks or quotes. */
const SAFE_QUOTA_PATH = /^(\/[A-Za-z0-9._-]+)+$/;

/**
 * `project -s -p <dir> <id>`: gives `dir` and everything under it the project id, and sets
 * PROJINHERIT on every directory so what is created later inherits it (xfs_quota's own recursive
 * walk; the same thing Docker's overlay2 quota does for a new layer).
 */
export function buildProjectSetupCommand(dir: string, projectId: number): string {
  if (!isUsableProjectId(projectId)) throw new Error(`not a usable XFS project id: ${projectId}`);
  if (!SAFE_QUOTA_PATH.test(dir) || dir.split('/').some((part) => part === '.' || part === '..')) {
    throw new Error(`path not usable in an xfs_quota command: ${JSON.stringify(dir)}`);
  }
  return `project -s -p ${dir} ${projectId}`;
}

export function quotaReportArgs(mountPoint: string): string[] {
  return ['-x', '-c', 'report -p -b -N -n', mountPoint];
}

/** One `xfs_quota report`: usage and limits of every project on the filesystem. */
export async function readProjectQuotaReport(
  tools: QuotaTools,
  mountPoint: string,
): Promise<Map<number, ProjectQuotaRow>> {
  const { stdout } = await tools.runner.run({
    tool: 'xfs_quota',
    args: quotaReportArgs(mountPoint),
    timeoutMs: tools.commandTimeoutMs,
  });
  return parseProjectQuotaReport(stdout);
}

/** Project ids of the given directories, in as few xfs_io processes as the batch size allows. */
export async function readProjectIds(
  tools: QuotaTools,
  dirs: readonly string[],
): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for (let start = 0; start < dirs.length; start += XFS_IO_BATCH) {
    const batch = dirs.slice(start, start + XFS_IO_BATCH);
    const { stdout } = await tools.runner.run({
      tool: 'xfs_io',
      args: ['-r', '-c', 'stat', ...batch],
      timeoutMs: tools.commandTimeoutMs,
    });
    for (const [dir, projectId] of parseXfsIoStatProjectIds(stdout)) found.set(dir, projectId);
  }
  return found;
}

/** A target rounded up to what XFS stores. */
export function roundUpToLimitGranule(bytes: number): number {
  return Math.ceil(bytes / LIMIT_GRANULE_BYTES) * LIMIT_GRANULE_BYTES;
}

export function limitArgs(mountPoint: string, projectId: number, hardLimitBytes: number): string[] {
  return ['-x', '-c', buildLimitCommand(projectId, hardLimitBytes), mountPoint];
}

/**
 * Sets the project's hard limit to `toBytes` (already rounded) and reads the report back; returns
 * the limit read back. Throws when the read-back is not the target (up to one XFS block).
 * `onStep` is told before each step (the grow's progress for its failure record).
 */
export async function setProjectHardLimit(
  tools: QuotaTools,
  mountPoint: string,
  projectId: number,
  toBytes: number,
  onStep: (step: 'xfs_quota limit' | 'read back') => void = () => {},
): Promise<number> {
  const args = limitArgs(mountPoint, projectId, toBytes);
  onStep('xfs_quota limit');
  await tools.runner.run({ tool: 'xfs_quota', args, timeoutMs: tools.commandTimeoutMs });
  onStep('read back');
  const readBack = (await readProjectQuotaReport(tools, mountPoint)).get(projectId)?.hardLimitBytes ?? null;
  // XFS stores limits in filesystem blocks (4 KiB here, at most 64 KiB): accept the target
  // rounded up to one block, nothing else
  if (readBack === null || readBack < toBytes || readBack >= toBytes + MAX_XFS_BLOCK_BYTES) {
    throw new Error(
      `xfs_quota limit reported success but project ${projectId} shows hard limit ` +
        `${readBack ?? 'none'} instead of ${toBytes}`,
    );
  }
  return readBack;
}

/** What a project-quota grow acts on, once the caller has read the container's project id again. */
export interface ProjectGrowTarget {
  containerId: string;
  mountPoint: string;
  projectId: number;
  requestedBytes: number;
  dryRun: boolean;
}

/**
 * The grow both XFS project-quota backends (overlay2, containerd opt-in limits) share, after the
 * caller has re-read the project id from the container's directory (a stale id would raise another
 * container's limit): reads the live limit from the report (a project without a hard limit is never
 * grown), does nothing when it is already at or above the target (never lower), plans the two
 * commands on a dry run, else sets the limit and reads it back (`setProjectHardLimit`).
 */
export async function growProjectHardLimit(
  tools: QuotaTools,
  target: ProjectGrowTarget,
  progress: GrowProgress,
): Promise<GrowResult> {
  const { containerId, mountPoint, projectId, dryRun } = target;
  const liveLimit = (await readProjectQuotaReport(tools, mountPoint)).get(projectId)?.hardLimitBytes ?? null;
  if (liveLimit === null) {
    throw new Error(`XFS project ${projectId} of container ${containerId} has no hard limit: never grown`);
  }
  const toBytes = roundUpToLimitGranule(target.requestedBytes);
  if (liveLimit >= toBytes) {
    return { containerId, fromBytes: liveLimit, toBytes: liveLimit, steps: [], dryRun, noop: true };
  }
  const steps: GrowStep[] = [
    { name: 'xfs_quota limit', argv: ['xfs_quota', ...limitArgs(mountPoint, projectId, toBytes)] },
    { name: 'xfs_quota report', argv: ['xfs_quota', ...quotaReportArgs(mountPoint)] },
  ];
  if (dryRun) return { containerId, fromBytes: liveLimit, toBytes, steps, dryRun, noop: false };
  const readBack = await setProjectHardLimit(tools, mountPoint, projectId, toBytes, (step) =>
    progress.at(step, step === 'xfs_quota limit' ? 'unchanged' : 'unknown'),
  );
  return { containerId, fromBytes: liveLimit, toBytes: readBack, steps, dryRun: false, noop: false };
}
