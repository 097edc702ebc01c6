/**
 * The composition root: builds the real implementations (runner, Docker client and inventory,
 * storage backend, journal, reconciler, metrics, HTTP endpoint, systemd notifier) from a
 * configuration and wires them together. Nothing else constructs them; tests build their own
 * graphs from fakes.
 */
import { errorMessage } from '../util/errors.js';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { createDockerClient, type DockerClient } from '../docker/client.js';
import {
  describeEndpoint,
  resolveDockerEndpointFromEnvironment,
  type DockerEndpoint,
} from '../docker/endpoint-env.js';
import { createDockerInventory, type DockerInventory } from '../docker/inventory.js';
import type { DockerEventSource } from '../docker/events.js';
import type { DockerApi } from '../docker/inventory-port.js';
import type { DockerInfo } from '../docker/model.js';
import { ExecaRunner, type CommandRunner } from '../exec/runner.js';
import { startMetricsServer, type MetricsServer } from '../http/server.js';
import type { Logger } from '../log/logger.js';
import { createMetrics, type Metrics } from '../metrics/metrics.js';
import { createBackendFor } from '../storage/select.js';
import type { BackendDeps, StorageBackend } from '../storage/types.js';
import { createSystemdNotifier } from '../systemd/notify.js';
import { formatBytes } from '../util/units.js';
import { Journal } from './journal.js';
import { Reconciler } from './reconciler.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { PassReport } from '../report/pass-report.js';
import { DataFilesystemWatcher, dataFilesystemSettings } from '../storage/data-filesystem/watcher.js';
import { createReclaimer } from '../reclaim/wiring.js';
import type { Reclaimer } from '../reclaim/reclaimer.js';

/** Docker could not be reached or answered nonsense: the agent cannot serve this host. */
export class DockerUnavailableError extends Error {
  override readonly name = 'DockerUnavailableError';
}

/** What the agent needs from Docker: the daemon API and the raw event stream. */
export type AgentDocker = DockerApi & DockerEventSource;

export interface AgentContext {
  config: Config;
  logger: Logger;
  runner: CommandRunner;
  docker: AgentDocker;
  dockerInfo: DockerInfo;
  backend: StorageBackend;
  journal: Journal;
  inventory: DockerInventory;
  reconciler: Reconciler;
  metrics: Metrics;
  /** The data-filesystem loop (its own component beside the reconciler); null when disabled. */
  dataFilesystem?: DataFilesystemWatcher | null;
  /** The reclaim ladder (src/reclaim/); null when reclaim is disabled. */
  reclaimer?: Reclaimer | null;
  /** Which Docker endpoint and where it came from (src/docker/endpoint.ts), for logs and status. */
  dockerEndpoint?: string;
}

/** The agent's own state directory: beside the journal (locks and backend intent logs). */
export function stateDirOf(config: Config): string {
  return path.dirname(config.journal.path);
}

/**
 * Connects to Docker and asks for its info; a clear error when the daemon cannot be reached.
 * `wrap` gets the client before its first call and returns what the agent uses instead.
 */
export async function connectDocker(
  config: Config,
  wrap: (client: DockerClient) => AgentDocker = (client) => client,
  endpoint?: DockerEndpoint,
  logger?: Logger,
): Promise<{ docker: AgentDocker; dockerInfo: DockerInfo; dockerEndpoint: string }> {
  let resolved: DockerEndpoint;
  try {
    resolved = endpoint ?? resolveDockerEndpointFromEnvironment(config);
  } catch (error) {
    throw new DockerUnavailableError(errorMessage(error));
  }
  const docker = wrap(createDockerClient({ endpoint: resolved, timeoutMs: config.docker.timeout, logger }));
  const dockerEndpoint = describeEndpoint(resolved);
  try {
    return { docker, dockerInfo: await docker.info(), dockerEndpoint };
  } catch (error) {
    // the client's errors already name the endpoint, its source and a hint
    const reason = errorMessage(error);
    throw new DockerUnavailableError(
      reason.startsWith('cannot reach Docker')
        ? reason
        : `cannot reach Docker at ${dockerEndpoint}: ${reason}`,
    );
  }
}

