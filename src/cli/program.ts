/**
 * The command-line interface (commander). Each command lives in src/cli/commands/ and receives a
 * {@link CliContext}; only src/main.ts turns errors into exit codes.
 */
import { Command, Option } from 'commander';
import { packageVersion } from '../util/package-version.js';
import { registerConfigCommand } from './commands/config.js';
import { registerDoctorCommand } from './commands/doctor.js';
import { registerGrowCommand } from './commands/grow.js';
import { registerOnceCommand } from './commands/once.js';
import { registerRunCommand } from './commands/run.js';
import { registerStatusCommand } from './commands/status.js';
import { registerReclaimCommand } from './commands/reclaim.js';
import type { CliContext, CliIo, GlobalOptions } from './context.js';

export function buildProgram(io: CliIo): Command {
  const program = new Command();
  program
    .name('docker-autogrow')
    .description('Keeps Docker containers from running out of disk: watches usage, grows storage online.')
    .version(packageVersion(), '-V, --version')
    .option(
      '-c, --config <file>',
      'configuration file (default: $AUTOGROW_CONFIG or /etc/docker-autogrow/config.yaml)',
    )
    .option(
      '-H, --host <address>',
      'Docker daemon (unix:///path or tcp://host:port); default: docker.host, $DOCKER_HOST, the docker context, /var/run/docker.sock',
    )
    .addOption(
      new Option('--log-level <level>', 'log level').choices([
        'trace',
        'debug',
        'info',
        'warn',
        'error',
        'fatal',
        'silent',
      ]),
    )
    .showHelpAfterError()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .exitOverride();
  const context: CliContext = { io, globals: () => program.opts<GlobalOptions>() };
  registerRunCommand(program, context);
  registerOnceCommand(program, context);
  registerStatusCommand(program, context);
  registerGrowCommand(program, context);
  registerConfigCommand(program, context);
  registerDoctorCommand(program, context);
  registerReclaimCommand(program, context);
  return program;
}
