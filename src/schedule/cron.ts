/**
 * Wall-clock schedules given as cron expressions (`0 3 * * *`, or with a seconds field first):
 * the adapter for node-cron, the only module that imports it. Used for jobs that mean a time of
 * day (maintenance windows, reclaim schedules); the pass loop is not one of them: it runs
 * `interval` after the previous pass ends, which cron cannot express.
 *
 * A job never overlaps itself (a run still going when the next is due is skipped and logged), its
 * timer never keeps the process alive, and its errors are logged, never thrown.
 */
import { createTask, validateDetailed, type ScheduledTask } from 'node-cron';
import type { Logger } from '../log/logger.js';
import { errorMessage } from '../util/errors.js';

/** Why `expression` is not a valid cron expression, or null when it is. */
export function cronExpressionProblem(expression: string): string | null {
  let result;
  try {
    result = validateDetailed(expression);
  } catch (error) {
    return errorMessage(error);
  }
  if (result.valid) return null;
  return result.errors.map((error) => `${error.field}: ${error.message}`).join('; ') || 'invalid';
}

export interface CronJob {
  readonly expression: string;
  /** When the job runs next (ms since the epoch), or null when stopped. */
  nextRunAtMs(): number | null;
  stop(): void;
}

export interface CronJobOptions {
  /** For logs: `reclaim`, `dockerd reload`. */
  name: string;
  expression: string;
  /** IANA zone (default: the host's local time, like cron). */
  timezone?: string;
  logger: Logger;
  run(): Promise<void> | void;
}

/** Starts a job; throws for an invalid expression (configs are checked with {@link cronExpressionProblem}). */
export function startCronJob(options: CronJobOptions): CronJob {
  const problem = cronExpressionProblem(options.expression);
  if (problem !== null) throw new Error(`invalid cron expression "${options.expression}": ${problem}`);
  const { logger, name } = options;
  let stopped = false;
  const task: ScheduledTask = createTask(
    options.expression,
    async () => {
      try {
        await options.run();
      } catch (error) {
        logger.error({ job: name, err: errorMessage(error) }, 'scheduled job failed');
      }
    },
    {
      name,
      noOverlap: true,
      unref: true,
      ...(options.timezone ? { timezone: options.timezone } : {}),
      logger: {
        info: (message) => logger.debug({ job: name }, message),
        warn: (message) => logger.warn({ job: name }, message),
        error: (message) => logger.error({ job: name, err: errorMessage(message) }, 'cron error'),
        debug: (message) => logger.debug({ job: name, detail: errorMessage(message) }, 'cron'),
      },
    },
  );
  task.on('execution:overlap', () =>
    logger.warn({ job: name }, 'scheduled job skipped: the previous run is still going'),
  );
  void task.start();
  return {
    expression: options.expression,
    nextRunAtMs: () => (stopped ? null : (task.getNextRun()?.getTime() ?? null)),
    stop: () => {
      if (stopped) return;
      stopped = true;
      void task.destroy();
    },
  };
}
