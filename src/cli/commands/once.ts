import type { Command } from 'commander';
import { CliError } from '../errors.js';
import type { CliContext } from '../program.js';

export function registerOnceCommand(program: Command, _context: CliContext): void {
  program
    .command('once')
    .description('run one pass: observe, decide, grow (or only print the plan with --dry-run), then exit')
    .option('--dry-run', 'decide and print the plan; change nothing')
    .option('--json', 'print the pass report as JSON')
    .action(() => {
      throw new CliError('once: not wired yet (no storage backend in this build)');
    });
}
