/**
 * What every agent-backed command does first: load the configuration, make a logger, build the
 * agent's parts. Errors become one-line CLI errors (config: exit 2; Docker unreachable: exit 1).
 */
import { DockerUnavailableError, createAgentContext, type AgentContext } from '../agent/app.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { UnsupportedDriverError } from '../storage/select.js';
import { createLogger, type LogLevel, type Logger } from '../log/logger.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from './errors.js';
import { DockerEndpointError, type DockerEndpoint } from '../docker/endpoint.js';
import { resolveDockerEndpointFromEnvironment } from '../docker/endpoint-env.js';
import type { Writable } from 'node:stream';

export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
}

export interface GlobalOptions {
  config?: string;
  logLevel?: string;
  /** `-H` / `--host`: the Docker endpoint, like the docker CLI's. */
  host?: string;
}

/** What every command receives from src/cli/program.ts. */
export interface CliContext {
  io: CliIo;
  globals(): GlobalOptions;
}

export interface LoadedCliConfig {
  config: Config;
  source: string;
  logger: Logger;
  /** The Docker endpoint: --host > docker.host > DOCKER_HOST > docker context > default socket. */
  endpoint: DockerEndpoint;
}

/** Loads the configuration named by the global options; logs go to stderr when stdout is a result. */
export function loadCliConfig(
  context: CliContext,
  options: { logsToStderr: boolean; overrides?: Partial<Config> },
): LoadedCliConfig {
  const globals = context.globals();
  const loaded = loadConfig({ flagPath: globals.config, env: context.io.env });
  const config = { ...loaded.config, ...options.overrides };
  const level = (globals.logLevel ?? config.log.level) as LogLevel;
  const logger = createLogger({ level, fd: options.logsToStderr ? 2 : 1 });
  let endpoint: DockerEndpoint;
  try {
    endpoint = resolveDockerEndpointFromEnvironment(config, { flagHost: globals.host, env: context.io.env });
  } catch (error) {
    if (error instanceof DockerEndpointError) throw new CliError(error.message, EXIT_USAGE);
    throw error;
  }
  return { config, source: loaded.source, logger, endpoint };
}

export async function buildAgent(
  config: Config,
  logger: Logger,
  endpoint?: DockerEndpoint,
): Promise<AgentContext> {
  try {
    return await createAgentContext(config, logger, endpoint ? { dockerEndpoint: endpoint } : {});
  } catch (error) {
    if (error instanceof DockerUnavailableError || error instanceof UnsupportedDriverError) {
      throw new CliError(error.message, EXIT_FAILURE);
    }
    throw error;
  }
}
