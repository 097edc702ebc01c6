import { Option, type Command } from 'commander';
import { CliError } from '../errors.js';
import type { CliContext } from '../program.js';

export function registerGrowCommand(program: Command, _context: CliContext): void {
  program
    .command('grow <container>')
    .description('grow one container now (by name or id): --to an absolute size or --by an increment')
    .addOption(new Option('--to <size>', 'target size, e.g. 15G').conflicts('by'))
    .addOption(new Option('--by <size>', 'increment, e.g. 5G').conflicts('to'))
    .option('--dry-run', 'print the exact plan; change nothing')
    .action(() => {
      throw new CliError('grow: not wired yet (no storage backend in this build)');
    });
}
