/**
 * The reconcile loop: observe every running container in one batched backend call, decide with the
 * pure policy (src/policy/decide.ts), grow what the policy says, journal every action, and return a
 * {@link PassReport} from which logs, metrics, `once --json` and `status` are derived.
 *
 * Public API (the composition root, src/agent/app.ts, and the CLI use only this):
 *
 *   const reconciler = new Reconciler({ inventory, backend, config, journal, clock, logger, onReport });
 *   await reconciler.start();        // replay journal, backend.recover(), subscribe, pass now + every interval
 *                                    // (a container start event triggers a whole-host pass at once)
 *   await reconciler.runPass({ dryRun, onlyContainerId });   // one pass -> PassReport (`once`, `status`)
 *   await reconciler.growNow(container, { toBytes } | { byBytes }, { dryRun, force });  // `grow`
 *   await reconciler.stop();         // no new passes; waits for running grows to finish
 *   reconciler.lastReport            // the latest PassReport (for /readyz or a status endpoint)
 *
 * Guarantees:
 *  - Single flight: one pass at a time. Passes requested while one runs coalesce into one follow-up
 *    (per dry-run flag; a full pass absorbs single-container passes), and every requester gets it.
 *  - Timers are a setTimeout chain: the next pass is scheduled `config.interval` after the previous
 *    one ENDS, so passes never overlap and a slow grow delays, never stacks, the schedule.
 *  - Cost follows risk: a scheduled pass is skipped while the backend's change token, the
 *    inventory (events), grows and cooldown/backoff ends stand still and the last whole-host pass
 *    left only steady decisions, for at most QUIET_PASS_MAX_SKIP_MS: it would decide, report and
 *    export the same again. Passes asked for (events, `once`, `status`, the guard) always run.
 *  - Parts: the grow path is ./grower.ts, pool growth ./pool-grower.ts, log de-duplication
 *    ./pass-logger.ts, the manual grow's rules src/policy/manual-grow.ts.
 *  - A lock per container (a container never has two grows at once; a pass skips it as in-flight)
 *    and at most `config.concurrency` grows at once across passes and manual grows.
 *  - One container's failure (probe error, grow error, journal error) never stops the pass.
 *  - `stop()` never abandons a grow mid-way: it waits for running grows and passes.
 *  - The journal is read lazily on first use, so one-shot commands (`once`, `status`, `grow`) see
 *    the cooldowns and backoff the daemon recorded.
 *
 * Logging (fixed messages, fields as listed; tests and the fill-race harness parse them):
 *  - 'pass' once per pass {durationMs, containers, grown, noop, failed, planned, skipped: {reason: n},
 *    pool, dryRun}: info when something happened (a grow or a failure, a pool grown or failed) or
 *    when the standing state changed since the last pass (skip counts by reason, planned count, pool
 *    action, pass errors); debug otherwise, so a steady host at 1 pass/s logs nothing at the default
 *    level, and a dry-run daemon logs its plan once, not every second.
 *  - 'threshold crossed' (info, once per crossing) {containerId, name, usedBytes, sizeBytes, thresholdRatio}
 *  - 'grow succeeded' (info) / 'grow failed' (error) {containerId, name, fromBytes, toBytes, durationMs, trigger}
 *  - 'pool grow succeeded' / 'pool grow failed', 'label ignored' (warn, once per container and text),
 *    'journal write failed' (error).
 */
import type { Config } from '../config/schema.js';
import type { Inventory } from '../docker/inventory-port.js';
import type { ContainerInfo } from '../docker/model.js';
import type { Logger } from '../log/logger.js';
import { decide, type ContainerPlan, type DecideOutput } from '../policy/decide.js';
import { decideManualGrow, type ManualGrowTarget } from '../policy/manual-grow.js';
import { lintPolicyConfig, resolvePolicy } from '../policy/resolve.js';
import type { Decision, SkipReason } from '../policy/types.js';
import type { Observation, StorageBackend } from '../storage/types.js';
import { FillGuard, type GuardStats } from './guard.js';
import { Grower, journalOrLog } from './grower.js';
import { PoolGrower } from './pool-grower.js';
import { PassLogger } from './pass-logger.js';
import { HistoryStore } from './history.js';
import type { JournalEntry, JournalPort } from './journal.js';
import type { ContainerReport, GrowOutcome, PassReport, ProbeReport } from '../report/pass-report.js';
import { errorMessage } from '../util/errors.js';
import { realTimers, type Clock, type Timers } from '../util/clock.js';

