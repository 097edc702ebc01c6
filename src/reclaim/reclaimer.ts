/**
 * The reclaim component: runs the ladder (./ladder.ts) when the data filesystem is over
 * `reclaim.threshold` and cannot grow (src/policy/reclaim.ts decides, fed by the data-filesystem
 * watcher's looks, or by its own statfs when the agent does not grow the data filesystem), at each
 * cron schedule (src/schedule/cron.ts, the one node-cron adapter), and when asked (`reclaim`).
 * Runs never overlap: one waits for the other. The agent-wide `dryRun` makes every run a dry run.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import {
  decideReclaimAcross,
  reclaimObservationOfPool,
  type ReclaimHistory,
  type ReclaimObservation,
  type ReclaimTriggerDecision,
} from '../policy/reclaim.js';
import { startCronJob, type CronJob, type CronJobOptions } from '../schedule/cron.js';
import { statfsUsage, type FilesystemUsage } from '../storage/filesystem.js';
import { realTimers, unrefTimer, type Clock, type Timers } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import { runLadder, type ReclaimReport, type ReclaimTrigger } from './ladder.js';
import type { ReclaimDockerApi } from '../contracts/reclaim.js';
import type { PoolAction } from '../report/pass-report.js';
import type { PoolUsage } from '../storage/types.js';

export type ReclaimSettings = Config['reclaim'];

export interface ReclaimerDeps {
  settings: ReclaimSettings;
  docker: ReclaimDockerApi;
  dataRoot: string;
  /** The agent-wide dry run: plan, never remove. */
  dryRun: boolean;
  logger: Logger;
  clock: Clock;
  statfs?: (dir: string) => Promise<FilesystemUsage>;
  /** Starts a cron job (default: the node-cron adapter); tests drive schedules through it. */
  startCron?: (options: CronJobOptions) => CronJob;
  /**
   * When set, the reclaimer looks at the data filesystem itself this often (the agent does not
   * grow it: dataFilesystem disabled); otherwise the watcher feeds {@link Reclaimer.observe}.
   */
  ownLookIntervalMs?: number;
  timers?: Timers;
  onReport?: (report: ReclaimReport) => void;
  onExhausted?: (exhausted: boolean) => void;
}

