/**
 * `reclaim [--dry-run]`: climb the configured reclaim ladder once (`reclaim.ladder`), even when
 * `reclaim.enabled` is false (the command is the operator asking). A dry run changes nothing and
 * runs here; a real run is the running agent's (through its control socket, so it never overlaps
 * the agent's own runs), or this process's under the agent lock when no agent runs.
 */
import type { Command } from 'commander';
import { stateDirOf } from '../../agent/app.js';
import type { Config } from '../../config/schema.js';
import { routeToStorageOwner, StorageOwnedError } from '../../control/owner.js';
import { CONTROL_PROTOCOL_VERSION, type ReclaimRequest } from '../../control/protocol.js';
import { DockerClient } from '../../docker/client.js';
import type { Logger } from '../../log/logger.js';
import type { ReclaimReport } from '../../reclaim/ladder.js';
import { RECLAIM_DOCKER_TIMEOUT_MS, Reclaimer } from '../../reclaim/reclaimer.js';
import { errorMessage } from '../../util/errors.js';
import { formatBytes } from '../../util/units.js';
import { CliError, EXIT_FAILURE } from '../errors.js';
import { loadCliConfig, type CliContext } from '../context.js';

export function registerReclaimCommand(program: Command, context: CliContext): void {
  program
    .command('reclaim')
    .description('climb the reclaim ladder once (reclaim.ladder): prune what Docker holds and nothing uses')
    .option('--dry-run', 'list what each rung would remove; remove nothing')
    .option('--json', 'print the report as JSON')
    .action(async (options: { dryRun?: boolean; json?: boolean }) => {
      const { config, logger } = loadCliConfig(context, { logsToStderr: true });
      const dryRun = options.dryRun === true || config.dryRun;
      const report = dryRun
        ? await reclaimHere(config, logger, true)
        : await reclaimThroughOwner(config, logger);
      context.io.stdout.write(
        options.json ? `${JSON.stringify(report, null, 2)}\n` : describeReclaim(report),
      );
      if (report.result === 'failed') process.exitCode = EXIT_FAILURE;
    });
}

async function reclaimThroughOwner(config: Config, logger: Logger): Promise<ReclaimReport> {
  const request: ReclaimRequest = { v: CONTROL_PROTOCOL_VERSION, op: 'reclaim', dryRun: false };
  let route;
  try {
    route = await routeToStorageOwner(stateDirOf(config), request, { role: 'reclaim' });
  } catch (error) {
    if (error instanceof StorageOwnedError) throw new CliError(`reclaim: ${error.message}`, EXIT_FAILURE);
    throw error;
  }
  if (route.kind === 'agent') {
    const reply = route.reply;
    if (!reply.ok) throw new CliError(reply.error, reply.exitCode);
    if (reply.op !== 'reclaim')
      throw new CliError(`the agent answered a reclaim with ${reply.op}`, EXIT_FAILURE);
    return reply.report;
  }
  try {
    return await reclaimHere(config, logger, false);
  } finally {
    route.lock.release();
  }
}

async function reclaimHere(config: Config, logger: Logger, dryRun: boolean): Promise<ReclaimReport> {
  const docker = new DockerClient({
    socketPath: config.docker.socketPath,
    timeoutMs: Math.max(config.docker.timeout, RECLAIM_DOCKER_TIMEOUT_MS),
  });
  let dataRoot: string;
  try {
    dataRoot = (await docker.info()).dockerRootDir;
  } catch (error) {
    throw new CliError(
      `cannot reach Docker at ${config.docker.socketPath}: ${errorMessage(error)}`,
      EXIT_FAILURE,
    );
  }
  const reclaimer = new Reclaimer({
    settings: config.reclaim,
    docker,
    dataRoot,
    dryRun,
    logger: logger.child({ component: 'reclaim' }),
    clock: { nowMs: () => Date.now() },
  });
  return reclaimer.run('manual', dryRun ? 'reclaim --dry-run' : 'reclaim command', { dryRun });
}

const percent = (ratio: number | null) => (ratio === null ? '?' : `${(ratio * 100).toFixed(1)}%`);

export function describeReclaim(report: ReclaimReport): string {
  const lines: string[] = [];
  const verb = report.dryRun ? 'would remove' : 'removed';
  lines.push(
    `reclaim${report.dryRun ? ' (dry run)' : ''}: ${report.result}; ${report.dataRoot} ${percent(report.usedRatioBefore)} used` +
      (report.dryRun ? '' : ` -> ${percent(report.usedRatioAfter)}`),
  );
  for (const rung of report.rungs) {
    const freed = rung.freedBytes === null ? '' : `, ${formatBytes(rung.freedBytes)} freed on the filesystem`;
    lines.push(
      `${rung.kind}: ${verb} ${rung.items.length} (${formatBytes(rung.itemBytes)} by Docker's sizes${freed})` +
        (rung.failures.length > 0 ? `, ${rung.failures.length} refused by Docker` : ''),
    );
    for (const item of rung.items)
      lines.push(
        `  ${item.id.slice(0, 19)}  ${item.name}${item.sizeBytes === null ? '' : `  ${formatBytes(item.sizeBytes)}`}`,
      );
    for (const failure of rung.failures) lines.push(`  refused ${failure.id.slice(0, 19)}: ${failure.error}`);
  }
  if (report.error) lines.push(`error: ${report.error}`);
  return `${lines.join('\n')}\n`;
}
