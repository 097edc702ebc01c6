import { errorMessage } from '../../util/errors.js';
import { Option, type Command } from 'commander';
import type { ManualGrowTarget } from '../../agent/reconciler.js';
import { formatBytes, parseSizeBytes } from '../../util/units.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../errors.js';
import { buildAgent, loadCliConfig } from '../context.js';
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
    .option('--force', 'allow a size above the policy maxSize and through the pool reserve')
    .option('--json', 'print the result as JSON')
    .action(async (containerRef: string, options: GrowOptions) => {
      const target = parseTarget(options);
      const { config, logger } = loadCliConfig(context, { logsToStderr: true });
      const agent = await buildAgent(config, logger);
      await agent.inventory.resync();
      const container = agent.inventory.find(containerRef);
      if (!container) throw new CliError(`grow: no container ${JSON.stringify(containerRef)}`, EXIT_FAILURE);
      if (!container.running)
        throw new CliError(`grow: container ${container.name} is not running`, EXIT_FAILURE);
      const report = await agent.reconciler.growNow(container, target, {
        dryRun: options.dryRun === true,
        force: options.force === true,
      });
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
