/**
 * The data-filesystem loop: its own small scheduled component beside the reconciler (which serves
 * containers). At start it recovers unfinished grows (./recover.ts); then every `interval` it looks
 * (./look.ts), asks the pure policy (src/policy/data-filesystem.ts) and grows (./grow.ts) unless
 * dry-run. Each look ends in a {@link DataFsStatus} handed to `onStatus` (metrics, status).
 * A look never throws; an error is reported in the status.
 */
import type { Config } from '../../config/schema.js';
import type { CommandRunner } from '../../exec/runner.js';
import type { Logger } from '../../log/logger.js';
import {
  decideDataFilesystem,
  isGrowableFilesystem,
  type DataFilesystemDecision,
  type GrowableFilesystem,
  type DataFilesystemSettings,
} from '../../policy/data-filesystem.js';
import { realTimers, unrefTimer, type Clock, type Timers } from '../../util/clock.js';
import { errorMessage } from '../../util/errors.js';
import { statfsUsage, type FilesystemUsage } from '../filesystem.js';
import type { BlockStackPaths } from './block-stack.js';
import { growDataFilesystem, plannedCommands, DataFsGrowError, type DataFsGrowDeps } from './grow.js';
import { DataFsJournal } from './journal.js';
import { lookAtDataFilesystem, type DataFsLook } from './look.js';
import { recoverDataFilesystemGrows, type RecoveryReport } from './recover.js';
import {
  attemptKey,
  decideUnderneath,
  type UnderneathDecision,
  type UnderneathObservation,
} from '../../policy/grown-underneath.js';
import {
  growFilesystemToDevice,
  plannedUnderneathCommands,
  pvresizeUnderneath,
  recoverUnderneathGrows,
  underneathJournalIn,
  UnderneathGrowError,
  UnderneathProber,
  type UnderneathGrowDeps,
  type UnderneathJournal,
  type UnderneathRecoveryReport,
} from './underneath.js';

/** How old the LVM report (VG free) may get while the filesystem is below its thresholds. */
export const LVM_REFRESH_MS = 60_000;
/** While a recovery is pending, retry it at most this often. */
const RECOVERY_RETRY_MS = 60_000;

export type DataFsGrowOutcome =
  | { kind: 'grown'; atMs: number; fromLvBytes: number; toLvBytes: number; fsAfterBytes: number }
  | { kind: 'planned'; atMs: number; fromLvBytes: number; toLvBytes: number; commands: string[] }
  | { kind: 'failed'; atMs: number; error: string; state: string };

/** A block device grown underneath the data filesystem (./underneath.ts): what this look saw and did. */
export interface DataFsUnderneathStatus {
  observation: UnderneathObservation;
  decision: UnderneathDecision;
  outcome:
    | { kind: 'grown'; action: 'grow-filesystem' | 'pvresize'; fromBytes: number; toBytes: number }
    | { kind: 'planned'; action: 'grow-filesystem' | 'pvresize'; commands: string[] }
    | { kind: 'failed'; action: 'grow-filesystem' | 'pvresize'; error: string }
    | null;
  /** The probe (ext4 superblock, xfs_growfs -n, btrfs show, pvs) failed this look. */
  probeError: string | null;
  pendingRecoveries: UnderneathRecoveryReport[];
  /** Counted since the agent started, by action and result. */
  growsTotal: Record<string, number>;
}

export interface DataFsStatus {
  atMs: number;
  dataRoot: string;
  dryRun: boolean;
  look: DataFsLook | null;
  decision: DataFilesystemDecision | null;
  /** What this look did, when it acted. */
  outcome: DataFsGrowOutcome | null;
  /** Unfinished grows still pending after the last recovery attempt. */
  pendingRecoveries: RecoveryReport[];
  /** The look itself failed (mountinfo, statfs). */
  error: string | null;
  growsTotal: number;
  growFailuresTotal: number;
  /** Null when the look failed. */
  underneath?: DataFsUnderneathStatus | null;
}

