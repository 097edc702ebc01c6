/**
 * Write-ahead journal of devicemapper grows: the intent (device, the exact live table before the
 * grow, the target length) is fsync'd before the first change, and each completed step after it.
 * recover() replays unfinished intents at agent start. Also the record of grown devices, which
 * persistence (re-creating a stopped container's device at its grown size) reads.
 */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { appendJsonLineDurable, readJsonLines } from '../../util/jsonl-file.js';
import { writeFileAtomic } from '../../util/atomic-file.js';

/** Steps in order. A step is written after it completed. */
export type GrowStepName =
  | 'intent'
  | 'loaded'
  | 'resumed'
  | 'fs-grown'
  | 'verified'
  | 'metadata-patched'
  | 'done'
  | 'rolled-back'
  | 'failed'
  | 'abandoned';

export const TERMINAL_STEPS: ReadonlySet<GrowStepName> = new Set(['done', 'rolled-back', 'abandoned']);

export interface DeviceGrowIntent {
  kind: 'device';
  intentId: string;
  containerId: string;
  deviceName: string;
  deviceId: number;
  hash: string;
  /** The exact live table line before the grow (the rollback target). */
  savedTable: string;
  /** The table line the grow loads. */
  newTable: string;
  fromSectors: number;
  toSectors: number;
  fsType: string;
  mountPath: string;
  /** statfs size before the grow: verify (also after a crash) checks the filesystem grew past it. */
  fsBeforeBytes: number;
  poolDevice: string;
}

export interface PoolGrowIntent {
  kind: 'pool';
  intentId: string;
  poolName: string;
  savedTable: string;
  newTable: string;
  fromSectors: number;
  toSectors: number;
}

export type GrowIntent = DeviceGrowIntent | PoolGrowIntent;

export type JournalRecord =
  | { step: 'intent'; atMs: number; intent: GrowIntent }
  | { step: Exclude<GrowStepName, 'intent'>; atMs: number; intentId: string; detail?: string };

export interface PendingIntent {
  intent: GrowIntent;
  /** Steps recorded after the intent, in order. */
  steps: GrowStepName[];
}

export class GrowJournal {
  constructor(
    readonly file: string,
    private readonly nowMs: () => number = Date.now,
  ) {}

  begin(intent: GrowIntent): void {
    appendJsonLineDurable(this.file, { step: 'intent', atMs: this.nowMs(), intent } satisfies JournalRecord);
  }

  record(intentId: string, step: Exclude<GrowStepName, 'intent'>, detail?: string): void {
    const record: JournalRecord = { step, atMs: this.nowMs(), intentId };
    if (detail !== undefined) record.detail = detail;
    appendJsonLineDurable(this.file, record);
  }

  /** Intents without a terminal step (an agent killed mid-grow, or a failure to finish forward). */
  pending(): PendingIntent[] {
    const byId = new Map<string, PendingIntent>();
    for (const record of readJsonLines<JournalRecord>(this.file).records) {
      if (record.step === 'intent') {
        byId.set(record.intent.intentId, { intent: record.intent, steps: [] });
      } else {
        byId.get(record.intentId)?.steps.push(record.step);
      }
    }
    return [...byId.values()].filter((entry) => !entry.steps.some((step) => TERMINAL_STEPS.has(step)));
  }

  /** Rewrites the journal with only unfinished intents (atomic; called after recover). */
  compact(): void {
    const pendingIds = new Set(this.pending().map((entry) => entry.intent.intentId));
    const kept = readJsonLines<JournalRecord>(this.file).records.filter((record) =>
      pendingIds.has(record.step === 'intent' ? record.intent.intentId : record.intentId),
    );
    writeFileAtomic(this.file, kept.map((record) => `${JSON.stringify(record)}\n`).join(''));
  }
}

/** A container device this agent grew: what persistence re-creates when the container stops. */
export interface GrownDevice {
  containerId: string;
  deviceName: string;
  deviceId: number;
  hash: string;
  sizeSectors: number;
  poolName: string;
}

/** `<stateDir>/devicemapper-grown.json`, replaced atomically. */
export class GrownDeviceStore {
  constructor(readonly file: string) {}

  static inStateDir(stateDir: string): GrownDeviceStore {
    return new GrownDeviceStore(path.join(stateDir, 'devicemapper-grown.json'));
  }

  all(): GrownDevice[] {
    try {
      const parsed = JSON.parse(readFileSync(this.file, 'utf8')) as { devices?: GrownDevice[] };
      return Array.isArray(parsed.devices) ? parsed.devices : [];
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  get(hash: string): GrownDevice | undefined {
    return this.all().find((device) => device.hash === hash);
  }

  put(device: GrownDevice): void {
    const others = this.all().filter((existing) => existing.hash !== device.hash);
    this.write([...others, device]);
  }

  remove(hash: string): void {
    this.write(this.all().filter((existing) => existing.hash !== hash));
  }

  private write(devices: GrownDevice[]): void {
    writeFileAtomic(this.file, `${JSON.stringify({ devices }, null, 2)}\n`);
  }
}
