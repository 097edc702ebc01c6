/**
 * The journal: a durable JSON-lines audit log of every storage action, with before and after sizes.
 * Each record is appended with O_APPEND and fsync'd before `append` returns (src/util/jsonl-file.ts),
 * so an acknowledged action survives a crash; the one exception is 'grow-started', written without
 * waiting for the disk so it never delays the grow (it survives an agent kill, not a power cut,
 * and its only use is to back off after an interrupted grow). At start the agent replays it to rebuild cooldowns and
 * failure backoff (src/agent/history.ts).
 *
 * Rotation: before an append that would find the file at or above `maxSizeBytes`, the file becomes
 * `<path>.1` (`.1` becomes `.2`, ... up to `keep`; the oldest is deleted). Replay reads the rotated
 * files oldest first, then the live file, and skips a torn last line.
 *
 * Write errors never stop the agent: they are counted (`writeErrors`, `onWriteError`) so the
 * metrics can export them, and logged by the caller.
 */
import { fsyncDirectory } from '../util/atomic-file.js';
import { closeSync, openSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { appendJsonLine, appendJsonLineDurable, readJsonLines } from '../util/jsonl-file.js';
import type { GrowTrigger } from '../policy/types.js';
import type { GrowFailureDetails } from '../storage/grow-error.js';

export const JOURNAL_VERSION = 1;

interface RecordBase {
  v: typeof JOURNAL_VERSION;
  /** ms since the epoch (injected clock). */
  atMs: number;
}

export interface GrowStartedRecord extends RecordBase {
  type: 'grow-started';
  containerId: string;
  name: string;
  fromBytes: number;
  toBytes: number;
  trigger: GrowTrigger;
  why: string;
}

export interface GrowSucceededRecord extends RecordBase {
  type: 'grow-succeeded';
  containerId: string;
  name: string;
  trigger: GrowTrigger;
  /** Size before, as observed when deciding. */
  fromBytes: number;
  /** Size read back after the grow. */
  toBytes: number;
  requestedBytes: number;
  durationMs: number;
  noop: boolean;
  steps: string[];
}

/** `step` and `deviceState`: where the grow broke (src/storage/grow-error.ts); absent in older records. */
export interface GrowFailedRecord extends RecordBase, Partial<GrowFailureDetails> {
  type: 'grow-failed';
  containerId: string;
  name: string;
  trigger: GrowTrigger;
  fromBytes: number;
  toBytes: number;
  durationMs: number;
  error: string;
  consecutiveFailures: number;
  backoffUntilMs: number | null;
}

/**
 * A grow whose process died after 'grow-started' (kill -9, power cut), closed by the next owner
 * at its start (src/agent/history.ts closeInterruptedGrows) so it is not read as running forever.
 * The first interruption in a row backs nothing off (the container may be full right now); a
 * second in a row is a failure with backoff, so a grow that kills the agent is not retried every
 * restart.
 */
export interface GrowRecoveredRecord extends RecordBase {
  type: 'grow-recovered';
  containerId: string;
  name: string;
  /** When the interrupted grow started. */
  startedAtMs: number;
  fromBytes: number;
  toBytes: number;
  /** Grows of this container interrupted in a row, this one included (any grow end resets it). */
  consecutiveInterruptions: number;
  consecutiveFailures: number;
  backoffUntilMs: number | null;
}

/**
 * A grow that failed because Docker removed the container while it ran (`docker rm -f` during a
 * grow): a re-inspect after the failure found no container. Not a failure: no backoff, no failure
 * metric, and the container's remembered state is forgotten like after 'container-forgotten'.
 */
export interface GrowContainerGoneRecord extends RecordBase {
  type: 'grow-container-gone';
  containerId: string;
  name: string;
  trigger: GrowTrigger;
  fromBytes: number;
  toBytes: number;
  durationMs: number;
  /** The backend's error, kept for the audit trail. */
  error: string;
}

export interface PoolGrowStartedRecord extends RecordBase {
  type: 'pool-grow-started';
  pool: string;
  fromBytes: number;
  toBytes: number;
  why: string;
}

export interface PoolGrowSucceededRecord extends RecordBase {
  type: 'pool-grow-succeeded';
  pool: string;
  fromBytes: number;
  toBytes: number;
  durationMs: number;
  steps: string[];
}

export interface PoolGrowFailedRecord extends RecordBase, Partial<GrowFailureDetails> {
  type: 'pool-grow-failed';
  pool: string;
  fromBytes: number;
  toBytes: number;
  durationMs: number;
  error: string;
}

/**
 * A container's remembered state, written at the top of a fresh file after rotation so that
 * rotating old records away never loses a cooldown or a backoff.
 */
export interface ContainerStateRecord extends RecordBase {
  type: 'container-state';
  containerId: string;
  lastGrowAtMs: number | null;
  lastGrowToBytes: number | null;
  consecutiveFailures: number;
  backoffUntilMs: number | null;
  lastError: string | null;
}

/** Docker destroyed the container: its cooldown and backoff are forgotten. */
export interface ContainerForgottenRecord extends RecordBase {
  type: 'container-forgotten';
  containerId: string;
}

export type JournalRecord =
  | GrowStartedRecord
  | GrowSucceededRecord
  | GrowFailedRecord
  | GrowRecoveredRecord
  | GrowContainerGoneRecord
  | PoolGrowStartedRecord
  | PoolGrowSucceededRecord
  | PoolGrowFailedRecord
  | ContainerStateRecord
  | ContainerForgottenRecord;

/** Records as passed to `append` (the journal stamps the version). */
export type JournalEntry = JournalRecord extends infer R
  ? R extends JournalRecord
    ? Omit<R, 'v'>
    : never
  : never;

export interface JournalReplay {
  records: JournalRecord[];
  /** Lines that were not JSON (a torn last line after a crash) or not a known record. */
  skippedLines: number;
  files: string[];
}

/** What the reconciler needs from a journal (faked in tests). */
export interface JournalPort {
  /**
   * Appends one record, fsync'd unless `durable: false` (a record whose loss in a power cut costs
   * nothing but a log line, written where waiting for the disk would delay a grow).
   */
  append(entry: JournalEntry, options?: { durable?: boolean }): boolean;
  replay(): JournalReplay;
  /**
   * Records appended to the live file since the previous call, by this process or another one
   * (`grow` and `once` run as their own processes and journal there). The first call only marks
   * where to start. Optional: a port without it is never followed.
   */
  readAppended?(): JournalRecord[];
  readonly writeErrors: number;
  /** Records to write first into a fresh file after rotation (the reconciler's remembered state). */
  setStateProvider?(provider: () => JournalEntry[]): void;
}

export interface JournalOptions {
  path: string;
  maxSizeBytes: number;
  /** Rotated files kept besides the live one. */
  keep: number;
  /** Called after each failed write (metrics: journal write errors). */
  onWriteError?: (error: Error) => void;
}

const RECORD_TYPES: ReadonlySet<string> = new Set([
  'grow-started',
  'grow-succeeded',
  'grow-failed',
  'grow-recovered',
  'pool-grow-started',
  'pool-grow-succeeded',
  'pool-grow-failed',
  'container-state',
  'container-forgotten',
  'grow-container-gone',
]);

function isJournalRecord(value: unknown): value is JournalRecord {
  if (value === null || typeof value !== 'object') return false;
  const record = value as Record<string, unknown>;
  return (
    typeof record.type === 'string' &&
    RECORD_TYPES.has(record.type) &&
    typeof record.atMs === 'number' &&
    Number.isFinite(record.atMs) &&
    (record.containerId === undefined || typeof record.containerId === 'string')
  );
}

export class Journal implements JournalPort {
  private writeErrorCount = 0;
  /** Where readAppended() stopped: the live file's inode and the offset after its last whole line. */
  private followed: { inode: number; offsetBytes: number } | null = null;
  private stateProvider: (() => JournalEntry[]) | null = null;

  constructor(private readonly options: JournalOptions) {}

  setStateProvider(provider: () => JournalEntry[]): void {
    this.stateProvider = provider;
  }

  /** Failed appends since start. */
  get writeErrors(): number {
    return this.writeErrorCount;
  }

  get path(): string {
    return this.options.path;
  }

  /** Appends one record durably. Returns false (and counts it) when the write failed; never throws. */
  append(entry: JournalEntry, options: { durable?: boolean } = {}): boolean {
    try {
      if (this.rotateIfNeeded()) {
        for (const state of this.stateProvider?.() ?? []) {
          appendJsonLineDurable(this.options.path, { v: JOURNAL_VERSION, ...state });
        }
      }
      appendJsonLine(
        this.options.path,
        { v: JOURNAL_VERSION, ...entry },
        { fsync: options.durable !== false },
      );
      return true;
    } catch (error) {
      this.writeErrorCount += 1;
      this.options.onWriteError?.(error instanceof Error ? error : new Error(String(error)));
      return false;
    }
  }

  readAppended(): JournalRecord[] {
    let inode: number;
    let sizeBytes: number;
    try {
      ({ ino: inode, size: sizeBytes } = statSync(this.options.path));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      inode = 0;
      sizeBytes = 0;
    }
    if (this.followed === null) {
      this.followed = { inode, offsetBytes: sizeBytes };
      return [];
    }
    // a rotation (new inode) or a truncation starts the live file over
    let offsetBytes =
      this.followed.inode === inode && sizeBytes >= this.followed.offsetBytes ? this.followed.offsetBytes : 0;
    if (sizeBytes <= offsetBytes) {
      this.followed = { inode, offsetBytes };
      return [];
    }
    const appended = Buffer.alloc(sizeBytes - offsetBytes);
    const fd = openSync(this.options.path, 'r');
    try {
      const length = readSync(fd, appended, 0, appended.length, offsetBytes);
      // only whole lines: a line being written is read at the next call
      const lastNewline = appended.subarray(0, length).lastIndexOf(0x0a);
      if (lastNewline < 0) {
        this.followed = { inode, offsetBytes };
        return [];
      }
      offsetBytes += lastNewline + 1;
      this.followed = { inode, offsetBytes };
      const records: JournalRecord[] = [];
      for (const line of appended.toString('utf8', 0, lastNewline).split('\n')) {
        try {
          const record: unknown = JSON.parse(line);
          if (isJournalRecord(record)) records.push(record);
        } catch {
          // a torn line from a crashed writer: replay() skips it too
        }
      }
      return records;
    } finally {
      closeSync(fd);
    }
  }

  /** Rotated file `index` (1 = newest rotated). */
  rotatedPath(index: number): string {
    return `${this.options.path}.${index}`;
  }

  /** Every record, oldest first, across the rotated files and the live one. */
  replay(): JournalReplay {
    const files: string[] = [];
    for (let index = this.options.keep; index >= 1; index -= 1) files.push(this.rotatedPath(index));
    files.push(this.options.path);
    const records: JournalRecord[] = [];
    let skippedLines = 0;
    const read: string[] = [];
    for (const file of files) {
      const result = readJsonLines(file);
      if (result.records.length === 0 && result.badLines === 0) continue;
      read.push(file);
      skippedLines += result.badLines;
      for (const record of result.records) {
        if (isJournalRecord(record)) records.push(record);
        else skippedLines += 1;
      }
    }
    return { records, skippedLines, files: read };
  }

  /** Rotates when the live file reached maxSizeBytes; true when it did. */
  private rotateIfNeeded(): boolean {
    let sizeBytes: number;
    try {
      sizeBytes = statSync(this.options.path).size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
    if (sizeBytes < this.options.maxSizeBytes) return false;
    rmSync(this.rotatedPath(this.options.keep), { force: true });
    for (let index = this.options.keep - 1; index >= 1; index -= 1) {
      try {
        renameSync(this.rotatedPath(index), this.rotatedPath(index + 1));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
    renameSync(this.options.path, this.rotatedPath(1));
    fsyncDirectory(path.dirname(this.options.path));
    return true;
  }
}
