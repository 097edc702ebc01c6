/**
 * The fill guard: between two regular passes it re-reads, through the backend's process-free
 * `readLiveUsage` (sysfs counters, statfs), the containers that a writer at the host's peak rate
 * could fill before the next pass, each as often as its headroom requires (src/policy/guard.ts).
 * When a look shows a container at its threshold, or filling fast enough to be full before the
 * next pass, it asks the reconciler for a pass of that container at once: the ordinary policy
 * decides, the ordinary grow path acts, nothing is decided here.
 *
 * Which containers are guarded comes from the pass reports: containers with a limit whose
 * decision could still turn into a grow, and whose headroom is small against the peak rate. A
 * look that finds plenty of headroom (after a grow) hands the container back to the passes.
 *
 * Cost: one timer, armed only while some container is guarded, and one batch per tick: a tick
 * reads every guarded container due within half its period (reading early is always safe), so
 * containers of one size fall into step and share their ticks. Before reading any container a
 * tick reads the backend's host-wide change token (btrfs: six filesystem space counters); a
 * container whose last read saw the same token cannot have moved, so on an idle host a tick is
 * those few counters whatever the container count. A look starts no process; an urgent look costs
 * one pass for one container, and after a pass that declined to grow, the container is not handed
 * over again before the next regular pass: at most one extra pass per container per interval
 * while it is declined.
 */
import type { Logger } from '../log/logger.js';
import {
  guardPeriodMs,
  guardVerdict,
  UNGUARDED_SKIPS,
  type GuardSample,
  type GuardSettings,
} from '../policy/guard.js';
import type { StorageBackend } from '../storage/types.js';
import type { Clock, Timers } from '../util/clock.js';
import type { PassReport } from '../report/pass-report.js';
import { errorMessage } from '../util/errors.js';

export interface FillGuardDeps {
  readLiveUsage: NonNullable<StorageBackend['readLiveUsage']>;
  settings: GuardSettings;
  clock: Clock;
  timers: Timers;
  logger: Logger;
  /** Runs a pass for this one container (the reconciler's runPass with onlyContainerId). */
  evaluate(containerId: string): Promise<PassReport>;
  /** Milliseconds until the next regular pass starts (the interval when unknown). */
  untilNextPassMs(): number;
  /** The backend's host-wide change token (StorageBackend.readChangeToken); absent or null: none. */
  changeToken?(): string | null;
}

interface GuardedContainer {
  containerId: string;
  name: string;
  thresholdRatio: number;
  last: GuardSample;
  periodMs: number;
  dueAtMs: number;
  /** A pass for it was asked for and has not reported yet. */
  evaluating: boolean;
  /** No new pass is asked for before this (after a pass that decided not to grow). */
  heldUntilMs: number;
  /**
   * A change token read before `last` was (by a look, or by a whole-host pass whose reading was
   * live); null: read the container at its next look.
   */
  token: string | null;
}

export interface GuardStats {
  /** Containers guarded now. */
  guarded: number;
  /** Process-free reads of one container, since start. */
  looks: number;
  /** Passes asked for, since start. */
  evaluations: number;
  /** Ticks answered by the change token alone (no container read), since start. */
  quietTicks: number;
}

export class FillGuard {
  private readonly guarded = new Map<string, GuardedContainer>();
  private timer: unknown = null;
  private looking = false;
  private stopped = false;
  private looks = 0;
  private evaluations = 0;
  private quietTicks = 0;
  private lastReadError: string | null = null;
  /**
   * The quiet fast path: set when every guarded container was last read (or confirmed) under
   * this change token. A tick then reads the token and, while it stands still, only re-arms: no
   * batch, no per-container work, no promise. Measured on an idle host with 100 guarded 1G
   * containers (8 ticks a second), the per-container bookkeeping was most of the guard's cost.
   */
  private quietToken: string | null = null;
  /** The shortest look period of the containers when quietToken was set. */
  private quietPeriodMs = 0;
  /** When a tick last found the token unchanged: every container's reading held until then. */
  private quietConfirmedAtMs = 0;

  constructor(private readonly deps: FillGuardDeps) {}

  get stats(): GuardStats {
    return {
      guarded: this.guarded.size,
      looks: this.looks,
      evaluations: this.evaluations,
      quietTicks: this.quietTicks,
    };
  }

