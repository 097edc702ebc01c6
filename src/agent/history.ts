/**
 * What the agent remembers per container between passes: the last successful grow (cooldown), the
 * consecutive failures and backoff, recent usage samples (fill rate), and whether a grow is running.
 * The policy reads an immutable snapshot ({@link HistoryStore.snapshot}); only the reconciler
 * writes. Cooldowns and backoff are rebuilt from the journal at start ({@link HistoryStore.replay}),
 * samples are not (a rate from before a restart says nothing about now).
 */
import { EMPTY_HISTORY } from '../policy/decide.js';
import { backoffDelayMs } from '../util/backoff.js';
import type { ContainerHistory, UsageSample } from '../policy/types.js';
import type { ContainerStateRecord, JournalEntry, JournalRecord } from './journal.js';

/** Hard cap on samples per container, whatever the window (a 1s interval and a 20s window keep ~21). */
export const MAX_SAMPLES_PER_CONTAINER = 512;

interface MutableHistory {
  lastGrowAtMs: number | null;
  lastGrowToBytes: number | null;
  consecutiveFailures: number;
  backoffUntilMs: number | null;
  lastError: string | null;
  samples: UsageSample[];
  inFlight: boolean;
}

function emptyHistory(): MutableHistory {
  return { ...EMPTY_HISTORY, samples: [] };
}

export class HistoryStore {
  private readonly entries = new Map<string, MutableHistory>();

  constructor(private readonly backoff: { initial: number; max: number }) {}

  private entry(containerId: string): MutableHistory {
    let entry = this.entries.get(containerId);
    if (!entry) {
      entry = emptyHistory();
      this.entries.set(containerId, entry);
    }
    return entry;
  }

  get(containerId: string): ContainerHistory | undefined {
    const entry = this.entries.get(containerId);
    return entry ? { ...entry, samples: [...entry.samples] } : undefined;
  }

  /** An immutable copy for the pure policy. */
  snapshot(): ReadonlyMap<string, ContainerHistory> {
    const copy = new Map<string, ContainerHistory>();
    for (const [id, entry] of this.entries) copy.set(id, { ...entry, samples: [...entry.samples] });
    return copy;
  }

  ids(): string[] {
    return [...this.entries.keys()];
  }

  /** Adds a usage sample and drops samples older than `windowMs` before it. */
  recordSample(containerId: string, sample: UsageSample, windowMs: number): void {
    const entry = this.entry(containerId);
    const last = entry.samples[entry.samples.length - 1];
    if (last && last.atMs > sample.atMs) return; // out of order (a slow probe): ignore, never reorder
    if (last && last.atMs === sample.atMs) entry.samples[entry.samples.length - 1] = sample;
    else entry.samples.push(sample);
    const oldestKeptMs = sample.atMs - windowMs;
    while (entry.samples.length > 0 && entry.samples[0]!.atMs < oldestKeptMs) entry.samples.shift();
    while (entry.samples.length > MAX_SAMPLES_PER_CONTAINER) entry.samples.shift();
  }

  setInFlight(containerId: string, inFlight: boolean): void {
    this.entry(containerId).inFlight = inFlight;
  }

  isInFlight(containerId: string): boolean {
    return this.entries.get(containerId)?.inFlight ?? false;
  }

  /** A grow succeeded at `atMs` (its end): the cooldown starts, failures are cleared. */
  recordGrowSucceeded(containerId: string, atMs: number, toBytes: number): void {
    const entry = this.entry(containerId);
    entry.lastGrowAtMs = atMs;
    entry.lastGrowToBytes = toBytes;
    entry.consecutiveFailures = 0;
    entry.backoffUntilMs = null;
    entry.lastError = null;
  }

  /** A grow failed at `atMs`: returns the new failure count and the end of the backoff. */
  recordGrowFailed(
    containerId: string,
    atMs: number,
    error: string,
  ): { consecutiveFailures: number; backoffUntilMs: number } {
    const entry = this.entry(containerId);
    entry.consecutiveFailures += 1;
    entry.backoffUntilMs =
      atMs +
      backoffDelayMs(entry.consecutiveFailures, {
        initialMs: this.backoff.initial,
        maxMs: this.backoff.max,
      });
    entry.lastError = error;
    return { consecutiveFailures: entry.consecutiveFailures, backoffUntilMs: entry.backoffUntilMs };
  }

  forget(containerId: string): void {
    this.entries.delete(containerId);
  }

  /** The remembered state of every container with something worth keeping, as journal entries. */
  stateEntries(atMs: number): JournalEntry[] {
    const entries: JournalEntry[] = [];
    for (const [containerId, entry] of this.entries) {
      if (entry.lastGrowAtMs === null && entry.consecutiveFailures === 0) continue;
      const state: Omit<ContainerStateRecord, 'v'> = {
        type: 'container-state',
        atMs,
        containerId,
        lastGrowAtMs: entry.lastGrowAtMs,
        lastGrowToBytes: entry.lastGrowToBytes,
        consecutiveFailures: entry.consecutiveFailures,
        backoffUntilMs: entry.backoffUntilMs,
        lastError: entry.lastError,
      };
      entries.push(state);
    }
    return entries;
  }

  /**
   * Rebuilds cooldowns and backoff from journal records (oldest first). A grow that started but
   * never finished (the agent died mid-grow) counts as a failure: if the grow itself killed the agent,
   * the backoff keeps a restart loop from repeating it every second. Returns the ids of such grows.
   */
  replay(records: readonly JournalRecord[]): { interruptedGrows: string[] } {
    const started = new Map<string, number>();
    for (const record of records) {
      switch (record.type) {
        case 'grow-started':
          started.set(record.containerId, record.atMs);
          break;
        case 'grow-succeeded':
          started.delete(record.containerId);
          this.recordGrowSucceeded(record.containerId, record.atMs, record.toBytes);
          break;
        case 'grow-failed': {
          started.delete(record.containerId);
          const entry = this.entry(record.containerId);
          entry.consecutiveFailures = record.consecutiveFailures;
          entry.backoffUntilMs = record.backoffUntilMs;
          entry.lastError = record.error;
          break;
        }
        case 'container-state': {
          const entry = this.entry(record.containerId);
          entry.lastGrowAtMs = record.lastGrowAtMs;
          entry.lastGrowToBytes = record.lastGrowToBytes;
          entry.consecutiveFailures = record.consecutiveFailures;
          entry.backoffUntilMs = record.backoffUntilMs;
          entry.lastError = record.lastError;
          break;
        }
        case 'container-forgotten':
          started.delete(record.containerId);
          this.forget(record.containerId);
          break;
        default:
          break;
      }
    }
    for (const [containerId, atMs] of started) {
      this.recordGrowFailed(containerId, atMs, 'interrupted: the agent stopped during this grow');
    }
    return { interruptedGrows: [...started.keys()] };
  }
}
