import type { Command } from 'commander';
import { loadConfig } from '../../config/load.js';
import { webConfigFileProblem } from '../../http/web-config.js';
import { lintPolicyConfig } from '../../policy/resolve.js';
import type { CliContext } from '../context.js';

export function registerConfigCommand(program: Command, context: CliContext): void {
  const config = program.command('config').description('configuration tools');
  config
    .command('check [file]')
    .description('validate a configuration file (default: the one the agent would use) and print the result')
    .option('--print', 'print the effective configuration as JSON')
    .action((file: string | undefined, options: { print?: boolean }) => {
      const loaded = loadConfig({ flagPath: file ?? context.globals().config, env: context.io.env });
      context.io.stdout.write(`configuration OK (${loaded.source})\n`);
      // Valid but suspicious: rules that can never apply, minStep above maxStep, ...
      for (const warning of lintPolicyConfig(loaded.config)) context.io.stdout.write(`warning: ${warning}\n`);
      const webConfigFile = loaded.config.metrics.enabled ? loaded.config.metrics.webConfigFile : undefined;
      const webConfigProblem = webConfigFile === undefined ? null : webConfigFileProblem(webConfigFile);
      if (webConfigProblem !== null) {
        context.io.stdout.write(`warning: metrics.webConfigFile: ${webConfigProblem} (run will exit 1)\n`);
      }
      if (options.print) context.io.stdout.write(`${JSON.stringify(loaded.config, null, 2)}\n`);
    });
}
