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
import type {
  ContainerStateRecord,
  GrowRecoveredRecord,
  GrowStartedRecord,
  JournalEntry,
  JournalPort,
  JournalRecord,
} from './journal.js';

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
  /** Grows interrupted in a row per container, from 'grow-recovered' records. */
  private readonly interruptions = new Map<string, number>();

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
    this.interruptions.delete(containerId);
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
   * Rebuilds cooldowns and backoff from journal records (oldest first). A grow that started and
   * has no end yet is either running in the owner right now or was interrupted; the owner closes
   * interrupted ones at its start ({@link closeInterruptedGrows}), so neither counts here.
   * `interruptedGrows` lists the ids with an open 'grow-started' (for callers that log it).
   */
  replay(records: readonly JournalRecord[]): { interruptedGrows: string[] } {
    return { interruptedGrows: this.replayOpen(records).map((record) => record.containerId) };
  }

  /** Replays `records`; returns the 'grow-started' records with no end after them. */
  private replayOpen(records: readonly JournalRecord[]): GrowStartedRecord[] {
    const started = new Map<string, GrowStartedRecord>();
    for (const record of records) {
      switch (record.type) {
        case 'grow-started':
          started.set(record.containerId, record);
          break;
        case 'grow-succeeded':
          started.delete(record.containerId);
          this.interruptions.delete(record.containerId);
          this.recordGrowSucceeded(record.containerId, record.atMs, record.toBytes);
          break;
        case 'grow-failed': {
          started.delete(record.containerId);
          this.interruptions.delete(record.containerId);
          const entry = this.entry(record.containerId);
          entry.consecutiveFailures = record.consecutiveFailures;
          entry.backoffUntilMs = record.backoffUntilMs;
          entry.lastError = record.error;
          break;
        }
        case 'grow-recovered': {
          started.delete(record.containerId);
          this.interruptions.set(record.containerId, record.consecutiveInterruptions);
          const entry = this.entry(record.containerId);
          entry.consecutiveFailures = record.consecutiveFailures;
          entry.backoffUntilMs = record.backoffUntilMs;
          if (record.backoffUntilMs !== null) entry.lastError = INTERRUPTED_AGAIN;
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
        case 'grow-container-gone':
        case 'container-forgotten':
          started.delete(record.containerId);
          this.interruptions.delete(record.containerId);
          this.forget(record.containerId);
          break;
        default:
          break;
      }
    }
    return [...started.values()];
  }

  /**
   * The 'grow-recovered' records that close the open grows in `records` at `nowMs`: the first
   * interruption in a row keeps the state as it was; a second in a row counts as a failure.
   */
  recoveryEntries(records: readonly JournalRecord[], nowMs: number): Omit<GrowRecoveredRecord, 'v'>[] {
    const entries: Omit<GrowRecoveredRecord, 'v'>[] = [];
    for (const open of this.replayOpen(records)) {
      const consecutiveInterruptions = (this.interruptions.get(open.containerId) ?? 0) + 1;
      const entry = this.entry(open.containerId);
      let { consecutiveFailures, backoffUntilMs } = entry;
      if (consecutiveInterruptions >= 2) {
        ({ consecutiveFailures, backoffUntilMs } = this.recordGrowFailed(
          open.containerId,
          nowMs,
          INTERRUPTED_AGAIN,
        ));
      }
      this.interruptions.set(open.containerId, consecutiveInterruptions);
      entries.push({
        type: 'grow-recovered',
        atMs: nowMs,
        containerId: open.containerId,
        name: open.name,
        startedAtMs: open.atMs,
        fromBytes: open.fromBytes,
        toBytes: open.toBytes,
        consecutiveInterruptions,
        consecutiveFailures,
        backoffUntilMs,
      });
    }
    return entries;
  }
}

const INTERRUPTED_AGAIN = 'interrupted again: the agent stopped during this grow twice in a row';

/**
 * Closes every grow the journal shows started and never ended: the caller owns storage changes
 * (it holds the agent lock, src/control/owner.ts), so no such grow can still be running. Run it
 * before the reconciler first reads the journal. Returns the records it appended.
 */
export function closeInterruptedGrows(
  journal: Pick<JournalPort, 'append' | 'replay'>,
  backoff: { initial: number; max: number },
  nowMs: number,
): Omit<GrowRecoveredRecord, 'v'>[] {
  const entries = new HistoryStore(backoff).recoveryEntries(journal.replay().records, nowMs);
  for (const entry of entries) journal.append(entry);
  return entries;
}
