/**
 * The agent's real graph (backend, Docker inventory, journal, reconciler, metrics) built by the
 * composition root (createAgentContext) over a replicated world, with the runner and the Docker
 * API replaced by counting fakes and the backend pointed at the world's files. Only the process
 * launcher and the daemon are fake; parsing, observation, policy, history, journal and metrics are
 * the shipped code, wired as the agent wires them.
 */
import { PassThrough } from 'node:stream';
import path from 'node:path';
import { createAgentContext } from '../../src/agent/app.js';
import type { PassReport } from '../../src/report/pass-report.js';
import type { Reconciler } from '../../src/agent/reconciler.js';
import { parseConfigObject } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { DockerEventSource } from '../../src/docker/events.js';
import type { DockerApi } from '../../src/docker/inventory-port.js';
import type { DockerInventory } from '../../src/docker/inventory.js';
import { mapContainerInspect } from '../../src/docker/mapping.js';
import type { ContainerInfo, DockerInfo } from '../../src/docker/model.js';
import { silentLogger } from '../../src/log/logger.js';
import type { Metrics } from '../../src/metrics/metrics.js';
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
  /** Docker API calls of the inventory start (list, inspect, the event stream; not the info call). */
  startApiCalls: number;
  metrics: Metrics;
  clock: VirtualClock;
  /** One pass, the virtual clock advanced by the interval first. */
  pass(): Promise<PassReport>;
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
  const docker = new CountingDockerApi(world.dockerInfo, world.inspectJson);
  const clock = new VirtualClock();
  const context = await createAgentContext(config, silentLogger(), {
    // the client createAgentContext made is never called: the recorded world answers instead
    wrapDocker: () => docker,
    wrapRunner: () => world.runner,
    createBackend: (_dockerInfo, deps) =>
      world.driver === 'btrfs'
        ? createBtrfsBackend(deps, world.backendOptions as { sysfsRoot: string })
        : createDevicemapperBackend(deps, world.backendOptions as { mountinfoPath: string }),
    clock,
  });
  const { reconciler, inventory, backend, metrics } = context;
  const beforeStart = docker.calls;
  await inventory.start();
  return {
    config,
    reconciler,
    inventory,
    backend,
    docker,
    startApiCalls: docker.calls - beforeStart,
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
