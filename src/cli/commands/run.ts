import type { Command } from 'commander';
import { runAgent, stateDirOf } from '../../agent/app.js';
import { createControlHandler } from '../../control/handlers.js';
import { recoverInterruptedGrows } from '../../control/local-owner.js';
import { acquireAgentLock, controlSocketPath, StorageOwnedError } from '../../control/owner.js';
import { startControlServer } from '../../control/server.js';
import { describeOwner } from '../../util/process-lock.js';
import { CliError, EXIT_FAILURE } from '../errors.js';
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
      const { config, source, logger, endpoint } = loadCliConfig(context, {
        logsToStderr: false,
        overrides: options.dryRun ? { dryRun: true } : {},
      });
      logger.info({ configSource: source }, 'configuration loaded');
      // One agent per host state: a second refuses to start; a one-shot `grow`/`once` is waited for.
      const stateDir = stateDirOf(config);
      let lock;
      try {
        lock = await acquireAgentLock(stateDir, {
          onWait: (owner) =>
            logger.info({ owner: describeOwner(owner) }, 'waiting for a docker-autogrow command to finish'),
        });
      } catch (error) {
        if (error instanceof StorageOwnedError) throw new CliError(`run: ${error.message}`, EXIT_FAILURE);
        throw error;
      }
      try {
        const agentContext = await buildAgent(config, logger, endpoint);
        recoverInterruptedGrows(agentContext);
        const agent = await runAgent(agentContext, context.io.env);
        // After the first pass: `grow`, `once` and `status` are requests to this process from now on.
        let control;
        try {
          control = await startControlServer({
            socketPath: controlSocketPath(stateDir),
            handle: createControlHandler(agentContext),
            logger: logger.child({ component: 'control' }),
          });
        } catch (error) {
          await agent.stop();
          throw error;
        }
        let signals = 0;
        const stopAll = async () => {
          await control?.close(); // no new requests; the ones being handled finish first
          await agent.stop();
        };
        const onSignal = (signal: NodeJS.Signals) => {
          signals += 1;
          // A grow in flight is always finished (or rolled back) before exit: never abandon a dm step.
          if (signals > 1)
            logger.warn({ signal }, 'already stopping; waiting for the in-flight step to finish');
          else {
            logger.info({ signal }, 'signal received');
            void stopAll();
          }
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
        await agent.stopped;
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      } finally {
        lock.release();
      }
    });
}
