/**
 * Logging: pino JSON lines on stdout, fixed messages plus fields. This is the only
 * module that imports pino; everything else takes a {@link Logger}.
 */
import { pino, destination, stdTimeFunctions, type Logger as PinoLogger, type DestinationStream } from 'pino';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
export type Logger = PinoLogger;

export function createLogger(
  options: { level: LogLevel; destination?: DestinationStream } = { level: 'info' },
): Logger {
  return pino(
    {
      name: 'docker-autogrow',
      level: options.level,
      base: { pid: process.pid },
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? destination({ fd: 1, sync: false }),
  );
}

/** A logger that drops everything (tests, `--json` commands whose stdout is the result). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
