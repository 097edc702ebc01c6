import type { Command } from 'commander';
import { CliError } from '../errors.js';
import type { CliContext } from '../program.js';

export function registerStatusCommand(program: Command, _context: CliContext): void {
  program
    .command('status')
    .description('show the pool and every container: size, used, used %, the rule that applies, next action')
    .option('--json', 'print as JSON')
    .action(() => {
      throw new CliError('status: not wired yet (no storage backend in this build)');
    });
}