/**
 * Where a caller may put its own parts into the real graph. The agent passes none: every
 * default is what it runs with. The benchmarks use them to count Docker API calls and processes
 * and to feed recorded outputs, without wiring the agent a second time.
 */
export interface AgentContextOptions {
  /** Wraps or replaces the Docker client before its first call (default: the client itself). */
  wrapDocker?: (client: DockerClient) => AgentDocker;
  /** Wraps or replaces the command runner (default: the ExecaRunner itself). */
  wrapRunner?: (runner: ExecaRunner) => CommandRunner;
  /** Creates the storage backend (default: createBackendFor, by the daemon's storage driver). */
  createBackend?: (dockerInfo: DockerInfo, deps: BackendDeps) => StorageBackend | Promise<StorageBackend>;
  /** The reconciler's clock (default: Date.now). */
  clock?: Clock;
  /** The Docker endpoint (default: resolved from the config and the environment like the docker CLI). */
  dockerEndpoint?: DockerEndpoint;
}

/** Builds every part of the agent; starts nothing. */
export async function createAgentContext(
  config: Config,
  logger: Logger,
  options: AgentContextOptions = {},
): Promise<AgentContext> {
  const metrics = createMetrics();
  const execaRunner = new ExecaRunner({ binaries: config.binaries, defaultTimeoutMs: config.commandTimeout });
  const runner = options.wrapRunner ? options.wrapRunner(execaRunner) : execaRunner;
  const { docker, dockerInfo, dockerEndpoint } = await connectDocker(
    config,
    options.wrapDocker,
    options.dockerEndpoint,
    logger.child({ component: 'docker' }),
  );
  const backend = await (options.createBackend ?? createBackendFor)(dockerInfo, {
    runner,
    docker,
    dockerInfo,
    logger: logger.child({ component: 'storage', driver: dockerInfo.driver }),
    stateDir: stateDirOf(config),
    commandTimeoutMs: config.commandTimeout,
  });
  const journal = new Journal({
    path: config.journal.path,
    maxSizeBytes: config.journal.maxSize,
    keep: config.journal.keep,
    onWriteError: () => metrics.incJournalErrors(),
  });
  const inventory = createDockerInventory({
    api: docker,
    events: docker,
    logger: logger.child({ component: 'inventory' }),
    resyncIntervalMs: config.resyncInterval,
  });
  const labelWarningsSeen = new Set<string>();
  const reconciler = new Reconciler({
    inventory,
    backend,
    config,
    journal,
    clock: options.clock ?? systemClock,
    logger: logger.child({ component: 'reconciler' }),
    onReport: (report) => {
      metrics.applyPassReport(report);
      metrics.incLabelWarnings(countNewLabelWarnings(report, labelWarningsSeen));
      metrics.setGuardStats(reconciler.guardStats);
      // a thin pool that cannot grow triggers the reclaim ladder too (src/policy/reclaim.ts)
      reclaimer?.observePool(report);
    },
  });
  let reconnectsCounted = 0;
  inventory.subscribe({
    onStreamState: (connected) => {
      metrics.setEventStreamConnected(connected);
      for (; reconnectsCounted < inventory.reconnects; reconnectsCounted += 1)
        metrics.incEventStreamReconnects();
    },
    onDestroy: (containerId) => {
      metrics.forgetContainer(containerId);
      for (const key of [...labelWarningsSeen])
        if (key.startsWith(`${containerId}\n`)) labelWarningsSeen.delete(key);
    },
  });
  const reclaimer = createReclaimer(config, logger, dockerInfo, metrics, options.clock);
  const dataFilesystem = createDataFilesystemWatcher(
    config,
    logger,
    runner,
    dockerInfo,
    metrics,
    options.clock,
    reclaimer,
  );
  return {
    config,
    logger,
    runner,
    docker,
    dockerInfo,
    backend,
    journal,
    inventory,
    reconciler,
    metrics,
    dataFilesystem,
    reclaimer,
    dockerEndpoint,
  };
}