export interface ReconcilerDeps {
  inventory: Inventory;
  backend: StorageBackend;
  config: Config;
  journal: JournalPort;
  clock: Clock;
  logger: Logger;
  /** Called with every pass report (metrics). Exceptions are logged, never propagated. */
  onReport?(report: PassReport): void;
  timers?: Timers;
}

export interface PassOptions {
  /** Plan only (also forced by config.dryRun). */
  dryRun?: boolean;
  /** Observe and decide for this container only (a start event). */
  onlyContainerId?: string;
}

export type { ManualGrowTarget } from '../policy/manual-grow.js';

export interface ManualGrowOptions {
  dryRun?: boolean;
  /** Allow a target above the container's maxSize and through the pool reserve/overcommit. */
  force?: boolean;
}

/** The result of {@link Reconciler.growNow}. */
export interface ManualGrowReport {
  containerId: string;
  name: string;
  result: 'grown' | 'noop' | 'planned' | 'refused' | 'failed';
  /** One sentence: what happened or why not. */
  why: string;
  /** For `refused`: the policy reason, when one applies. */
  reason?: SkipReason;
  fromBytes: number | null;
  /** The target after rounding up to a whole MiB. */
  toBytes: number | null;
  outcome?: GrowOutcome;
  /** Warnings (forced past maxSize or the pool, label problems). */
  warnings: string[];
}

interface PendingPass {
  scope: Set<string> | 'all';
  promise: Promise<PassReport>;
  resolve(report: PassReport): void;
  reject(error: unknown): void;
}

/**
 * A scheduled whole-host pass on a quiet host is skipped for at most this long: the pass that
 * follows refreshes what no token covers (a limit changed behind the agent, the pool, the
 * journal of other processes) and keeps lastReport within the watchdog's bound (60 s).
 */
export const QUIET_PASS_MAX_SKIP_MS = 30_000;

/**
 * Decisions that stay the same while nothing moves: usage (the change token), the inventory
 * (events) and the clock (cooldown and backoff ends, kept as timers) are all a pass reads.
 */
const STEADY_SKIPS: ReadonlySet<SkipReason> = new Set<SkipReason>([
  'below-threshold',
  'no-limit',
  'disabled',
  'at-max-size',
  'cooldown',
  'backoff',
]);

export class Reconciler {
  private readonly history: HistoryStore;
  private readonly grower: Grower;
  private readonly poolGrower: PoolGrower;
  private readonly passLogger: PassLogger;
  private readonly timers: Timers;
  /** Everything stop() must wait for. */
  private readonly running = new Set<Promise<unknown>>();
  private readonly pending = new Map<boolean, PendingPass>();
  private passRunning = false;
  private journalLoaded = false;
  private started = false;
  private stopped = false;
  private timer: unknown = null;
  /** When the scheduled pass is due (null while a scheduled pass runs or before start). */
  private nextPassAtMs: number | null = null;
  private guard: FillGuard | null = null;
  private unsubscribe: (() => void) | null = null;
  private latest: PassReport | null = null;
  /** Something a token does not show happened (an event, a grow): the next pass must run. */
  private passDue = true;
  /** The backend's change token read at the start of the latest whole-host pass. */
  private tokenAtLastPass: string | null = null;
  /** Whether the latest whole-host pass left only steady decisions (nothing to retry). */
  private lastPassSteady = false;
  /** The earliest cooldown or backoff end the latest whole-host pass reported. */
  private nextTimerDueMs: number | null = null;
  private skippedPasses = 0;

  constructor(private readonly deps: ReconcilerDeps) {
    this.history = new HistoryStore(deps.config.backoff);
    this.passLogger = new PassLogger(deps.logger);
    this.poolGrower = new PoolGrower({
      backend: deps.backend,
      journal: deps.journal,
      clock: deps.clock,
      logger: deps.logger,
      backoff: deps.config.backoff,
    });
    this.grower = new Grower({
      backend: deps.backend,
      journal: deps.journal,
      history: this.history,
      clock: deps.clock,
      logger: deps.logger,
      concurrency: deps.config.concurrency,
      containerPresence: async (id) => {
        const recheck = deps.inventory.recheck;
        if (recheck) return await recheck.call(deps.inventory, id);
        return deps.inventory.get(id) ? 'present' : 'gone';
      },
      // a limit moved (or a backoff began), which the change token does not show
      onGrowEnded: () => (this.passDue = true),
    });
    this.timers = deps.timers ?? realTimers;
    // After a rotation the fresh journal file starts with the remembered cooldowns and backoff.
    deps.journal.setStateProvider?.(() => this.history.stateEntries(deps.clock.nowMs()));
  }