  /**
   * Takes what a pass saw: which containers to guard, from which sample, against which threshold.
   * `changeTokenBeforeObserve`: the backend's change token the pass read before it observed (a
   * whole-host pass; null otherwise). A live reading taken after it stays current while the token
   * stands still, so the next ticks need not read the container again: without it, every
   * whole-host pass cost one look per guarded container (100 looks every 30 s on an idle host).
   */
  noteReport(report: PassReport, changeTokenBeforeObserve: string | null = null): void {
    if (this.stopped || report.dryRun) return;
    this.leaveQuiet();
    const seen = new Set<string>();
    for (const container of report.containers) {
      seen.add(container.containerId);
      const usage = container.usage;
      const unguarded = container.decision.kind === 'skip' && UNGUARDED_SKIPS.has(container.decision.reason);
      if (!usage || usage.sizeBytes === null || usage.usedBytes === null || unguarded) {
        this.guarded.delete(container.containerId);
        continue;
      }
      const existing = this.guarded.get(container.containerId);
      // Stamped with the pass's end, not its start: a backend reads usage somewhere in between
      // (btrfs after its qgroup show), and a stamp too early would make the next look's rate too
      // low; too late errs high, which only means acting sooner. The guard's own look may be newer.
      const passEndMs = report.startedAtMs + report.durationMs;
      const sample: GuardSample =
        existing && existing.last.atMs > passEndMs && existing.last.sizeBytes === usage.sizeBytes
          ? existing.last
          : { atMs: passEndMs, usedBytes: usage.usedBytes, sizeBytes: usage.sizeBytes };
      const periodMs = guardPeriodMs(sample.usedBytes, sample.sizeBytes, this.deps.settings);
      if (periodMs === null) {
        if (!existing?.evaluating) this.guarded.delete(container.containerId);
        continue;
      }
      const token =
        existing && sample === existing.last
          ? existing.token
          : usage.readLive === true && container.outcome === undefined // a grow moved the size
            ? changeTokenBeforeObserve
            : null;
      const dueAtMs = Math.min(existing?.dueAtMs ?? Infinity, sample.atMs + periodMs);
      if (existing) {
        // updated in place: a pending evaluation holds this object
        Object.assign(existing, {
          name: container.name,
          thresholdRatio: container.thresholdRatio,
          last: sample,
          periodMs,
          dueAtMs,
          token,
        });
      } else {
        this.guarded.set(container.containerId, {
          containerId: container.containerId,
          name: container.name,
          thresholdRatio: container.thresholdRatio,
          last: sample,
          periodMs,
          dueAtMs,
          evaluating: false,
          heldUntilMs: 0,
          token,
        });
      }
    }
    if (report.onlyContainerIds === undefined) {
      // a whole-host pass: containers it did not see are stopped or gone
      for (const id of this.guarded.keys()) if (!seen.has(id)) this.guarded.delete(id);
    }
    this.arm();
  }

  forget(containerId: string): void {
    this.leaveQuiet();
    this.guarded.delete(containerId);
  }

  stop(): void {
    this.stopped = true;
    this.quietToken = null;
    if (this.timer !== null) this.deps.timers.clearTimeout(this.timer);
    this.timer = null;
    this.guarded.clear();
  }

  /** Sets the timer for the earliest due look (one timer; none while nothing is guarded). */
  private arm(): void {
    if (this.stopped || this.looking) return;
    if (this.timer !== null) this.deps.timers.clearTimeout(this.timer);
    this.timer = null;
    let earliestMs = Infinity;
    if (this.quietToken !== null) earliestMs = this.quietConfirmedAtMs + this.quietPeriodMs;
    else {
      for (const entry of this.guarded.values()) {
        if (!entry.evaluating) earliestMs = Math.min(earliestMs, entry.dueAtMs);
      }
    }
    if (earliestMs === Infinity) return;
    const delayMs = Math.max(0, earliestMs - this.deps.clock.nowMs());
    this.timer = this.deps.timers.setTimeout(() => {
      this.timer = null;
      if (this.quietTick()) return;
      this.look().catch((error: unknown) =>
        this.deps.logger.error({ err: errorMessage(error) }, 'fill guard look failed'),
      );
    }, delayMs);
  }

  /** The fast path (see quietToken): true when the token still stands and the tick is done. */
  private quietTick(): boolean {
    if (this.quietToken === null || this.looking || this.stopped) return false;
    const nowMs = this.deps.clock.nowMs();
    if ((this.deps.changeToken?.() ?? null) !== this.quietToken) return false;
    this.quietTicks += 1;
    this.quietConfirmedAtMs = nowMs;
    this.arm();
    return true;
  }

  /**
   * Ends the fast path before the containers change or are read: the readings the fast path
   * confirmed hold until its last confirmation, which the rate of the next look must start from.
   */
  private leaveQuiet(): void {
    if (this.quietToken === null) return;
    for (const entry of this.guarded.values()) {
      if (entry.token === this.quietToken && entry.last.atMs < this.quietConfirmedAtMs)
        entry.last.atMs = this.quietConfirmedAtMs; // each entry's own sample object
    }
    this.quietToken = null;
  }

  /** After a look: enters the fast path when every container was read under `token`. */
  private enterQuietIfAllReadUnder(token: string | null, nowMs: number): void {
    if (token === null || this.guarded.size === 0) return;
    let periodMs = Infinity;
    for (const entry of this.guarded.values()) {
      if (entry.evaluating || entry.token !== token) return;
      periodMs = Math.min(periodMs, entry.periodMs);
    }
    this.quietToken = token;
    this.quietPeriodMs = periodMs;
    this.quietConfirmedAtMs = nowMs;
  }

