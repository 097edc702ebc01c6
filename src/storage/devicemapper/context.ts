/**
 * What every part of the devicemapper backend shares: resolved options, Docker's paths, the
 * write-ahead journal, the grown-device records, failure counts and the one dmsetup runner.
 */
import { mkdirSync, statSync } from 'node:fs';
import { statfs as statfsCallback } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { resolveBinary, type CommandRunner, type ToolName } from '../../exec/runner.js';
import type { Logger } from '../../log/logger.js';
import type { BackendDeps } from '../types.js';
import { GrowJournal, GrownDeviceStore } from './journal.js';
import { parseDockerDmDriverStatus, type DockerDmDriverStatus } from './parse.js';
import type { FsStats, DevicemapperOptions } from './types.js';

/** Kernel-side calls that must never be signalled (a kill mid-resume can drop the new table). */
export const UNKILLABLE = { killOnTimeout: false } as const;

async function defaultStatfs(mountPath: string): Promise<FsStats> {
  const stats = await promisify(statfsCallback)(mountPath);
  return {
    blockSizeBytes: stats.bsize,
    totalBlocks: stats.blocks,
    freeBlocks: stats.bfree,
    availableBlocks: stats.bavail,
    totalInodes: stats.files,
    freeInodes: stats.ffree,
  };
}

export interface DmContext {
  deps: BackendDeps;
  runner: CommandRunner;
  logger: Logger;
  dataRoot: string;
  mountinfoPath: string;
  sysBlockDir: string;
  statfs: (mountPath: string) => Promise<FsStats>;
  fileSizeBytes: (file: string) => number;
  sleep: (ms: number) => Promise<void>;
  nowMs: () => number;
  recreateWaitMs: number;
  binaryPresent: (tool: ToolName) => boolean;
  journal: GrowJournal;
  grown: GrownDeviceStore;
  /** Failed steps since start, by step name. */
  failures: Map<string, number>;
  /** Kernel holds on grown devices (see DevicemapperOptions.holdGrownDevices). */
  holdGrownDevices: boolean;
  persistenceRecheckMs: number;
  /** A new journal intent id. */
  nextIntentId: () => string;
  driverStatus: () => DockerDmDriverStatus;
  mountPathOf: (hash: string) => string;
  metadataPathOf: (hash: string) => string;
  countFailure: (step: string) => void;
  dmsetup: (args: readonly string[], unkillable?: boolean) => Promise<string>;
}

export function createDmContext(deps: BackendDeps, options: DevicemapperOptions): DmContext {
  const runner: CommandRunner = deps.runner;
  const logger: Logger = deps.logger;
  const dataRoot = options.dataRoot ?? deps.dockerInfo.dockerRootDir;
  const mountinfoPath = options.mountinfoPath ?? '/proc/self/mountinfo';
  const sysBlockDir = options.sysBlockDir ?? '/sys/block';
  const statfs = options.statfs ?? defaultStatfs;
  const fileSizeBytes = options.fileSizeBytes ?? ((file: string) => statSync(file).size);
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const nowMs = options.nowMs ?? Date.now;
  const recreateWaitMs = options.recreateWaitMs ?? 3000;
  // doctor asks the runner that will run the tool (ExecaRunner.binaryPath: config `binaries`, then
  // the search), so a configured path is what is checked; a runner without one: the plain search.
  const runnerLookup = (runner as { binaryPath?: unknown }).binaryPath;
  const binaryPresent =
    options.binaryPresent ??
    (typeof runnerLookup === 'function'
      ? (tool: ToolName) => (runnerLookup as (tool: ToolName) => string | null).call(runner, tool) !== null
      : (tool: ToolName) => resolveBinary(tool) !== null);
  mkdirSync(deps.stateDir, { recursive: true, mode: 0o700 });
  const journal = new GrowJournal(path.join(deps.stateDir, 'devicemapper-intents.jsonl'), nowMs);
  const grown = GrownDeviceStore.inStateDir(deps.stateDir);
  const failures = new Map<string, number>();
  const dockerDm = parseDockerDmDriverStatus(deps.dockerInfo.driverStatus);
  const holdGrownDevices =
    options.holdGrownDevices ??
    (dockerDm.deferredRemovalEnabled === true && dockerDm.deferredDeletionEnabled === true);
  const persistenceRecheckMs = options.persistenceRecheckMs ?? 10_000;
  let intentCounter = 0;

  const driverStatus = (): DockerDmDriverStatus => parseDockerDmDriverStatus(deps.dockerInfo.driverStatus);
  const mountPathOf = (hash: string) => path.join(dataRoot, 'devicemapper', 'mnt', hash);
  const metadataPathOf = (hash: string) => path.join(dataRoot, 'devicemapper', 'metadata', hash);

  function countFailure(step: string): void {
    failures.set(step, (failures.get(step) ?? 0) + 1);
  }

  async function dmsetup(args: readonly string[], unkillable = false): Promise<string> {
    const result = await runner.run({
      tool: 'dmsetup',
      args,
      timeoutMs: deps.commandTimeoutMs,
      ...(unkillable ? UNKILLABLE : {}),
    });
    if (result.overranTimeoutMs !== undefined) {
      logger.warn(
        { args, overranTimeoutMs: result.overranTimeoutMs },
        'dmsetup overran its timeout (not signalled)',
      );
    }
    return result.stdout;
  }

  return {
    deps,
    runner,
    logger,
    dataRoot,
    mountinfoPath,
    sysBlockDir,
    statfs,
    fileSizeBytes,
    sleep,
    nowMs,
    recreateWaitMs,
    binaryPresent,
    journal,
    grown,
    failures,
    holdGrownDevices,
    persistenceRecheckMs,
    nextIntentId: () => `${nowMs()}-${process.pid}-${(intentCounter += 1)}`,
    driverStatus,
    mountPathOf,
    metadataPathOf,
    countFailure,
    dmsetup,
  };
}