  /** The fill guard's counters, or null when it is off (config, or a backend without a fast path). */
  get guardStats(): GuardStats | null {
    return this.guard?.stats ?? null;
  }

  /** Scheduled passes skipped on a quiet host since start (tests, benchmarks). */
  get quietPassesSkipped(): number {
    return this.skippedPasses;
  }

  /** The latest whole-host pass report, or null before the first one. */
  get lastReport(): PassReport | null {
    return this.latest;
  }

  /** Replays the journal into the history (once). Safe to call more than once. */
  loadJournal(): { records: number; skippedLines: number; interruptedGrows: string[] } {
    if (this.journalLoaded) return { records: 0, skippedLines: 0, interruptedGrows: [] };
    this.journalLoaded = true;
    try {
      const replay = this.deps.journal.replay();
      const { interruptedGrows } = this.history.replay(replay.records);
      this.deps.journal.readAppended?.(); // follow the journal from here on (see followJournal)
      if (replay.skippedLines > 0) {
        this.deps.logger.warn({ skippedLines: replay.skippedLines }, 'journal lines skipped');
      }
      for (const containerId of interruptedGrows) {
        this.deps.logger.warn(
          { containerId },
          'grow not finished: still running in another process, or interrupted',
        );
      }
      return { records: replay.records.length, skippedLines: replay.skippedLines, interruptedGrows };
    } catch (error) {
      this.deps.logger.error({ err: errorMessage(error) }, 'journal replay failed');
      return { records: 0, skippedLines: 0, interruptedGrows: [] };
    }
  }

  /**
   * Starts the daemon loop: replays the journal, lets the backend recover interrupted grows, logs
   * config warnings, subscribes to the inventory (which must already be started), runs a pass now and
   * then every `config.interval` after the previous pass ends.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.loadJournal();
    for (const warning of lintPolicyConfig(this.deps.config)) {
      this.deps.logger.warn({ warning }, 'config warning');
    }
    if (this.deps.backend.recover) {
      try {
        await this.deps.backend.recover(this.deps.inventory.list().filter((container) => container.running));
      } catch (error) {
        this.deps.logger.error({ err: errorMessage(error) }, 'backend recovery failed');
      }
    }
    this.unsubscribe = this.deps.inventory.subscribe({
      // A start is evaluated at once with a whole-host pass, not a one-container pass: observation is
      // batched (the same commands whatever the container count), the report stays complete for the
      // metrics, and a burst of starts (a resync) coalesces into one follow-up pass.
      onStart: (container) => {
        this.passDue = true;
        if (this.stopped) return;
        this.track(this.runPass()).catch((error: unknown) =>
          this.deps.logger.error(
            { err: errorMessage(error), containerId: container.id },
            'event pass failed',
          ),
        );
      },
      onStop: (container) => {
        this.passDue = true;
        // containerStopped() logs its own failures and never rejects.
        void this.track(this.containerStopped(container));
      },
      onDestroy: (containerId) => {
        this.passDue = true;
        this.forget(containerId);
      },
    });
    const { backend, config, clock, logger } = this.deps;
    if (config.guard.enabled && backend.readLiveUsage && !config.dryRun) {
      this.guard = new FillGuard({
        readLiveUsage: backend.readLiveUsage.bind(backend),
        settings: {
          peakWriteBytesPerSecond: config.guard.peakWriteRate,
          minIntervalMs: config.guard.minInterval,
          passIntervalMs: config.interval,
        },
        clock,
        timers: this.timers,
        logger,
        evaluate: (containerId) => this.runPass({ onlyContainerId: containerId }),
        untilNextPassMs: () =>
          this.nextPassAtMs === null ? config.interval : Math.max(0, this.nextPassAtMs - clock.nowMs()),
        ...(backend.readChangeToken ? { changeToken: () => backend.readChangeToken?.() ?? null } : {}),
      });
    }
    logger.info(
      this.guard
        ? {
            enabled: true,
            peakWriteBytesPerSecond: config.guard.peakWriteRate,
            minIntervalMs: config.guard.minInterval,
          }
        : {
            enabled: false,
            why: !config.guard.enabled
              ? 'guard.enabled is false'
              : config.dryRun
                ? 'dry run'
                : `the ${backend.driver} backend has no process-free reader`,
          },
      'fill guard',
    );
    this.schedule(0);
  }

  /** Stops scheduling, unsubscribes, and waits for running passes and grows to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.guard?.stop();
    this.unsubscribe?.();
    this.unsubscribe = null;
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /** Runs one pass (or joins the follow-up when a pass is running). Never rejects for a pass error. */
  runPass(options: PassOptions = {}): Promise<PassReport> {
    const dryRun = options.dryRun === true || this.deps.config.dryRun;
    const scope: Set<string> | 'all' =
      options.onlyContainerId === undefined ? 'all' : new Set([options.onlyContainerId]);
    if (!this.passRunning) return this.track(this.startPass(dryRun, scope));
    let pending = this.pending.get(dryRun);
    if (!pending) {
      let resolve!: (report: PassReport) => void;
      let reject!: (error: unknown) => void;
      const promise = new Promise<PassReport>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      pending = { scope, promise, resolve, reject };
      this.pending.set(dryRun, pending);
      // Only bookkeeping for stop(); the caller awaits (and handles) the promise itself.
      void this.track(promise);
      return promise;
    }
    if (pending.scope !== 'all') {
      if (scope === 'all') pending.scope = 'all';
      else for (const id of scope) pending.scope.add(id);
    }
    return pending.promise;
  }