export class Reclaimer {
  private readonly jobs: CronJob[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private thresholdRunPending = false;
  private history: ReclaimHistory = {
    lastThresholdRunAtMs: null,
    lastRunLeftOverThreshold: false,
    lastRunFinishedAtMs: null,
  };
  /** The latest observation of each subject (data filesystem, thin pool), by subject kind. */
  private readonly latest = new Map<string, ReclaimObservation>();
  private exhaustedNow = false;
  private last: ReclaimReport | null = null;
  private lastDecision: ReclaimTriggerDecision | null = null;
  private timer: unknown = null;
  private stopped = false;

  constructor(private readonly deps: ReclaimerDeps) {}

  get lastReport(): ReclaimReport | null {
    return this.last;
  }

  get lastTriggerDecision(): ReclaimTriggerDecision | null {
    return this.lastDecision;
  }

  get exhausted(): boolean {
    return this.exhaustedNow;
  }

  /** Starts the cron schedules (and the own look, when configured). */
  start(): void {
    const startCron = this.deps.startCron ?? startCronJob;
    for (const expression of this.deps.settings.schedules) {
      this.jobs.push(
        startCron({
          name: 'reclaim',
          expression,
          ...(this.deps.settings.timezone ? { timezone: this.deps.settings.timezone } : {}),
          logger: this.deps.logger,
          run: async () => {
            await this.run('schedule', `cron schedule "${expression}"`);
          },
        }),
      );
    }
    if (this.deps.ownLookIntervalMs !== undefined) this.scheduleOwnLook();
  }

  /** Stops schedules and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const job of this.jobs.splice(0)) job.stop();
    if (this.timer !== null) (this.deps.timers ?? realTimers).clearTimeout(this.timer);
    this.timer = null;
    await this.chain.catch(() => undefined);
  }

  /** When each schedule fires next (ms since the epoch). */
  nextScheduledRunsMs(): (number | null)[] {
    return this.jobs.map((job) => job.nextRunAtMs());
  }

  /**
   * One look at the data filesystem: starts a threshold run when the policy says so (not waited
   * for; a second look while one is pending starts none).
   */
  observe(observation: ReclaimObservation): ReclaimTriggerDecision {
    const { settings } = this.deps;
    this.latest.set(observation.measuredByLadder === false ? 'pool' : 'data-filesystem', observation);
    const decision = decideReclaimAcross(
      { threshold: settings.threshold, target: settings.target, cooldownMs: settings.cooldown },
      [...this.latest.values()],
      this.history,
      this.deps.clock.nowMs(),
    );
    this.lastDecision = decision;
    if (decision.action === 'none') this.history = { ...this.history, lastRunLeftOverThreshold: false };
    this.setExhausted(decision.exhausted);
    if (decision.action === 'reclaim' && !this.thresholdRunPending && !this.stopped) {
      this.thresholdRunPending = true;
      this.history = {
        ...this.history,
        lastThresholdRunAtMs: this.deps.clock.nowMs(),
        lastRunFinishedAtMs: null,
      };
      void this.run('threshold', decision.why, { stopAtTarget: decision.stopAtTarget }).finally(() => {
        this.thresholdRunPending = false;
        this.history = { ...this.history, lastRunFinishedAtMs: this.deps.clock.nowMs() };
      });
    }
    return decision;
  }

  /** A data-filesystem look (the watcher's status): see {@link reclaimObservationOf}. */
  observeDataFilesystem(status: Parameters<typeof reclaimObservationOf>[0]): void {
    const observation = reclaimObservationOf(status);
    if (observation) this.observe(observation);
  }

  /**
   * A reconciler pass (its thin pool): see {@link reclaimObservationOfPool}. Passes of backends
   * without a thin pool change nothing.
   */
  observePool(report: { pool: PoolUsage | null; poolAction?: PoolAction; startedAtMs: number }): void {
    const observation = reclaimObservationOfPool(report.pool, report.poolAction, this.deps.clock.nowMs());
    if (observation) this.observe(observation);
    else if (this.latest.delete('pool') && this.latest.size > 0) {
      // the pool is no subject any more: decide on what is left
      this.observe([...this.latest.values()][0]!);
    }
  }

  /**
   * Runs the ladder once (after any run in progress). Threshold runs stop at the target unless
   * `stopAtTarget` is false (a pool trigger: the ladder cannot measure the pool).
   */
  run(
    trigger: ReclaimTrigger,
    why: string,
    options: { dryRun?: boolean; stopAtTarget?: boolean } = {},
  ): Promise<ReclaimReport> {
    const { deps } = this;
    const dryRun = deps.dryRun || options.dryRun === true;
    const next = this.chain.then(async () => {
      deps.logger.info({ trigger, why, dryRun }, 'reclaim ladder starting');
      const report = await runLadder(
        {
          docker: deps.docker,
          dataRoot: deps.dataRoot,
          statfs: deps.statfs ?? statfsUsage,
          logger: deps.logger,
          nowMs: () => deps.clock.nowMs(),
        },
        {
          rungs: deps.settings.ladder,
          trigger,
          why,
          dryRun,
          stopBelowRatio:
            trigger === 'threshold' && options.stopAtTarget !== false ? deps.settings.target : null,
        },
      );
      this.finished(report);
      return report;
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  private finished(report: ReclaimReport): void {
    const { deps } = this;
    if (!report.dryRun) this.last = report;
    if (report.trigger === 'threshold' && !report.dryRun) {
      const leftOver = report.usedRatioAfter === null || report.usedRatioAfter >= deps.settings.threshold;
      this.history = { ...this.history, lastRunLeftOverThreshold: leftOver };
      this.setExhausted(leftOver);
    }
    deps.logger.info(
      {
        trigger: report.trigger,
        result: report.result,
        dryRun: report.dryRun,
        removed: report.rungs.reduce((sum, rung) => sum + rung.items.length, 0),
        freedBytes: report.rungs.reduce((sum, rung) => sum + (rung.freedBytes ?? 0), 0),
        usedRatioBefore: report.usedRatioBefore,
        usedRatioAfter: report.usedRatioAfter,
      },
      'reclaim ladder finished',
    );
    deps.onReport?.(report);
  }

  private setExhausted(exhausted: boolean): void {
    if (exhausted === this.exhaustedNow) return;
    this.exhaustedNow = exhausted;
    if (exhausted)
      this.deps.logger.error(
        { dataRoot: this.deps.dataRoot },
        'data filesystem cannot grow and the reclaim ladder did not bring it under its threshold',
      );
    this.deps.onExhausted?.(exhausted);
  }

  private scheduleOwnLook(): void {
    if (this.stopped) return;
    const timers = this.deps.timers ?? realTimers;
    this.timer = timers.setTimeout(() => {
      this.timer = null;
      void this.ownLook().finally(() => this.scheduleOwnLook());
    }, this.deps.ownLookIntervalMs ?? 5_000);
    unrefTimer(this.timer);
  }

  private async ownLook(): Promise<void> {
    try {
      const usage = await (this.deps.statfs ?? statfsUsage)(this.deps.dataRoot);
      this.observe({
        subject: `data filesystem ${this.deps.dataRoot}`,
        usedRatio: usage.totalBytes > 0 ? usage.usedBytes / usage.totalBytes : 0,
        cannotGrowReason: 'growth-disabled',
      });
    } catch (error) {
      this.deps.logger.warn({ err: errorMessage(error) }, 'reclaim: cannot statfs the data root');
    }
  }
}

/**
 * What one data-filesystem look tells the reclaim policy: the usage, and why it cannot grow
 * (null while growth is still possible: below its own threshold, growing, in cooldown).
 */
export function reclaimObservationOf(status: {
  dataRoot: string;
  look: { usage: FilesystemUsage } | null;
  decision: { action: string; reason?: string } | null;
  outcome: { kind: string } | null;
  /** A device grown underneath that the watcher grows into now: growth first. */
  underneath?: { decision: { action: string } } | null;
}): ReclaimObservation | null {
  if (!status.look) return null;
  const { usage } = status.look;
  let cannotGrowReason: string | null = null;
  const growingUnderneath =
    status.underneath?.decision.action === 'grow-filesystem' ||
    status.underneath?.decision.action === 'pvresize';
  if (growingUnderneath) cannotGrowReason = null;
  else if (status.decision?.action === 'cannot-grow')
    cannotGrowReason = status.decision.reason ?? 'cannot-grow';
  else if (status.outcome?.kind === 'failed') cannotGrowReason = 'grow-failed';
  return {
    subject: `data filesystem ${status.dataRoot}`,
    usedRatio: usage.totalBytes > 0 ? usage.usedBytes / usage.totalBytes : 0,
    cannotGrowReason,
  };
}

/** Idle timeout of the reclaim ladder's Docker calls: a prune of a large build cache answers late. */
export const RECLAIM_DOCKER_TIMEOUT_MS = 10 * 60_000;
