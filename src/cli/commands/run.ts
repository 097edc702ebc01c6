import type { Command } from 'commander';
import { CliError } from '../errors.js';
import type { CliContext } from '../program.js';

export function registerRunCommand(program: Command, _context: CliContext): void {
  program
    .command('run')
    .description(
      'run the agent: watch Docker events, observe usage every interval, grow by policy, serve metrics',
    )
    .action(() => {
      throw new CliError('run: not wired yet (no storage backend in this build)');
    });
}
