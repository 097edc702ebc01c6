import { CommanderError } from 'commander';

/** Exit codes: 0 ok, 1 failure, 2 usage or configuration error. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** An error the CLI reports as one line (no stack trace) with a chosen exit code. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
  ) {
    super(message);
  }
}

/**
 * Exit code of a commander parse error: help and version exit 0 (commander printed them), a usage
 * error exits 2 (commander printed it too). Undefined for any other error.
 */
export function commanderExitCode(error: unknown): number | undefined {
  if (!(error instanceof CommanderError)) return undefined;
  return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
}
