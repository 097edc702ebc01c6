import type { Command } from 'commander';
import { buildAgent, loadCliConfig } from '../context.js';
import { renderStatus, statusJson } from '../render-status.js';
import { dataFilesystemJson, renderDataFilesystemLines } from '../render-data-filesystem.js';
import type { CliContext } from '../context.js';

export function registerStatusCommand(program: Command, context: CliContext): void {
  program
    .command('status')
    .description('show the pool and every container: size, used, used %, the rule that applies, next action')
    .option('--json', 'print as JSON')
    .action(async (options: { json?: boolean }) => {
      // A dry-run pass: the same observation and policy the agent uses, and nothing changes.
      const { config, logger } = loadCliConfig(context, { logsToStderr: true, overrides: { dryRun: true } });
      const agent = await buildAgent(config, logger.child({}, { level: 'warn' }));
      await agent.inventory.resync();
      const report = await agent.reconciler.runPass({ dryRun: true });
      const renderOptions = { nowMs: Date.now() };
      // the data filesystem (dataFilesystem.enabled): one dry-run look of its watcher
      const dataFs = (await agent.dataFilesystem?.runOnce()) ?? null;
      if (options.json) {
        const json = statusJson(report, renderOptions);
        context.io.stdout.write(
          dataFs
            ? `${JSON.stringify({ ...JSON.parse(json), dataFilesystem: dataFilesystemJson(dataFs) }, null, 2)}\n`
            : json,
        );
      } else {
        const text = renderStatus(report, renderOptions);
        context.io.stdout.write(dataFs ? `${text}\n${renderDataFilesystemLines(dataFs).join('\n')}\n` : text);
      }
    });
}