export function dataFilesystemSettings(config: Config): DataFilesystemSettings {
  const section = config.dataFilesystem;
  return {
    threshold: section.threshold,
    inodeThreshold: section.inodeThreshold,
    step: section.step,
    minStep: section.minStep,
    maxSize: section.maxSize,
    vgReserve: section.vgReserve,
    cooldown: section.cooldown,
  };
}

export interface DataFsWatcherDeps {
  dataRoot: string;
  settings: DataFilesystemSettings;
  intervalMs: number;
  dryRun: boolean;
  runner: CommandRunner;
  stateDir: string;
  commandTimeoutMs: number;
  logger: Logger;
  clock: Clock;
  timers?: Timers;
  blockStackPaths?: BlockStackPaths;
  statfs?: (dir: string) => Promise<FilesystemUsage>;
  onStatus?: (status: DataFsStatus) => void;
}

export class DataFilesystemWatcher {
  private readonly journal: DataFsJournal;
  private readonly growDeps: DataFsGrowDeps;
  private timer: unknown = null;
  private running: Promise<DataFsStatus> | null = null;
  private stopped = false;
  private previousLook: DataFsLook | null = null;
  private pending: RecoveryReport[] = [];
  private lastRecoveryAtMs: number | null = null;
  private growsTotal = 0;
  private growFailuresTotal = 0;
  private status: DataFsStatus | null = null;
  private readonly underneathJournal: UnderneathJournal;
  private readonly underneathDeps: UnderneathGrowDeps;
  private readonly prober: UnderneathProber;
  private readonly underneathFailedAt = new Set<string>();
  private underneathPending: UnderneathRecoveryReport[] = [];
  private readonly underneathGrows: Record<string, number> = {};

  constructor(private readonly deps: DataFsWatcherDeps) {
    this.journal = DataFsJournal.inStateDir(deps.stateDir, () => deps.clock.nowMs());
    const statfs = deps.statfs ?? statfsUsage;
    this.growDeps = {
      runner: deps.runner,
      journal: this.journal,
      stateDir: deps.stateDir,
      statfsTotalBytes: async (mountPoint) => (await statfs(mountPoint)).totalBytes,
      logger: deps.logger,
      commandTimeoutMs: deps.commandTimeoutMs,
      nowMs: () => deps.clock.nowMs(),
    };
    this.underneathJournal = underneathJournalIn(deps.stateDir, () => deps.clock.nowMs());
    this.underneathDeps = {
      ...this.growDeps,
      journal: this.underneathJournal,
      blockStackPaths: deps.blockStackPaths,
    };
    this.prober = new UnderneathProber({
      runner: deps.runner,
      commandTimeoutMs: deps.commandTimeoutMs,
      blockStackPaths: deps.blockStackPaths,
    });
  }

  get lastStatus(): DataFsStatus | null {
    return this.status;
  }

  /** Recovers, looks once, then every interval until stop(). */
  async start(): Promise<DataFsStatus> {
    const first = await this.runOnce();
    this.schedule();
    return first;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) (this.deps.timers ?? realTimers).clearTimeout(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }

  private schedule(): void {
    if (this.stopped) return;
    const timers = this.deps.timers ?? realTimers;
    this.timer = timers.setTimeout(() => {
      this.timer = null;
      void this.runOnce().finally(() => this.schedule());
    }, this.deps.intervalMs);
    unrefTimer(this.timer);
  }

  /** One look (recovering first when a recovery is due); never overlaps itself. */
  runOnce(): Promise<DataFsStatus> {
    this.running ??= this.look().finally(() => (this.running = null));
    return this.running;
  }

