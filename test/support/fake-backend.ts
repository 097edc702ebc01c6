/**
 * A fake {@link StorageBackend} on simulated time: each container has a size and a writer filling it
 * at a set rate. Usage advances with the injected clock, never past the size: when the writer would
 * overrun the size, the fake records a write error (the ENOSPC/EDQUOT a real writer would see), which
 * is what the fill-race tests assert never happens. Grows can take simulated time and can fail on
 * demand. The pool is the backing filesystem (quota drivers) or a thin pool.
 */
import type { ContainerInfo } from '../../src/docker/model.js';
import type { DoctorCheck } from '../../src/contracts/doctor-check.js';
import type {
  ContainerUsage,
  GrowRequest,
  GrowResult,
  LiveUsage,
  Observation,
  PoolUsage,
  StorageBackend,
  StorageDriverName,
} from '../../src/storage/types.js';

export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;

/** A settable clock (ms since the epoch). */
export class FakeClock {
  constructor(private currentMs = Date.UTC(2026, 10, 27, 12, 0, 0)) {}
  nowMs(): number {
    return this.currentMs;
  }
  advance(ms: number): void {
    this.currentMs += ms;
  }
  set(ms: number): void {
    this.currentMs = ms;
  }
}

interface SimulatedContainer {
  sizeBytes: number | null;
  usedBytes: number;
  fillRateBytesPerSecond: number;
  lastSettledMs: number;
  inodesUsed: number | null;
  inodesTotal: number | null;
  /** Simulated ms at which the writer first found the container full. */
  writeErrorsAtMs: number[];
}

export interface FakePoolOptions {
  kind: PoolUsage['kind'];
  dataTotalBytes: number;
  /** Added to the containers' own usage (images, other data). */
  baseUsedBytes?: number;
  metadataTotalBytes?: number | null;
  metadataUsedBytes?: number | null;
  mode?: PoolUsage['mode'];
  needsCheck?: boolean;
}

export class FakeBackend implements StorageBackend {
  readonly driver: StorageDriverName;
  readonly grows: GrowRequest[] = [];
  readonly observedIds: string[][] = [];
  readonly stopped: string[] = [];
  readonly poolGrows: number[] = [];
  recovered: string[] | null = null;
  /** Simulated time each grow takes (advances the clock). */
  growDurationMs = 0;
  /** When set, observe() throws this. */
  observeError: Error | null = null;
  private readonly containers = new Map<string, SimulatedContainer>();
  private readonly failures = new Map<string, (string | Error)[]>();
  private readonly observeErrors = new Map<string, string>();
  pool: FakePoolOptions | null;
  /** When set, grow() waits on this before acting (to hold a grow in flight). */
  gate: Promise<void> | null = null;

  constructor(
    private readonly clock: FakeClock,
    options: { driver?: StorageDriverName; pool?: FakePoolOptions | null } = {},
  ) {
    this.driver = options.driver ?? 'btrfs';
    this.pool =
      options.pool === undefined ? { kind: 'filesystem', dataTotalBytes: 1024 * GiB } : options.pool;
  }

  addContainer(
    id: string,
    state: {
      sizeBytes: number | null;
      usedBytes: number;
      fillRateBytesPerSecond?: number;
      inodesUsed?: number;
      inodesTotal?: number;
    },
  ): this {
    this.containers.set(id, {
      sizeBytes: state.sizeBytes,
      usedBytes: state.usedBytes,
      fillRateBytesPerSecond: state.fillRateBytesPerSecond ?? 0,
      lastSettledMs: this.clock.nowMs(),
      inodesUsed: state.inodesUsed ?? null,
      inodesTotal: state.inodesTotal ?? null,
      writeErrorsAtMs: [],
    });
    return this;
  }

  setFillRate(id: string, bytesPerSecond: number): void {
    const container = this.settle(id);
    container.fillRateBytesPerSecond = bytesPerSecond;
  }

  /** Adds bytes at once (a burst), as of now. */
  write(id: string, bytes: number): void {
    const container = this.settle(id);
    this.addUsage(container, bytes, this.clock.nowMs());
  }

  /** The next `count` grows of `id` fail with `failure` (a message, or the error to throw). */
  failNextGrows(id: string, count: number, failure: string | Error = 'simulated grow failure'): void {
    this.failures.set(id, [...(this.failures.get(id) ?? []), ...Array<string | Error>(count).fill(failure)]);
  }

  setObserveError(id: string, message: string | null): void {
    if (message === null) this.observeErrors.delete(id);
    else this.observeErrors.set(id, message);
  }

  state(id: string): { sizeBytes: number | null; usedBytes: number; writeErrors: number } {
    const container = this.settle(id);
    return {
      sizeBytes: container.sizeBytes,
      usedBytes: container.usedBytes,
      writeErrors: container.writeErrorsAtMs.length,
    };
  }

  private addUsage(container: SimulatedContainer, bytes: number, atMs: number): void {
    const next = container.usedBytes + bytes;
    if (container.sizeBytes !== null && next > container.sizeBytes) {
      container.usedBytes = container.sizeBytes;
      if (bytes > 0) container.writeErrorsAtMs.push(atMs);
      return;
    }
    container.usedBytes = next;
  }