  /**
   * Grows one container now, for the `grow` command: bypasses threshold, cooldown and backoff, never
   * shrinks, rounds the target up to a whole MiB, refuses beyond maxSize or through the pool reserve
   * and overcommit limit unless `force`, always refuses on an unhealthy pool, and honours dry run
   * (the option or config.dryRun). The grow is journaled and starts the cooldown like any other.
   */
  async growNow(
    container: ContainerInfo,
    target: ManualGrowTarget,
    options: ManualGrowOptions = {},
  ): Promise<ManualGrowReport> {
    this.loadJournal();
    const dryRun = options.dryRun === true || this.deps.config.dryRun;
    const force = options.force === true;
    const resolved = resolvePolicy(this.deps.config, container);
    const base = { containerId: container.id, name: container.name, warnings: [...resolved.warnings] };
    if (!resolved.settings.enabled) {
      base.warnings.push(
        `autogrow is disabled for this container (${resolved.ruleName}); growing because asked`,
      );
    }
    const refuse = (
      why: string,
      reason?: SkipReason,
      fromBytes: number | null = null,
      toBytes: number | null = null,
    ) =>
      ({
        ...base,
        result: 'refused',
        why,
        fromBytes,
        toBytes,
        ...(reason ? { reason } : {}),
      }) as ManualGrowReport;

    if (this.grower.isGrowing(container.id))
      return refuse('a grow of this container is running', 'in-flight');
    let observation: Observation;
    try {
      observation = await this.deps.backend.observe([container], this.deps.clock.nowMs(), {
        partial: true,
      });
    } catch (error) {
      return refuse(`usage could not be read: ${errorMessage(error)}`, 'usage-unknown');
    }
    const usage = observation.containers.get(container.id);
    if (!usage) {
      const error = observation.errors.get(container.id);
      return refuse(
        error ? `usage could not be read: ${error}` : 'the backend does not see this container',
        'usage-unknown',
      );
    }
    const verdict = decideManualGrow({
      config: this.deps.config,
      maxSizeBytes: resolved.settings.maxSize,
      ruleName: resolved.ruleName,
      sizeBytes: usage.sizeBytes,
      pool: observation.pool,
      target,
      force,
    });
    if (verdict.kind === 'refused')
      return refuse(verdict.why, verdict.reason, verdict.fromBytes, verdict.toBytes);
    if (verdict.kind === 'noop') {
      return {
        ...base,
        result: 'noop',
        why: verdict.why,
        fromBytes: verdict.fromBytes,
        toBytes: verdict.fromBytes,
        outcome: { kind: 'noop', sizeBytes: verdict.fromBytes, durationMs: 0 },
      };
    }
    const { fromBytes, toBytes } = verdict;
    base.warnings.push(...verdict.warnings);
    const decision: Decision & { kind: 'grow' } = {
      kind: 'grow',
      containerId: container.id,
      fromBytes,
      toBytes,
      trigger: 'manual',
      why: verdict.why,
    };
    if (dryRun) {
      const outcome = await this.grower.plan(container, decision.fromBytes, decision.toBytes);
      return {
        ...base,
        result: 'planned',
        why: `dry run: ${decision.why}`,
        fromBytes,
        toBytes,
        outcome: outcome.outcome,
      };
    }
    if (this.grower.isGrowing(container.id))
      return refuse('a grow of this container is running', 'in-flight');
    const applied = await this.track(this.grower.grow(container, decision));
    const outcome = applied.outcome;
    return {
      ...base,
      result:
        outcome.kind === 'failed' || outcome.kind === 'container-gone'
          ? 'failed'
          : outcome.kind === 'noop'
            ? 'noop'
            : 'grown',
      why:
        outcome.kind === 'failed'
          ? `grow failed: ${outcome.error}`
          : outcome.kind === 'container-gone'
            ? `the container was removed during the grow: ${outcome.error}`
            : decision.why,
      fromBytes,
      toBytes,
      outcome,
    };
  }