  /** One round: reads every due container, asks for a pass where a look says so. */
  async look(): Promise<void> {
    if (this.stopped || this.looking) return;
    this.leaveQuiet();
    this.looking = true;
    let token: string | null = null;
    const startMs = this.deps.clock.nowMs();
    try {
      // one batch per tick: whatever is due within half its period is read now, early
      const batch: GuardedContainer[] = [];
      for (const entry of this.guarded.values())
        if (!entry.evaluating && entry.dueAtMs - entry.periodMs / 2 <= startMs) batch.push(entry);
      if (batch.length === 0) return;
      // Read before the containers, so a write during the reads shows as a new token next tick.
      token = this.deps.changeToken?.() ?? null;
      const due: GuardedContainer[] = [];
      for (const entry of batch) {
        if (token !== null && entry.token === token) {
          // nothing on the filesystem moved since this container was last read: neither did it
          entry.last.atMs = startMs; // each entry's own sample object
          entry.dueAtMs = startMs + entry.periodMs;
        } else due.push(entry);
      }
      if (due.length === 0) {
        this.quietTicks += 1;
        return;
      }
      let live;
      try {
        live = await this.deps.readLiveUsage(due.map((entry) => entry.containerId));
        this.lastReadError = null;
      } catch (error) {
        // the passes still cover every container; say it once, not at every look
        const message = errorMessage(error);
        if (message !== this.lastReadError) this.deps.logger.warn({ err: message }, 'fill guard read failed');
        this.lastReadError = message;
        for (const entry of due) entry.dueAtMs = startMs + entry.periodMs;
        return;
      }
      const readAtMs = this.deps.clock.nowMs();
      for (const entry of due) {
        if (this.guarded.get(entry.containerId) !== entry) continue;
        const usage = live.get(entry.containerId);
        if (!usage || usage.sizeBytes === null) {
          // not readable without a process any more: the passes cover it
          this.guarded.delete(entry.containerId);
          continue;
        }
        this.looks += 1;
        const sample: GuardSample = {
          atMs: readAtMs,
          usedBytes: usage.usedBytes,
          sizeBytes: usage.sizeBytes,
        };
        const periodMs = guardPeriodMs(sample.usedBytes, sample.sizeBytes, this.deps.settings);
        const verdict = guardVerdict(
          entry.last,
          sample,
          entry.thresholdRatio,
          this.deps.untilNextPassMs(),
          periodMs ?? this.deps.settings.passIntervalMs,
        );
        entry.last = sample;
        entry.token = token;
        if (verdict.urgent && readAtMs >= entry.heldUntilMs) {
          this.evaluate(entry, verdict);
        } else if (periodMs === null) {
          this.guarded.delete(entry.containerId);
          continue;
        }
        entry.periodMs = periodMs ?? this.deps.settings.passIntervalMs;
        entry.dueAtMs = readAtMs + entry.periodMs;
      }
    } finally {
      this.looking = false;
      if (!this.stopped) this.enterQuietIfAllReadUnder(token, startMs);
      this.arm();
    }
  }

  private evaluate(
    entry: GuardedContainer,
    verdict: ReturnType<typeof guardVerdict> & { urgent: true },
  ): void {
    entry.evaluating = true;
    this.evaluations += 1;
    const { logger, clock } = this.deps;
    logger.info(
      {
        containerId: entry.containerId,
        name: entry.name,
        usedBytes: entry.last.usedBytes,
        sizeBytes: entry.last.sizeBytes,
        reason: verdict.reason,
        bytesPerSecond: verdict.bytesPerSecond === null ? null : Math.round(verdict.bytesPerSecond),
        timeToFullMs: verdict.timeToFullMs === null ? null : Math.round(verdict.timeToFullMs),
      },
      'fill guard triggered',
    );
    this.deps
      .evaluate(entry.containerId)
      .then(
        (report) => {
          const decided = report.containers.find((container) => container.containerId === entry.containerId);
          // A pass that chose not to grow (cooldown, or just below the threshold) is not asked
          // again before the next regular pass, which decides anew: at most one extra pass per
          // container per interval, never a pass every look (a look can be 20 ms apart).
          entry.heldUntilMs =
            decided?.decision.kind === 'skip'
              ? clock.nowMs() + Math.max(entry.periodMs, this.deps.untilNextPassMs())
              : 0;
        },
        (error: unknown) => {
          entry.heldUntilMs = clock.nowMs() + this.deps.settings.passIntervalMs;
          logger.error(
            { containerId: entry.containerId, err: errorMessage(error) },
            'fill guard pass failed',
          );
        },
      )
      .finally(() => {
        entry.evaluating = false;
        this.arm();
      })
      .catch((error: unknown) => logger.error({ err: errorMessage(error) }, 'fill guard failed'));
  }
}
