import type { Command } from 'commander';
import { stateDirOf, type AgentContext } from '../../agent/app.js';
import { actAsLocalOwner } from '../../control/local-owner.js';
import { CONTROL_PROTOCOL_VERSION } from '../../control/protocol.js';
import type { PassReport } from '../../report/pass-report.js';
import { formatBytes } from '../../util/units.js';
import { EXIT_FAILURE } from '../errors.js';
import { buildAgent, loadCliConfig } from '../context.js';
import { routeCommand } from '../storage-owner.js';
import type { CliContext } from '../context.js';

export function registerOnceCommand(program: Command, context: CliContext): void {
  program
    .command('once')
    .description('run one pass: observe, decide, grow (or only print the plan with --dry-run), then exit')
    .option('--dry-run', 'decide and print the plan; change nothing')
    .option('--json', 'print the pass report as JSON')
    .action(async (options: { dryRun?: boolean; json?: boolean }) => {
      const dryRun = options.dryRun === true;
      const { config, logger, endpoint } = loadCliConfig(context, {
        logsToStderr: true,
        overrides: dryRun ? { dryRun } : {},
      });
      const build = () => buildAgent(config, logger, endpoint);
      // A dry run changes nothing: it never needs the owner. An acting pass is the agent's when
      // one runs (joining its pass), or this process's under the agent lock.
      const report = config.dryRun
        ? await localPass(await build(), true)
        : await passThroughOwner(config, build);
      context.io.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : describePass(report));
      if (report.containers.some((container) => container.outcome?.kind === 'failed'))
        process.exitCode = EXIT_FAILURE;
    });
}

async function passThroughOwner(
  config: AgentContext['config'],
  build: () => Promise<AgentContext>,
): Promise<PassReport> {
  const route = await routeCommand(stateDirOf(config), { v: CONTROL_PROTOCOL_VERSION, op: 'once' });
  if (route.kind === 'agent') return route.report;
  return actAsLocalOwner(route.lock, build, (agent) => localPass(agent, false));
}

async function localPass(agent: AgentContext, dryRun: boolean): Promise<PassReport> {
  await agent.inventory.resync();
  if (!dryRun && agent.backend.recover) {
    // Finish or roll back grows an earlier crash interrupted before acting again.
    await agent.backend.recover(agent.inventory.list().filter((container) => container.running));
  }
  return agent.reconciler.runPass({ dryRun });
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
    else if (outcome?.kind === 'container-gone') what = 'removed by Docker during the grow (not a failure)';
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