  private async recoverIfDue(nowMs: number): Promise<void> {
    if (this.deps.dryRun) {
      this.underneathPending = this.underneathJournal.pending().map((entry) => ({
        intentId: entry.intent.intentId,
        subject: entry.intent.kind === 'device-fs' ? entry.intent.devicePath : `PV ${entry.intent.pvName}`,
        outcome: 'pending',
        detail: 'dry run: not recovered',
      }));
      this.pending = this.journal.pending().map((entry) => ({
        intentId: entry.intent.intentId,
        vg: entry.intent.vg,
        lv: entry.intent.lv,
        outcome: 'pending',
        detail: 'dry run: not recovered',
      }));
      return;
    }
    const due =
      this.lastRecoveryAtMs === null ||
      ((this.pending.length > 0 || this.underneathPending.length > 0) &&
        nowMs - this.lastRecoveryAtMs >= RECOVERY_RETRY_MS);
    if (!due) return;
    this.lastRecoveryAtMs = nowMs;
    this.underneathPending = (await recoverUnderneathGrows(this.underneathDeps)).filter(
      (report) => report.outcome === 'pending',
    );
    const reports = await recoverDataFilesystemGrows({
      ...this.growDeps,
      blockStackPaths: this.deps.blockStackPaths,
    });
    this.pending = reports.filter((report) => report.outcome === 'pending');
  }

  private async look(): Promise<DataFsStatus> {
    const { deps } = this;
    const nowMs = deps.clock.nowMs();
    let look: DataFsLook | null = null;
    let decision: DataFilesystemDecision | null = null;
    let outcome: DataFsGrowOutcome | null = null;
    let error: string | null = null;
    let underneath: DataFsUnderneathStatus | null = null;
    try {
      await this.recoverIfDue(nowMs);
      look = await lookAtDataFilesystem(
        {
          runner: deps.runner,
          commandTimeoutMs: deps.commandTimeoutMs,
          blockStackPaths: deps.blockStackPaths,
          statfs: deps.statfs,
          lvmRefreshMs: LVM_REFRESH_MS,
        },
        deps.dataRoot,
        deps.settings,
        this.previousLook,
        nowMs,
      );
      this.previousLook = look;
      decision = decideDataFilesystem(
        deps.settings,
        look.observation,
        {
          lastGrowAtMs: this.journal.lastGrow()?.atMs ?? null,
          pendingRecovery: this.pending.length > 0,
        },
        nowMs,
      );
      underneath = await this.lookUnderneath(look);
      // a device grown underneath is handled first; the LV grow waits for the next look's fresh VG
      if (decision.action === 'grow' && underneath.outcome?.kind !== 'grown')
        outcome = await this.act(look, decision);
    } catch (caught) {
      error = errorMessage(caught);
      deps.logger.error({ err: error }, 'data filesystem look failed');
    }
    this.status = {
      atMs: nowMs,
      dataRoot: deps.dataRoot,
      dryRun: deps.dryRun,
      look,
      decision,
      outcome,
      pendingRecoveries: this.pending,
      error,
      growsTotal: this.growsTotal,
      growFailuresTotal: this.growFailuresTotal,
      underneath,
    };
    deps.onStatus?.(this.status);
    return this.status;
  }

  private countUnderneath(action: string, result: string): void {
    const key = `${action}/${result}`;
    this.underneathGrows[key] = (this.underneathGrows[key] ?? 0) + 1;
  }

