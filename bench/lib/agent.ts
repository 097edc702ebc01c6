/**
 * The agent's real graph (backend, Docker inventory, journal, reconciler, metrics) built over a
 * replicated world: the same classes createAgentContext wires, with the runner and the Docker API
 * replaced by counting fakes. Only the process launcher and the daemon are fake; parsing,
 * observation, policy, history, journal and metrics are the shipped code.
 */
import { PassThrough } from 'node:stream';
import path from 'node:path';
import { Journal } from '../../src/agent/journal.js';
import { Reconciler } from '../../src/agent/reconciler.js';
import { parseConfigObject } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { DockerEventSource } from '../../src/docker/events.js';
import type { DockerApi } from '../../src/docker/inventory-port.js';
import { createDockerInventory, type DockerInventory } from '../../src/docker/inventory.js';
import { mapContainerInspect } from '../../src/docker/mapping.js';
import type { ContainerInfo, DockerInfo } from '../../src/docker/model.js';
import { silentLogger } from '../../src/log/logger.js';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.js';
import { createBtrfsBackend } from '../../src/storage/btrfs/index.js';
import { createDevicemapperBackend } from '../../src/storage/devicemapper/index.js';
import type { StorageBackend } from '../../src/storage/types.js';
import type { World } from './replicate.js';

/** A Docker API that answers from recorded inspect JSON and counts every call. */
export class CountingDockerApi implements DockerApi, DockerEventSource {
  calls = 0;
  readonly byMethod = new Map<string, number>();
  private readonly streams: PassThrough[] = [];

  constructor(
    private readonly dockerInfo: DockerInfo,
    private readonly inspectJson: ReadonlyMap<string, unknown>,
  ) {}

  private count(method: string): void {
    this.calls += 1;
    this.byMethod.set(method, (this.byMethod.get(method) ?? 0) + 1);
  }

  async info(): Promise<DockerInfo> {
    this.count('info');
    return this.dockerInfo;
  }

  async listContainerIds(): Promise<string[]> {
    this.count('list');
    return [...this.inspectJson.keys()];
  }

  async inspectContainer(id: string): Promise<ContainerInfo | null> {
    this.count('inspect');
    const raw = this.inspectJson.get(id);
    return raw === undefined ? null : mapContainerInspect(structuredClone(raw));
  }

  async ping(): Promise<boolean> {
    this.count('ping');
    return true;
  }

  /** An event stream that stays open and quiet (an idle host). */
  async openEvents(options: { since?: string; signal: AbortSignal }): Promise<NodeJS.ReadableStream> {
    this.count('events');
    const stream = new PassThrough();
    this.streams.push(stream);
    options.signal.addEventListener('abort', () => stream.destroy(), { once: true });
    return stream;
  }

  close(): void {
    for (const stream of this.streams) stream.destroy();
  }
}

export interface BenchAgent {
  config: Config;
  reconciler: Reconciler;
  inventory: DockerInventory;
  backend: StorageBackend;
  docker: CountingDockerApi;
  metrics: Metrics;
  clock: VirtualClock;
  /** One pass, the virtual clock advanced by the interval first. */
  pass(): Promise<import('../../src/agent/report.js').PassReport>;
  stop(): Promise<void>;
}

/** Default configuration (as shipped), with private state paths; dry run for pass-cost runs. */
export function benchConfig(stateDir: string, overrides: Record<string, unknown> = {}): Config {
  return parseConfigObject(
    {
      journal: { path: path.join(stateDir, 'journal.jsonl') },
      metrics: { enabled: false },
      ...overrides,
    },
    'bench',
  );
}

/**
 * A clock for back-to-back passes: each pass sees the time advance by the configured interval, as
 * in a running agent, so the fill-rate history holds as many samples as it would in production.
 */
export class VirtualClock {
  private now = Date.parse('2026-11-27T00:00:00Z');
  nowMs(): number {
    return this.now;
  }
  advance(ms: number): void {
    this.now += ms;
  }
}

export async function startBenchAgent(world: World, options: { dryRun: boolean }): Promise<BenchAgent> {
  const config = benchConfig(world.stateDir, { dryRun: options.dryRun });
  const logger = silentLogger();
  const docker = new CountingDockerApi(world.dockerInfo, world.inspectJson);
  const deps = {
    runner: world.runner,
    docker,
    dockerInfo: world.dockerInfo,
    logger,
    stateDir: world.stateDir,
    commandTimeoutMs: config.commandTimeout,
  };
  const backend =
    world.driver === 'btrfs'
      ? createBtrfsBackend(deps, world.backendOptions as { sysfsRoot: string })
      : createDevicemapperBackend(deps, world.backendOptions as { mountinfoPath: string });
  const metrics = createMetrics();
  const clock = new VirtualClock();
  const journal = new Journal({
    path: config.journal.path,
    maxSizeBytes: config.journal.maxSize,
    keep: config.journal.keep,
  });
  const inventory = createDockerInventory({
    api: docker,
    events: docker,
    logger,
    resyncIntervalMs: config.resyncInterval,
  });
  const reconciler = new Reconciler({
    inventory,
    backend,
    config,
    journal,
    clock,
    logger,
    onReport: (report) => metrics.applyPassReport(report),
  });
  await inventory.start();
  return {
    config,
    reconciler,
    inventory,
    backend,
    docker,
    metrics,
    clock,
    pass: () => {
      clock.advance(config.interval);
      return reconciler.runPass({});
    },
    stop: async () => {
      await reconciler.stop();
      await inventory.stop();
      docker.close();
    },
  };
}
