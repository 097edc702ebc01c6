import type { Command } from 'commander';
import type { PassReport } from '../../report/pass-report.js';
import { formatBytes } from '../../util/units.js';
import { EXIT_FAILURE } from '../errors.js';
import { buildAgent, loadCliConfig } from '../context.js';
import type { CliContext } from '../context.js';

export function registerOnceCommand(program: Command, context: CliContext): void {
  program
    .command('once')
    .description('run one pass: observe, decide, grow (or only print the plan with --dry-run), then exit')
    .option('--dry-run', 'decide and print the plan; change nothing')
    .option('--json', 'print the pass report as JSON')
    .action(async (options: { dryRun?: boolean; json?: boolean }) => {
      const dryRun = options.dryRun === true;
      const { config, logger } = loadCliConfig(context, {
        logsToStderr: true,
        overrides: dryRun ? { dryRun } : {},
      });
      const agent = await buildAgent(config, logger);
      await agent.inventory.resync();
      if (!config.dryRun && agent.backend.recover) {
        // Finish or roll back grows an earlier crash interrupted before acting again.
        await agent.backend.recover(agent.inventory.list().filter((container) => container.running));
      }
      const report = await agent.reconciler.runPass({ dryRun: config.dryRun });
      context.io.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : describePass(report));
      if (report.containers.some((container) => container.outcome?.kind === 'failed'))
        process.exitCode = EXIT_FAILURE;
    });
}

/** One line per container with a decision, for people. */
export function describePass(report: PassReport): string {
  const lines: string[] = [];
  const mode = report.dryRun ? 'dry run' : 'pass';
  lines.push(
    `${mode}: ${report.containers.length} containers, driver ${report.driver ?? 'none'}, ${Math.round(report.durationMs)} ms`,
  );
  for (const container of report.containers) {
    const decision = container.decision;
    const outcome = container.outcome;
    let what: string;
    if (outcome?.kind === 'grown')
      what = `grown ${formatBytes(outcome.fromBytes)} -> ${formatBytes(outcome.toBytes)}`;
    else if (outcome?.kind === 'failed')
      what = `FAILED ${formatBytes(outcome.fromBytes)} -> ${formatBytes(outcome.toBytes)}: ${outcome.error}`;
    else if (outcome?.kind === 'planned')
      what = `would grow ${formatBytes(outcome.fromBytes)} -> ${formatBytes(outcome.toBytes)}\n${outcome.steps.map((argv) => `      $ ${argv.join(' ')}`).join('\n')}`;
    else if (decision.kind === 'skip') what = `skip (${decision.reason}): ${decision.why}`;
    else
      what = `grow ${formatBytes(decision.fromBytes)} -> ${formatBytes(decision.toBytes)}: ${decision.why}`;
    lines.push(`  ${container.name} [${container.containerId.slice(0, 12)}] ${what}`);
  }
  for (const error of report.errors) lines.push(`  error: ${error}`);
  return `${lines.join('\n')}\n`;
}
