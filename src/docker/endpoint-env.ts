/**
 * The effectful edge of ./endpoint.ts: feeds the pure resolver this process's environment, home
 * directory and files, and the configuration's `docker.host` / `docker.socketPath`.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { resolveDockerEndpoint, type DockerEndpoint } from './endpoint.js';

export { describeEndpoint, type DockerEndpoint } from './endpoint.js';

function readTextFile(filePath: string): string | null {
  try {
    return readFileSync(filePath, 'utf8');
  } catch {
    return null;
  }
}

export function resolveDockerEndpointFromEnvironment(
  config: { docker: { host?: string | undefined; socketPath?: string | undefined } },
  options: { flagHost?: string | undefined; env?: NodeJS.ProcessEnv } = {},
): DockerEndpoint {
  const env = options.env ?? process.env;
  return resolveDockerEndpoint({
    flagHost: options.flagHost,
    configHost: config.docker.host,
    configSocketPath: config.docker.socketPath,
    env,
    homeDir: env['HOME'] || homedir(),
    readFile: readTextFile,
  });
}