/** The data-filesystem loop for Docker's data root, reporting into the metrics; null when disabled. */
function createDataFilesystemWatcher(
  config: Config,
  logger: Logger,
  runner: CommandRunner,
  dockerInfo: DockerInfo,
  metrics: Metrics,
  clock: Clock | undefined,
  reclaimer: Reclaimer | null,
): DataFilesystemWatcher | null {
  if (!config.dataFilesystem.enabled) return null;
  return new DataFilesystemWatcher({
    dataRoot: dockerInfo.dockerRootDir,
    settings: dataFilesystemSettings(config),
    intervalMs: config.dataFilesystem.interval,
    dryRun: config.dryRun,
    runner,
    stateDir: stateDirOf(config),
    commandTimeoutMs: config.commandTimeout,
    logger: logger.child({ component: 'data-filesystem' }),
    clock: clock ?? systemClock,
    onStatus: (status) => {
      metrics.dataFilesystem.applyStatus(status);
      reclaimer?.observeDataFilesystem(status);
    },
  });
}

/** Invalid label values are counted once per container and text, not once per pass. */
function countNewLabelWarnings(report: PassReport, seen: Set<string>): number {
  let fresh = 0;
  for (const container of report.containers) {
    for (const warning of container.labelWarnings) {
      const key = `${container.containerId}\n${warning}`;
      if (!seen.has(key)) {
        seen.add(key);
        fresh += 1;
      }
    }
  }
  return fresh;
}

export interface RunningAgent {
  /** Resolves when the agent has stopped (after `stop()`). */
  readonly stopped: Promise<void>;
  /** Stops timers and streams, lets an in-flight grow finish, closes the endpoint. */
  stop(): Promise<void>;
  /** The metrics port actually listened on (null when metrics are disabled). */
  readonly metricsPort: number | null;
}

/**
 * Runs the agent until `stop()`: the event stream and resyncs, a pass every interval, the metrics
 * endpoint, and systemd readiness after the first pass plus watchdog pings while passes keep coming.
 */
export async function runAgent(
  context: AgentContext,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunningAgent> {
  const { config, logger, inventory, reconciler, metrics } = context;
  const notifier = createSystemdNotifier({
    runner: context.runner,
    env,
    logger: logger.child({ component: 'systemd' }),
  });
  let firstPassDone = false;
  let server: MetricsServer | null = null;
  if (config.metrics.enabled) {
    server = await startMetricsServer({
      listen: config.metrics.listen,
      webConfigFile: config.metrics.webConfigFile,
      registry: metrics.registry,
      isReady: () => firstPassDone && inventory.streamConnected,
      logger: logger.child({ component: 'http' }),
    });
  }
  logger.info(
    {
      driver: context.dockerInfo.driver,
      dockerVersion: context.dockerInfo.serverVersion,
      dataRoot: context.dockerInfo.dockerRootDir,
      dockerEndpoint: context.dockerEndpoint,
      intervalMs: config.interval,
      dryRun: config.dryRun,
      metricsPort: server?.port ?? null,
    },
    'agent starting',
  );
  await inventory.start();
  await reconciler.start();
  await context.dataFilesystem?.start();
  context.reclaimer?.start();
  const first = reconciler.lastReport ?? (await reconciler.runPass({}));
  firstPassDone = true;
  const summary = describeReport(first);
  await notifier.ready(summary);
  // Withhold watchdog pings when passes stop coming, so systemd restarts a wedged agent.
  notifier.startWatchdog(() => {
    const last = reconciler.lastReport;
    if (!last) return false;
    return Date.now() - (last.startedAtMs + last.durationMs) < Math.max(10 * config.interval, 60_000);
  });
  logger.info({ containers: first.containers.length }, 'agent ready');

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      logger.info('agent stopping');
      await notifier.stopping();
      notifier.stopWatchdog();
      await context.dataFilesystem?.stop();
      await context.reclaimer?.stop();
      await reconciler.stop();
      await inventory.stop();
      await server?.close();
      logger.info('agent stopped');
      resolveStopped();
    })();
    return stopping;
  };
  return { stopped, stop, metricsPort: server?.port ?? null };
}

function describeReport(report: PassReport): string {
  const pool = report.pool
    ? `, pool ${formatBytes(report.pool.dataUsedBytes)}/${formatBytes(report.pool.dataTotalBytes)} used`
    : '';
  return `serving ${report.containers.length} containers (${report.driver ?? 'no driver'})${pool}`;
}
