/**
 * The grow path: one container at a time under its lock (a container never has two grows at
 * once), at most `concurrency` grows at once across passes and manual grows (a semaphore), every
 * grow journaled before and after, logged, and recorded in the history (cooldown, backoff).
 * Never throws for a failed grow: the outcome says what happened.
 */
import type { ContainerInfo } from '../docker/model.js';
import type { Logger } from '../log/logger.js';
import type { Decision } from '../policy/types.js';
import type { GrowOutcome } from '../report/pass-report.js';
import type { GrowStep, StorageBackend } from '../storage/types.js';
import type { Clock } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import { formatBytes } from '../util/units.js';
import { growFailureDetails, type GrowFailureDetails } from '../storage/grow-error.js';
import type { HistoryStore } from './history.js';
import type { JournalEntry, JournalPort } from './journal.js';

/** Counting semaphore for the global grow concurrency limit. */
export class Semaphore {
  private available: number;
  private readonly waiters: Array<() => void> = [];

  constructor(limit: number) {
    this.available = limit;
  }

  async acquire(): Promise<void> {
    if (this.available > 0) {
      this.available -= 1;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.available += 1;
  }
}

export function stepArgv(step: GrowStep): readonly string[] {
  return step.argv ?? [step.name];
}

export function stepText(step: GrowStep): string {
  return step.argv ? step.argv.join(' ') : step.name;
}

/** Appends a journal record; a failed write is logged (the journal counts it), never thrown. */
export function journalOrLog(
  journal: JournalPort,
  logger: Logger,
  entry: JournalEntry,
  options: { durable?: boolean } = {},
): void {
  if (!journal.append(entry, options)) {
    logger.error({ type: entry.type, writeErrors: journal.writeErrors }, 'journal write failed');
  }
}

export interface GrowerDeps {
  backend: StorageBackend;
  journal: JournalPort;
  history: HistoryStore;
  clock: Clock;
  logger: Logger;
  concurrency: number;
  /**
   * Asked after a grow failed: does the container still exist? `'gone'` (Docker removed it while
   * the grow ran, `docker rm -f`) turns the failure into a `container-gone` outcome: no backoff,
   * no failure metric, no ResizeFailures alert. `'unknown'` (Docker unreachable) keeps the
   * failure. Absent: every failure is a failure.
   */
  containerPresence?(containerId: string): Promise<'present' | 'gone' | 'unknown'>;
  /** Called when a grow ended, whatever its outcome (a limit moved, or a backoff began). */
  onGrowEnded?(containerId: string): void;
}

export type GrowDecision = Decision & { kind: 'grow' };

export class Grower {
  private readonly semaphore: Semaphore;
  /** Running grow per container (the per-container lock). */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: GrowerDeps) {
    this.semaphore = new Semaphore(deps.concurrency);
  }

  /** Whether a grow of this container is running. */
  isGrowing(containerId: string): boolean {
    return this.locks.has(containerId);
  }

  /** Resolves when the running grow of this container (if any) has ended. */
  async settled(containerId: string): Promise<void> {
    await this.locks.get(containerId)?.catch(() => undefined);
  }

  /** Asks the backend for the exact steps of a grow without changing anything. */
  async plan(
    container: ContainerInfo,
    fromBytes: number,
    toBytes: number,
  ): Promise<{ outcome: GrowOutcome; error?: string }> {
    try {
      const result = await this.deps.backend.grow({ container, fromBytes, toBytes, dryRun: true });
      return { outcome: { kind: 'planned', fromBytes, toBytes, steps: result.steps.map(stepArgv) } };
    } catch (error) {
      return { outcome: { kind: 'planned', fromBytes, toBytes, steps: [] }, error: errorMessage(error) };
    }
  }

  /** Grows one container under its lock and the global limit; journals and logs. Never throws. */
  grow(
    container: ContainerInfo,
    decision: GrowDecision,
  ): Promise<{ outcome: GrowOutcome; backoffUntilMs: number | null }> {
    const work = this.growLocked(container, decision);
    this.locks.set(container.id, work);
    this.deps.history.setInFlight(container.id, true);
    const release = () => {
      this.locks.delete(container.id);
      this.deps.history.setInFlight(container.id, false);
      this.deps.onGrowEnded?.(container.id);
    };
    work.then(release, release);
    return work;
  }

  private journal(entry: JournalEntry, options: { durable?: boolean } = {}): void {
    journalOrLog(this.deps.journal, this.deps.logger, entry, options);
  }