  /** Probes for a device grown underneath and, unless dry run, grows into it (./underneath.ts). */
  private async lookUnderneath(look: DataFsLook): Promise<DataFsUnderneathStatus> {
    const observation = await this.prober.observe(look.stack, look.lv);
    const decision = decideUnderneath(observation, { failedAt: this.underneathFailedAt });
    let outcome: DataFsUnderneathStatus['outcome'] = null;
    if (decision.action === 'grow-filesystem' || decision.action === 'pvresize') {
      const { stack } = look;
      if (this.deps.dryRun) {
        outcome = {
          kind: 'planned',
          action: decision.action,
          commands: plannedUnderneathCommands(decision, stack.fsType, stack.mountPoint),
        };
      } else {
        try {
          const result =
            decision.action === 'pvresize'
              ? await pvresizeUnderneath(this.underneathDeps, {
                  vg: look.lv?.vg ?? '',
                  pvName: decision.pvName,
                  why: decision.why,
                })
              : await growFilesystemToDevice(this.underneathDeps, {
                  devicePath: decision.devicePath,
                  majorMinor: stack.deviceMajorMinor ?? '',
                  fsType: stack.fsType as GrowableFilesystem,
                  mountPoint: stack.mountPoint,
                  deviceBytes: decision.toBytes,
                  why: decision.why,
                });
          outcome = {
            kind: 'grown',
            action: decision.action,
            fromBytes: result.fromBytes,
            toBytes: result.toBytes,
          };
        } catch (caught) {
          const key =
            decision.action === 'pvresize'
              ? attemptKey(decision.pvName, decision.toBytes)
              : attemptKey(decision.devicePath, decision.toBytes);
          if (caught instanceof UnderneathGrowError && caught.state === 'unchanged')
            this.underneathFailedAt.add(key);
          else {
            this.lastRecoveryAtMs = null; // finish it at the next look
            this.underneathFailedAt.add(key);
          }
          this.deps.logger.error({ err: errorMessage(caught) }, 'grow into a grown device failed');
          outcome = { kind: 'failed', action: decision.action, error: errorMessage(caught) };
        }
        // the next look reads the filesystem, PV, LV and VG afresh
        this.prober.invalidate();
        this.previousLook = null;
      }
      this.countUnderneath(decision.action, outcome.kind);
    }
    return {
      observation,
      decision,
      outcome,
      probeError: this.prober.lastError,
      pendingRecoveries: this.underneathPending,
      growsTotal: { ...this.underneathGrows },
    };
  }

  private async act(
    look: DataFsLook,
    decision: Extract<DataFilesystemDecision, { action: 'grow' }>,
  ): Promise<DataFsGrowOutcome> {
    const { stack } = look;
    const nowMs = this.deps.clock.nowMs();
    if (!stack.lvm || !stack.dmName || !isGrowableFilesystem(stack.fsType))
      throw new Error('grow decided for a filesystem that is not on LVM or not growable');
    const request = {
      lvm: stack.lvm,
      dmName: stack.dmName,
      kernelName: null,
      fsType: stack.fsType,
      mountPoint: stack.mountPoint,
      toLvBytes: decision.toBytes,
      why: decision.why,
    };
    if (this.deps.dryRun) {
      this.deps.logger.info({ why: decision.why }, 'dry run: would grow the data filesystem');
      return {
        kind: 'planned',
        atMs: nowMs,
        fromLvBytes: decision.fromBytes,
        toLvBytes: decision.toBytes,
        commands: plannedCommands(request),
      };
    }
    try {
      const result = await growDataFilesystem(this.growDeps, request);
      if (!result.noop) this.growsTotal += 1;
      // the next look must see the new LV size and VG free
      this.previousLook = null;
      return {
        kind: 'grown',
        atMs: nowMs,
        fromLvBytes: result.fromLvBytes,
        toLvBytes: result.toLvBytes,
        fsAfterBytes: result.fsAfterBytes,
      };
    } catch (error) {
      this.growFailuresTotal += 1;
      this.previousLook = null;
      const state = error instanceof DataFsGrowError ? error.state : 'unknown';
      if (state !== 'unchanged') this.lastRecoveryAtMs = null; // finish it at the next look
      if (state !== 'unchanged')
        this.pending = [
          {
            intentId: '',
            vg: stack.lvm.vg,
            lv: stack.lvm.lv,
            outcome: 'pending',
            detail: errorMessage(error),
          },
        ];
      this.deps.logger.error({ err: errorMessage(error), state }, 'data filesystem grow failed');
      return { kind: 'failed', atMs: nowMs, error: errorMessage(error), state };
    }
  }
}
