/**
 * Builds the agent's {@link Reclaimer} from the configuration (called by src/agent/app.ts, the
 * composition root): its own Docker client with a long idle timeout (a build-cache prune answers
 * only when done), metrics wired in, and its own look at the data filesystem when the agent does
 * not grow it.
 */
import type { Config } from '../config/schema.js';
import { createDockerClient } from '../docker/client.js';
import type { DockerInfo } from '../docker/model.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { systemClock, type Clock } from '../util/clock.js';
import { RECLAIM_DOCKER_TIMEOUT_MS, Reclaimer } from './reclaimer.js';

export function createReclaimer(
  config: Config,
  logger: Logger,
  dockerInfo: Pick<DockerInfo, 'dockerRootDir'>,
  metrics: Pick<Metrics, 'reclaim'> | null,
  clock: Clock = systemClock,
): Reclaimer | null {
  if (!config.reclaim.enabled) return null;
  return new Reclaimer({
    settings: config.reclaim,
    docker: createDockerClient({
      socketPath: config.docker.socketPath,
      timeoutMs: Math.max(config.docker.timeout, RECLAIM_DOCKER_TIMEOUT_MS),
    }),
    dataRoot: dockerInfo.dockerRootDir,
    dryRun: config.dryRun,
    logger: logger.child({ component: 'reclaim' }),
    clock,
    ...(config.dataFilesystem.enabled ? {} : { ownLookIntervalMs: config.dataFilesystem.interval }),
    onReport: (report) => metrics?.reclaim.applyReport(report),
    onExhausted: (exhausted) => metrics?.reclaim.setExhausted(exhausted),
  });
}
