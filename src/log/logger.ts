/**
 * Logging: pino JSON lines on stdout, fixed messages plus fields. This is the only
 * module that imports pino; everything else takes a {@link Logger}.
 */
import { pino, destination, stdTimeFunctions, type Logger as PinoLogger, type DestinationStream } from 'pino';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
export type Logger = PinoLogger;

export interface LoggerOptions {
  level: LogLevel;
  /** Where JSON lines go: stdout (the agent) or stderr (commands whose stdout is their result). */
  fd?: 1 | 2;
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = { level: 'info' }): Logger {
  return pino(
    {
      name: 'docker-autogrow',
      level: options.level,
      base: { pid: process.pid },
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? destination({ fd: options.fd ?? 1, sync: options.fd === 2 }),
  );
}

/** A logger that drops everything (tests, `--json` commands whose stdout is the result). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