  // ---- passes ---------------------------------------------------------------------------------

  private track<T>(promise: Promise<T>): Promise<T> {
    this.running.add(promise);
    const done = () => this.running.delete(promise);
    promise.then(done, done);
    return promise;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.nextPassAtMs = this.deps.clock.nowMs() + delayMs;
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.nextPassAtMs = null;
      if (this.stopped) return;
      if (this.quietPassMayBeSkipped()) {
        this.skippedPasses += 1;
        this.schedule(this.deps.config.interval);
        return;
      }
      this.runPass()
        .catch((error: unknown) =>
          this.deps.logger.error({ err: errorMessage(error) }, 'scheduled pass failed'),
        )
        .finally(() => this.schedule(this.deps.config.interval));
    }, delayMs);
  }

  /**
   * Whether the scheduled pass can be left out: nothing moved since the latest whole-host pass
   * (same change token, no event, no grow), that pass left only steady decisions, no cooldown or
   * backoff ended, and it is recent. Then a pass would decide, report and export the same again.
   */
  private quietPassMayBeSkipped(): boolean {
    const latest = this.latest;
    if (this.passDue || !this.lastPassSteady || latest === null || this.tokenAtLastPass === null)
      return false;
    const nowMs = this.deps.clock.nowMs();
    if (nowMs - latest.startedAtMs >= QUIET_PASS_MAX_SKIP_MS) return false;
    if (this.nextTimerDueMs !== null && nowMs >= this.nextTimerDueMs) return false;
    return this.deps.backend.readChangeToken?.() === this.tokenAtLastPass;
  }

  /** What the next scheduled pass needs to know about this whole-host pass (see above). */
  private noteWholePass(report: PassReport, token: string | null): void {
    this.tokenAtLastPass = token;
    this.lastPassSteady =
      report.errors.length === 0 &&
      report.probes.every((probe) => probe.ok) &&
      report.poolAction === undefined &&
      report.containers.every(
        (container) =>
          container.outcome === undefined &&
          container.decision.kind === 'skip' &&
          STEADY_SKIPS.has(container.decision.reason),
      );
    let dueMs = Infinity;
    for (const container of report.containers) {
      if (container.cooldownUntilMs !== null) dueMs = Math.min(dueMs, container.cooldownUntilMs);
      if (container.backoffUntilMs !== null) dueMs = Math.min(dueMs, container.backoffUntilMs);
    }
    this.nextTimerDueMs = dueMs === Infinity ? null : dueMs;
  }

  private async startPass(dryRun: boolean, scope: Set<string> | 'all'): Promise<PassReport> {
    this.passRunning = true;
    try {
      return await this.executePass(dryRun, scope);
    } finally {
      this.passRunning = false;
      this.startNextPending();
    }
  }

  private startNextPending(): void {
    // Real passes first: a dry run never delays a grow.
    for (const dryRun of [false, true]) {
      const next = this.pending.get(dryRun);
      if (!next) continue;
      this.pending.delete(dryRun);
      this.startPass(dryRun, next.scope).then(next.resolve, next.reject);
      return;
    }
  }

  /**
   * Takes in grows other processes journaled since the last pass: a `docker-autogrow grow` or
   * `once` starts the container's cooldown (or backoff) in the daemon too, without a restart.
   * Outcomes only, which set absolute state, so re-reading the daemon's own records changes
   * nothing.
   */
  private followJournal(): void {
    let appended;
    try {
      appended = this.deps.journal.readAppended?.() ?? [];
    } catch (error) {
      this.deps.logger.warn({ err: errorMessage(error) }, 'journal follow failed');
      return;
    }
    // ...and forgets, so a grow read back for a container destroyed since does not revive it
    const outcomes = appended.filter(
      (record) =>
        (record.type === 'grow-succeeded' ||
          record.type === 'grow-failed' ||
          record.type === 'container-forgotten') &&
        !this.grower.isGrowing(record.containerId),
    );
    if (outcomes.length > 0) this.history.replay(outcomes);
  }

  private async executePass(dryRun: boolean, scope: Set<string> | 'all'): Promise<PassReport> {
    this.loadJournal();
    this.followJournal();
    const { backend, clock, config, logger } = this.deps;
    // Read before observing: a write during the pass shows as a new token at the next tick.
    let token: string | null = null;
    if (scope === 'all') {
      this.passDue = false;
      token = backend.readChangeToken?.() ?? null;
    }
    const startedAtMs = clock.nowMs();
    const errors: string[] = [];
    const probes: ProbeReport[] = [];
    let running = this.deps.inventory.list().filter((container) => container.running);
    if (scope !== 'all') running = running.filter((container) => scope.has(container.id));

    let observation: Observation;
    try {
      observation = await backend.observe(running, startedAtMs, { partial: scope !== 'all', dryRun });
      probes.push({ name: `${backend.driver} observe`, ok: true, durationMs: clock.nowMs() - startedAtMs });
    } catch (error) {
      const message = errorMessage(error);
      probes.push({
        name: `${backend.driver} observe`,
        ok: false,
        durationMs: clock.nowMs() - startedAtMs,
        error: message,
      });
      errors.push(`observe failed: ${message}`);
      observation = {
        takenAtMs: startedAtMs,
        driver: backend.driver,
        pool: null,
        containers: new Map(),
        errors: new Map(running.map((container) => [container.id, message])),
      };
    }
    const considered = running.filter(
      (container) => observation.containers.has(container.id) || observation.errors.has(container.id),
    );
    for (const container of considered) {
      const usage = observation.containers.get(container.id);
      if (usage && usage.usedBytes !== null) {
        this.history.recordSample(
          container.id,
          { atMs: observation.takenAtMs, usedBytes: usage.usedBytes, sizeBytes: usage.sizeBytes },
          config.prediction.window,
        );
      }
    }

    let decided: DecideOutput;
    try {
      decided = decide({
        nowMs: clock.nowMs(),
        config,
        observation,
        containers: considered,
        history: this.history.snapshot(),
        dryRun,
      });
    } catch (error) {
      // A bug in the policy must not kill the daemon; nothing is grown this pass.
      errors.push(`decide failed: ${errorMessage(error)}`);
      logger.error({ err: errorMessage(error) }, 'decide failed');
      decided = { decisions: [], plans: [], pool: { kind: 'unknown', why: 'decide failed' } };
    }
    this.passLogger.noteThresholdsAndWarnings(considered, decided.plans, observation);

    const byId = new Map(considered.map((container) => [container.id, container]));
    const results = await Promise.all(
      decided.plans.map(async (plan) => {
        const container = byId.get(plan.containerId)!;
        return this.act(container, plan, errors);
      }),
    );
    const poolAction = await this.poolGrower.act(decided.pool, observation, dryRun, errors);

    const containers: ContainerReport[] = decided.plans.map((plan, index) => {
      const usage = observation.containers.get(plan.containerId) ?? null;
      const result = results[index]!;
      return {
        containerId: plan.containerId,
        name: byId.get(plan.containerId)!.name,
        driver: usage?.driver ?? backend.driver,
        usage,
        ruleName: plan.ruleName,
        maxSizeBytes: plan.maxSizeBytes,
        decision: result.decision,
        timeToFullSeconds: plan.timeToFullSeconds,
        ...(result.outcome ? { outcome: result.outcome } : {}),
        labelWarnings: plan.labelWarnings,
        backoffUntilMs: result.backoffUntilMs ?? plan.backoffUntilMs,
        thresholdRatio: plan.settings.threshold,
        cooldownUntilMs: this.cooldownUntilMs(plan.containerId, plan.settings.cooldown, clock.nowMs()),
      };
    });
    const report: PassReport = {
      startedAtMs,
      durationMs: clock.nowMs() - startedAtMs,
      driver: backend.driver,
      dryRun,
      pool: observation.pool,
      ...(poolAction ? { poolAction } : {}),
      containers,
      probes,
      errors,
      ...(scope === 'all' ? {} : { onlyContainerIds: [...scope] }),
      ...(observation.unpersisted
        ? {
            unpersisted: observation.unpersisted.map((device) => ({
              ...device,
              name: this.deps.inventory.get(device.containerId)?.name ?? device.containerId.slice(0, 12),
            })),
          }
        : {}),
    };
    this.passLogger.logPass(report, decided.pool);
    if (scope === 'all') {
      this.latest = report;
      this.noteWholePass(report, token);
    }
    try {
      this.guard?.noteReport(report, token);
    } catch (error) {
      // the passes still cover every container
      logger.error({ err: errorMessage(error) }, 'fill guard update failed');
    }
    try {
      this.deps.onReport?.(report);
    } catch (error) {
      logger.error({ err: errorMessage(error) }, 'report handler failed');
    }
    return report;
  }

  /** Carries out one container's decision (grow, or plan on dry run). Never throws. */
  private async act(
    container: ContainerInfo,
    plan: ContainerPlan,
    errors: string[],
  ): Promise<{ decision: Decision; outcome?: GrowOutcome; backoffUntilMs?: number | null }> {
    const { decision } = plan;
    try {
      if (decision.kind === 'skip') {
        if (decision.reason !== 'dry-run' || !decision.wouldGrow) return { decision };
        const planned = await this.grower.plan(
          container,
          decision.wouldGrow.fromBytes,
          decision.wouldGrow.toBytes,
        );
        if (planned.error) errors.push(`plan for ${container.name}: ${planned.error}`);
        return { decision, outcome: planned.outcome };
      }
      if (this.grower.isGrowing(container.id)) {
        return {
          decision: {
            kind: 'skip',
            containerId: container.id,
            reason: 'in-flight',
            why: 'a grow of this container is running',
          },
        };
      }
      const applied = await this.grower.grow(container, decision);
      return { decision, outcome: applied.outcome, backoffUntilMs: applied.backoffUntilMs };
    } catch (error) {
      // applyGrow catches backend errors; this is a last line of defence for bugs.
      errors.push(`${container.name}: ${errorMessage(error)}`);
      return { decision };
    }
  }

  // ---- events, logging, journal -----------------------------------------------------------------

  private async containerStopped(container: ContainerInfo): Promise<void> {
    const onStopped = this.deps.backend.onContainerStopped;
    if (!onStopped) return;
    // Never act on a device while its grow is still running.
    await this.grower.settled(container.id);
    try {
      await onStopped.call(this.deps.backend, container);
    } catch (error) {
      this.deps.logger.error(
        { containerId: container.id, name: container.name, err: errorMessage(error) },
        'container stop handling failed',
      );
    }
  }

  private forget(containerId: string): void {
    const known = this.history.get(containerId);
    this.history.forget(containerId);
    this.guard?.forget(containerId);
    this.passLogger.forget(containerId);
    if (known && (known.lastGrowAtMs !== null || known.consecutiveFailures > 0)) {
      this.journal({ type: 'container-forgotten', atMs: this.deps.clock.nowMs(), containerId });
    }
  }

  private journal(entry: JournalEntry): void {
    journalOrLog(this.deps.journal, this.deps.logger, entry);
  }

  /** Recent failure/cooldown state of one container (status, tests). */
  /** End of the running cooldown after the last successful grow, or null. */
  private cooldownUntilMs(containerId: string, cooldownMs: number, nowMs: number): number | null {
    const lastGrowAtMs = this.history.get(containerId)?.lastGrowAtMs ?? null;
    if (lastGrowAtMs === null) return null;
    const untilMs = lastGrowAtMs + cooldownMs;
    return untilMs > nowMs ? untilMs : null;
  }

  containerHistory(containerId: string) {
    return this.history.get(containerId);
  }
}