  /** Whether Docker says the container no longer exists; a check that fails says no. */
  private async containerGone(containerId: string): Promise<boolean> {
    const presence = this.deps.containerPresence;
    if (!presence) return false;
    try {
      return (await presence(containerId)) === 'gone';
    } catch (error) {
      this.deps.logger.warn(
        { containerId, err: errorMessage(error) },
        'container re-check after a failed grow failed',
      );
      return false;
    }
  }

  private async growLocked(
    container: ContainerInfo,
    decision: GrowDecision,
  ): Promise<{ outcome: GrowOutcome; backoffUntilMs: number | null }> {
    const { clock, logger, backend, history } = this.deps;
    const { fromBytes, toBytes, trigger } = decision;
    const fields = { containerId: container.id, name: container.name, fromBytes, toBytes, trigger };
    await this.semaphore.acquire();
    const startedMs = clock.nowMs();
    try {
      // Not fsync'd: it only turns a grow an agent crash interrupted into a backoff, and the
      // write reaches the kernel (survives a kill) without waiting for a disk that a fast writer
      // may be flooding (an fsync took up to 360 ms under dd). The end record is fsync'd.
      this.journal(
        {
          type: 'grow-started',
          atMs: startedMs,
          containerId: container.id,
          name: container.name,
          fromBytes,
          toBytes,
          trigger,
          why: decision.why,
        },
        { durable: false },
      );
      let failure: string | null = null;
      let failureDetails: GrowFailureDetails = { step: 'read back', deviceState: 'unknown' };
      let steps: GrowStep[] = [];
      let resultBytes = fromBytes;
      let noop = false;
      try {
        const result = await backend.grow({ container, fromBytes, toBytes, dryRun: false });
        steps = [...result.steps];
        resultBytes = result.toBytes;
        noop = result.noop;
        // The backend re-reads after acting; a "success" that did not move the size (a thin pool
        // flagged needs_check resumes with 0 and grows nothing) is a failure.
        if (!result.noop && result.toBytes <= fromBytes) {
          failure = `the backend reported success but the size is still ${formatBytes(result.toBytes)}`;
        }
      } catch (error) {
        failure = errorMessage(error);
        failureDetails = growFailureDetails(error);
      }
      if (failure !== null && (await this.containerGone(container.id))) {
        const endMs = clock.nowMs();
        const durationMs = endMs - startedMs;
        history.forget(container.id);
        this.journal({
          type: 'grow-container-gone',
          atMs: endMs,
          containerId: container.id,
          name: container.name,
          trigger,
          fromBytes,
          toBytes,
          durationMs,
          error: failure,
        });
        logger.info(
          { ...fields, durationMs, err: failure },
          'grow ended: the container was removed meanwhile',
        );
        return {
          outcome: { kind: 'container-gone', fromBytes, toBytes, durationMs, error: failure },
          backoffUntilMs: null,
        };
      }
      const endMs = clock.nowMs();
      const durationMs = endMs - startedMs;
      if (failure === null) {
        history.recordGrowSucceeded(container.id, endMs, resultBytes);
        this.journal({
          type: 'grow-succeeded',
          atMs: endMs,
          containerId: container.id,
          name: container.name,
          trigger,
          fromBytes,
          toBytes: resultBytes,
          requestedBytes: toBytes,
          durationMs,
          noop,
          steps: steps.map(stepText),
        });
        logger.info(
          { ...fields, toBytes: resultBytes, requestedBytes: toBytes, durationMs, noop },
          'grow succeeded',
        );
        return {
          outcome: noop
            ? { kind: 'noop', sizeBytes: resultBytes, durationMs }
            : { kind: 'grown', fromBytes, toBytes: resultBytes, durationMs },
          backoffUntilMs: null,
        };
      }
      const { consecutiveFailures, backoffUntilMs } = history.recordGrowFailed(container.id, endMs, failure);
      this.journal({
        type: 'grow-failed',
        atMs: endMs,
        containerId: container.id,
        name: container.name,
        trigger,
        fromBytes,
        toBytes,
        durationMs,
        error: failure,
        ...failureDetails,
        consecutiveFailures,
        backoffUntilMs,
      });
      logger.error(
        { ...fields, durationMs, err: failure, ...failureDetails, consecutiveFailures, backoffUntilMs },
        'grow failed',
      );
      return {
        outcome: { kind: 'failed', fromBytes, toBytes, durationMs, error: failure, ...failureDetails },
        backoffUntilMs,
      };
    } finally {
      this.semaphore.release();
    }
  }
}
