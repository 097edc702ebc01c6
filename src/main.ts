#!/usr/bin/env node
/**
 * Entry point: parses the command line and maps errors to exit codes (0 ok, 1 failure, 2 usage or
 * configuration error). The only place that calls process.exit.
 */
import { errorMessage } from './util/errors.js';
import { ConfigError } from './config/load.js';
import { buildProgram } from './cli/program.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE, commanderExitCode } from './cli/errors.js';

async function main(argv: string[]): Promise<number> {
  const io = { stdout: process.stdout, stderr: process.stderr, env: process.env };
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    const parseExitCode = commanderExitCode(error);
    if (parseExitCode !== undefined) return parseExitCode;
    if (error instanceof ConfigError) {
      io.stderr.write(`docker-autogrow: ${error.message}\n`);
      return EXIT_USAGE;
    }
    if (error instanceof CliError) {
      io.stderr.write(`docker-autogrow: ${error.message}\n`);
      return error.exitCode;
    }
    io.stderr.write(`docker-autogrow: ${errorMessage(error)}\n`);
    if (process.env.AUTOGROW_DEBUG && error instanceof Error && error.stack)
      io.stderr.write(`${error.stack}\n`);
    return EXIT_FAILURE;
  }
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`docker-autogrow: ${String(error)}\n`);
    process.exitCode = EXIT_FAILURE;
  },
);