  private settle(id: string): SimulatedContainer {
    const container = this.containers.get(id);
    if (!container) throw new Error(`fake backend: unknown container ${id}`);
    const nowMs = this.clock.nowMs();
    const elapsedMs = nowMs - container.lastSettledMs;
    if (elapsedMs > 0 && container.fillRateBytesPerSecond > 0) {
      this.addUsage(container, Math.round((container.fillRateBytesPerSecond * elapsedMs) / 1000), nowMs);
    }
    container.lastSettledMs = nowMs;
    return container;
  }

  private usage(id: string): ContainerUsage {
    const container = this.settle(id);
    return {
      containerId: id,
      driver: this.driver,
      sizeBytes: container.sizeBytes,
      usedBytes: container.usedBytes,
      inodesUsed: container.inodesUsed,
      inodesTotal: container.inodesTotal,
      fsType: null,
      detail: {},
    };
  }

  poolUsage(): PoolUsage | null {
    if (!this.pool) return null;
    let committedBytes = 0;
    let usedBytes = this.pool.baseUsedBytes ?? 0;
    for (const id of this.containers.keys()) {
      const container = this.settle(id);
      committedBytes += container.sizeBytes ?? 0;
      usedBytes += container.usedBytes;
    }
    return {
      name: 'fake-pool',
      kind: this.pool.kind,
      dataUsedBytes: usedBytes,
      dataTotalBytes: this.pool.dataTotalBytes,
      metadataUsedBytes: this.pool.metadataUsedBytes ?? null,
      metadataTotalBytes: this.pool.metadataTotalBytes ?? null,
      mode: this.pool.mode ?? 'rw',
      needsCheck: this.pool.needsCheck ?? false,
      committedBytes,
    };
  }

  async observe(containers: readonly ContainerInfo[], nowMs: number): Promise<Observation> {
    this.observedIds.push(containers.map((container) => container.id));
    if (this.observeError) throw this.observeError;
    const usages = new Map<string, ContainerUsage>();
    const errors = new Map<string, string>();
    for (const container of containers) {
      const error = this.observeErrors.get(container.id);
      if (error) errors.set(container.id, error);
      else if (this.containers.has(container.id)) usages.set(container.id, this.usage(container.id));
    }
    return { takenAtMs: nowMs, driver: this.driver, pool: this.poolUsage(), containers: usages, errors };
  }

  /** Looks taken through readLiveUsage (the fill guard's fast path). */
  liveReads = 0;

  async readLiveUsage(containerIds: readonly string[]): Promise<ReadonlyMap<string, LiveUsage>> {
    const result = new Map<string, LiveUsage>();
    for (const id of containerIds) {
      if (!this.containers.has(id) || this.observeErrors.has(id)) continue;
      this.liveReads += 1;
      const usage = this.usage(id);
      result.set(id, { usedBytes: usage.usedBytes ?? 0, sizeBytes: usage.sizeBytes });
    }
    return result;
  }

  async grow(request: GrowRequest): Promise<GrowResult> {
    const id = request.container.id;
    const steps = [{ name: 'fake grow', argv: ['fake', 'grow', id, String(request.toBytes)] }];
    if (request.dryRun) {
      return {
        containerId: id,
        fromBytes: request.fromBytes,
        toBytes: request.toBytes,
        steps,
        dryRun: true,
        noop: false,
      };
    }
    this.grows.push(request);
    if (this.gate) await this.gate;
    this.settle(id);
    this.clock.advance(this.growDurationMs);
    const container = this.settle(id);
    const queued = this.failures.get(id);
    const failure = queued?.shift();
    if (failure !== undefined) throw typeof failure === 'string' ? new Error(failure) : failure;
    if (container.sizeBytes === null) throw new Error('no limit');
    if (container.sizeBytes >= request.toBytes) {
      return {
        containerId: id,
        fromBytes: container.sizeBytes,
        toBytes: container.sizeBytes,
        steps: [],
        dryRun: false,
        noop: true,
      };
    }
    const fromBytes = container.sizeBytes;
    container.sizeBytes = request.toBytes;
    return { containerId: id, fromBytes, toBytes: request.toBytes, steps, dryRun: false, noop: false };
  }

  async recover(containers: readonly ContainerInfo[]): Promise<void> {
    this.recovered = containers.map((container) => container.id);
  }

  async onContainerStopped(container: ContainerInfo): Promise<void> {
    this.stopped.push(container.id);
  }

  /** The next pool grow throws this (then it is cleared). */
  nextPoolGrowFailure: Error | null = null;

  async growPool(toBytes: number, dryRun: boolean) {
    if (!this.pool) throw new Error('no pool');
    const failure = this.nextPoolGrowFailure;
    this.nextPoolGrowFailure = null;
    if (failure && !dryRun) throw failure;
    const fromBytes = this.pool.dataTotalBytes;
    if (!dryRun) {
      this.poolGrows.push(toBytes);
      this.pool.dataTotalBytes = Math.max(fromBytes, toBytes);
    }
    return {
      fromBytes,
      toBytes: dryRun ? fromBytes : this.pool.dataTotalBytes,
      steps: [{ name: 'fake pool grow' }],
    };
  }

  async doctor(): Promise<DoctorCheck[]> {
    return [];
  }
}
