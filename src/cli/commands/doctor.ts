import type { Command } from 'commander';
import { CliError } from '../errors.js';
import type { CliContext } from '../program.js';

export function registerDoctorCommand(program: Command, _context: CliContext): void {
  program
    .command('doctor')
    .description('check that this host can be served and print a checklist with a fix for each failure')
    .option('--json', 'print as JSON')
    .action(() => {
      throw new CliError('doctor: not wired yet');
    });
}
