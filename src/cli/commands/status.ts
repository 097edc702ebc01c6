import type { Command } from 'commander';
import { stateDirOf, type AgentContext } from '../../agent/app.js';
import { askAgentIfRunning } from '../../control/owner.js';
import { CONTROL_PROTOCOL_VERSION } from '../../control/protocol.js';
import type { PassReport } from '../../report/pass-report.js';
import { CliError } from '../errors.js';
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
      const { config, logger, endpoint } = loadCliConfig(context, {
        logsToStderr: true,
        overrides: { dryRun: true },
      });
      // The running agent's latest pass when one runs; else a dry-run pass here, with the same
      // observation and policy the agent uses, and nothing changes.
      const reply = await askAgentIfRunning(stateDirOf(config), {
        v: CONTROL_PROTOCOL_VERSION,
        op: 'status',
      });
      let report: PassReport;
      // which daemon and why: the agent's when it answers, else the one this process asks
      let dockerEndpoint: string | null = null;
      // the data filesystem (dataFilesystem.enabled): one dry-run look of its watcher, in-process
      // only for now (the control protocol's status answer does not carry it yet)
      let dataFs: Awaited<ReturnType<NonNullable<AgentContext['dataFilesystem']>['runOnce']>> | null = null;
      if (reply) {
        if (!reply.ok) throw new CliError(reply.error, reply.exitCode);
        if (reply.op !== 'status') throw new CliError(`the agent answered status with ${reply.op}`);
        report = reply.report;
        dockerEndpoint = typeof reply.dockerEndpoint === 'string' ? reply.dockerEndpoint : null;
      } else {
        const agent = await buildAgent(config, logger.child({}, { level: 'warn' }), endpoint);
        dockerEndpoint = agent.dockerEndpoint ?? null;
        await agent.inventory.resync();
        report = await agent.reconciler.runPass({ dryRun: true });
        dataFs = (await agent.dataFilesystem?.runOnce()) ?? null;
      }
      const renderOptions = { nowMs: Date.now() };
      if (options.json) {
        const json = statusJson(report, renderOptions);
        context.io.stdout.write(
          dataFs || dockerEndpoint
            ? `${JSON.stringify(
                {
                  ...(JSON.parse(json) as object),
                  ...(dockerEndpoint ? { dockerEndpoint } : {}),
                  ...(dataFs ? { dataFilesystem: dataFilesystemJson(dataFs) } : {}),
                },
                null,
                2,
              )}\n`
            : json,
        );
      } else {
        const text = `${dockerEndpoint ? `Docker: ${dockerEndpoint}\n` : ''}${renderStatus(report, renderOptions)}`;
        context.io.stdout.write(dataFs ? `${text}\n${renderDataFilesystemLines(dataFs).join('\n')}\n` : text);
      }
    });
}
