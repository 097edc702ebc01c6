/**
 * Write-ahead journal of data-filesystem grows (`<stateDir>/data-filesystem-journal.jsonl`): the
 * intent (LV, target size, filesystem, statfs size before) is fsync'd before `lvextend`, each
 * completed step after it. recover() (./recover.ts) finishes or reports unfinished intents at agent
 * start. The last finished grow gives the cooldown across restarts.
 */
import path from 'node:path';
import { appendJsonLineDurable, readJsonLines } from '../../util/jsonl-file.js';
import { writeFileAtomic } from '../../util/atomic-file.js';
import type { GrowableFilesystem } from '../../policy/data-filesystem.js';

/** Steps in order; each written after it completed. */
export type DataFsStep = 'lv-extended' | 'pv-resized' | 'fs-grown' | 'done' | 'rolled-back' | 'failed';

/** A step after which nothing is left to do. `failed` is not one: recover() retries it. */
export const TERMINAL_DATA_FS_STEPS: ReadonlySet<DataFsStep> = new Set(['done', 'rolled-back']);

export interface DataFsGrowIntent {
  intentId: string;
  vg: string;
  lv: string;
  dmName: string;
  /** /dev/mapper/<dmName>: what resize2fs is given. */
  devicePath: string;
  fsType: GrowableFilesystem;
  mountPoint: string;
  fromLvBytes: number;
  toLvBytes: number;
  /** statfs total before: the grow is verified when the filesystem is larger than this. */
  fsBeforeBytes: number;
  why: string;
}

export type DataFsJournalRecord<I = DataFsGrowIntent> =
  | { step: 'intent'; atMs: number; intent: I }
  | { step: DataFsStep; atMs: number; intentId: string; detail?: string };

export interface DataFsPendingIntent<I = DataFsGrowIntent> {
  intent: I;
  steps: DataFsStep[];
  /** Detail of the last recorded step (the error of a failed one). */
  lastDetail: string | null;
}

export interface DataFsLastGrow<I = DataFsGrowIntent> {
  atMs: number;
  intent: I;
}

/** The journal of LV grows; the same class keeps the grown-underneath journal (./underneath.ts). */
export class DataFsJournal<I extends { intentId: string } = DataFsGrowIntent> {
  constructor(
    readonly file: string,
    private readonly nowMs: () => number = Date.now,
  ) {}

  static inStateDir(stateDir: string, nowMs?: () => number): DataFsJournal {
    return new DataFsJournal(path.join(stateDir, 'data-filesystem-journal.jsonl'), nowMs);
  }

  begin(intent: I): void {
    appendJsonLineDurable(this.file, {
      step: 'intent',
      atMs: this.nowMs(),
      intent,
    } satisfies DataFsJournalRecord<I>);
  }

  record(intentId: string, step: DataFsStep, detail?: string): void {
    const record: DataFsJournalRecord<I> = { step, atMs: this.nowMs(), intentId };
    if (detail !== undefined) record.detail = detail;
    appendJsonLineDurable(this.file, record);
  }

  private byIntent(): Map<string, DataFsPendingIntent<I> & { doneAtMs: number | null }> {
    const byId = new Map<string, DataFsPendingIntent<I> & { doneAtMs: number | null }>();
    for (const record of readJsonLines<DataFsJournalRecord<I>>(this.file).records) {
      if (record.step === 'intent') {
        byId.set(record.intent.intentId, {
          intent: record.intent,
          steps: [],
          lastDetail: null,
          doneAtMs: null,
        });
        continue;
      }
      const entry = byId.get(record.intentId);
      if (!entry) continue;
      entry.steps.push(record.step);
      entry.lastDetail = record.detail ?? null;
      if (record.step === 'done') entry.doneAtMs = record.atMs;
    }
    return byId;
  }

  /** Intents without a terminal step: an agent killed mid-grow, or a step that failed. */
  pending(): DataFsPendingIntent<I>[] {
    return [...this.byIntent().values()]
      .filter((entry) => !entry.steps.some((step) => TERMINAL_DATA_FS_STEPS.has(step)))
      .map(({ intent, steps, lastDetail }) => ({ intent, steps, lastDetail }));
  }

  /** The most recent grow that finished, for the cooldown. */
  lastGrow(): DataFsLastGrow<I> | null {
    let last: DataFsLastGrow<I> | null = null;
    for (const entry of this.byIntent().values()) {
      if (entry.doneAtMs !== null && (!last || entry.doneAtMs >= last.atMs))
        last = { atMs: entry.doneAtMs, intent: entry.intent };
    }
    return last;
  }

  /** Keeps the unfinished intents and the last finished grow (atomic; after recover). */
  compact(): void {
    const keep = new Set(this.pending().map((entry) => entry.intent.intentId));
    const last = this.lastGrow();
    if (last) keep.add(last.intent.intentId);
    const kept = readJsonLines<DataFsJournalRecord<I>>(this.file).records.filter((record) =>
      keep.has(record.step === 'intent' ? record.intent.intentId : record.intentId),
    );
    writeFileAtomic(this.file, kept.map((record) => `${JSON.stringify(record)}\n`).join(''));
  }
}
