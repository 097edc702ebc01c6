/**
 * The pool grower: grows the storage pool (a devicemapper thin pool) when the pool policy
 * (src/policy/pool.ts) says so, journaled before and after, with its own exponential backoff
 * after failures (one pool per host, so one backoff, apart from the containers').
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { PoolDecision } from '../policy/types.js';
import type { PoolAction } from '../report/pass-report.js';
import type { Observation, StorageBackend } from '../storage/types.js';
import { backoffDelayMs } from '../util/backoff.js';
import type { Clock } from '../util/clock.js';
import { errorMessage } from '../util/errors.js';
import { growFailureDetails } from '../storage/grow-error.js';
import { formatBytes } from '../util/units.js';
import { journalOrLog, stepText } from './grower.js';
import type { JournalEntry, JournalPort } from './journal.js';

export interface PoolGrowerDeps {
  backend: StorageBackend;
  journal: JournalPort;
  clock: Clock;
  logger: Logger;
  backoff: Config['backoff'];
}

export class PoolGrower {
  private failures = 0;
  private backoffUntilMs: number | null = null;

  constructor(private readonly deps: PoolGrowerDeps) {}

  private journal(entry: JournalEntry): void {
    journalOrLog(this.deps.journal, this.deps.logger, entry);
  }

  /** Carries out the pass's pool decision; failures are pushed onto `errors`, never thrown. */
  async act(
    decision: PoolDecision,
    observation: Observation,
    dryRun: boolean,
    errors: string[],
  ): Promise<PoolAction | undefined> {
    const pool = observation.pool;
    if (!pool) return undefined;
    if (decision.kind === 'low' || decision.kind === 'needs-grow') {
      return {
        kind: 'needed-but-disabled',
        fromBytes: pool.dataTotalBytes,
        toBytes: pool.dataTotalBytes,
        error: decision.why,
      };
    }
    if (decision.kind !== 'grow') return undefined;
    const { backend, clock, logger } = this.deps;
    if (!backend.growPool) {
      return {
        kind: 'needed-but-disabled',
        fromBytes: decision.fromBytes,
        toBytes: decision.toBytes,
        error: `the ${backend.driver} backend cannot grow its pool`,
      };
    }
    if (dryRun) return { kind: 'planned', fromBytes: decision.fromBytes, toBytes: decision.toBytes };
    const nowMs = clock.nowMs();
    if (this.backoffUntilMs !== null && nowMs < this.backoffUntilMs) {
      return {
        kind: 'failed',
        fromBytes: decision.fromBytes,
        toBytes: decision.toBytes,
        error: `backing off after ${this.failures} failed pool grow(s)`,
      };
    }
    this.journal({
      type: 'pool-grow-started',
      atMs: nowMs,
      pool: pool.name,
      fromBytes: decision.fromBytes,
      toBytes: decision.toBytes,
      why: decision.why,
    });
    try {
      const result = await backend.growPool(decision.toBytes, false);
      const durationMs = clock.nowMs() - nowMs;
      if (result.toBytes <= decision.fromBytes) {
        throw new Error(`the backend reported success but the pool is still ${formatBytes(result.toBytes)}`);
      }
      this.failures = 0;
      this.backoffUntilMs = null;
      this.journal({
        type: 'pool-grow-succeeded',
        atMs: clock.nowMs(),
        pool: pool.name,
        fromBytes: result.fromBytes,
        toBytes: result.toBytes,
        durationMs,
        steps: result.steps.map(stepText),
      });
      logger.info(
        { pool: pool.name, fromBytes: result.fromBytes, toBytes: result.toBytes, durationMs },
        'pool grow succeeded',
      );
      return { kind: 'grown', fromBytes: result.fromBytes, toBytes: result.toBytes };
    } catch (error) {
      const message = errorMessage(error);
      const details = growFailureDetails(error);
      const durationMs = clock.nowMs() - nowMs;
      this.failures += 1;
      this.backoffUntilMs =
        clock.nowMs() +
        backoffDelayMs(this.failures, {
          initialMs: this.deps.backoff.initial,
          maxMs: this.deps.backoff.max,
        });
      this.journal({
        type: 'pool-grow-failed',
        atMs: clock.nowMs(),
        pool: pool.name,
        fromBytes: decision.fromBytes,
        toBytes: decision.toBytes,
        durationMs,
        error: message,
        ...details,
      });
      logger.error(
        {
          pool: pool.name,
          fromBytes: decision.fromBytes,
          toBytes: decision.toBytes,
          durationMs,
          ...details,
          err: message,
        },
        'pool grow failed',
      );
      errors.push(`pool grow failed: ${message}`);
      return { kind: 'failed', fromBytes: decision.fromBytes, toBytes: decision.toBytes, error: message };
    }
  }
}
