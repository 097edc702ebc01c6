import { errorMessage } from '../../util/errors.js';
import { Option, type Command } from 'commander';
import { stateDirOf } from '../../agent/app.js';
import type { ManualGrowReport, ManualGrowTarget } from '../../agent/reconciler.js';
import { growContainer } from '../../control/grow-container.js';
import { actAsLocalOwner } from '../../control/local-owner.js';
import { CONTROL_PROTOCOL_VERSION, ControlRequestError, type GrowRequest } from '../../control/protocol.js';
import { isContainerReference } from '../../docker/ids.js';
import { formatBytes, parseSizeBytes } from '../../util/units.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../errors.js';
import { buildAgent, loadCliConfig } from '../context.js';
import { routeCommand } from '../storage-owner.js';
import type { CliContext } from '../context.js';

interface GrowOptions {
  to?: string;
  by?: string;
  dryRun?: boolean;
  force?: boolean;
  json?: boolean;
}

function parseTarget(options: GrowOptions): ManualGrowTarget {
  const text = options.to ?? options.by;
  if (!text) throw new CliError('grow: give --to SIZE or --by SIZE', EXIT_USAGE);
  let bytes: number;
  try {
    bytes = parseSizeBytes(text);
  } catch (error) {
    throw new CliError(`grow: ${errorMessage(error)}`, EXIT_USAGE);
  }
  if (bytes <= 0) throw new CliError('grow: the size must be above zero', EXIT_USAGE);
  return options.to ? { toBytes: bytes } : { byBytes: bytes };
}

export function registerGrowCommand(program: Command, context: CliContext): void {
  program
    .command('grow <container>')
    .description('grow one container now (by name or id): --to an absolute size or --by an increment')
    .addOption(new Option('--to <size>', 'target size, e.g. 15G').conflicts('by'))
    .addOption(new Option('--by <size>', 'increment, e.g. 5G').conflicts('to'))
    .option('--dry-run', 'print the exact plan; change nothing')
    .option(
      '--force',
      'allow a size above the policy maxSize and through the pool reserve, and a grow that cannot be made persistent',
    )
    .option('--json', 'print the result as JSON')
    .action(async (containerRef: string, options: GrowOptions) => {
      const target = parseTarget(options);
      if (!isContainerReference(containerRef))
        throw new CliError(`grow: ${JSON.stringify(containerRef)} is not a container name or id`, EXIT_USAGE);
      const { config, logger, endpoint } = loadCliConfig(context, { logsToStderr: true });
      const request: GrowRequest = {
        v: CONTROL_PROTOCOL_VERSION,
        op: 'grow',
        container: containerRef,
        target,
        dryRun: options.dryRun === true,
        force: options.force === true,
      };
      const report = await growThroughOwner(stateDirOf(config), request, () =>
        buildAgent(config, logger, endpoint),
      );
      if (options.json) {
        context.io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        const sizes =
          report.fromBytes !== null && report.toBytes !== null
            ? ` ${formatBytes(report.fromBytes)} -> ${formatBytes(report.toBytes)}`
            : '';
        context.io.stdout.write(`${report.name}: ${report.result}${sizes}: ${report.why}\n`);
        if (report.outcome?.kind === 'planned') {
          for (const argv of report.outcome.steps) context.io.stdout.write(`  $ ${argv.join(' ')}\n`);
        }
        for (const warning of report.warnings) context.io.stdout.write(`  warning: ${warning}\n`);
      }
      if (report.result === 'failed' || report.result === 'refused') process.exitCode = EXIT_FAILURE;
    });
}

/**
 * The running agent does the grow when there is one (its log and journal own it); otherwise this
 * process does, holding the agent lock. Either way the same report.
 */
async function growThroughOwner(
  stateDir: string,
  request: GrowRequest,
  build: Parameters<typeof actAsLocalOwner>[1],
): Promise<ManualGrowReport> {
  const route = await routeCommand(stateDir, request);
  if (route.kind === 'agent') return route.report;
  return actAsLocalOwner(route.lock, build, async (agent) => {
    await agent.inventory.resync();
    try {
      return await growContainer(
        {
          inventory: agent.inventory,
          reconciler: agent.reconciler,
          dockerInfo: agent.dockerInfo,
          requested: new Set(),
        },
        request.container,
        request.target,
        { dryRun: request.dryRun, force: request.force },
      );
    } catch (error) {
      if (error instanceof ControlRequestError) throw new CliError(error.message, error.exitCode);
      throw error;
    }
  });
}
