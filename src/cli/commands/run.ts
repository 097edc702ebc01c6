import type { Command } from 'commander';
import { runAgent } from '../../agent/app.js';
import { buildAgent, loadCliConfig } from '../context.js';
import type { CliContext } from '../context.js';

export function registerRunCommand(program: Command, context: CliContext): void {
  program
    .command('run')
    .description(
      'run the agent: watch Docker events, observe usage every interval, grow by policy, serve metrics',
    )
    .option('--dry-run', 'decide and report every pass; change nothing')
    .action(async (options: { dryRun?: boolean }) => {
      const { config, source, logger } = loadCliConfig(context, {
        logsToStderr: false,
        overrides: options.dryRun ? { dryRun: true } : {},
      });
      logger.info({ configSource: source }, 'configuration loaded');
      const agent = await runAgent(await buildAgent(config, logger), context.io.env);
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals) => {
        signals += 1;
        // A grow in flight is always finished (or rolled back) before exit: never abandon a dm step.
        if (signals > 1)
          logger.warn({ signal }, 'already stopping; waiting for the in-flight step to finish');
        else logger.info({ signal }, 'signal received');
        void agent.stop();
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      await agent.stopped;
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    });
}
