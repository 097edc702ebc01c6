import type { Command } from 'commander';
import { stateDirOf } from '../../agent/app.js';
import { loadConfig } from '../../config/load.js';
import { DockerClient } from '../../docker/client.js';
import type { DockerInfo } from '../../docker/model.js';
import { doctorJson, renderChecklist, runDoctor } from '../../doctor/run-doctor.js';
import { hostServable } from '../../doctor/checks.js';
import { runDataFilesystemChecks } from '../../doctor/data-filesystem-checks.js';
import { runReclaimChecks } from '../../doctor/reclaim-checks.js';
import { ExecaRunner } from '../../exec/runner.js';
import { silentLogger } from '../../log/logger.js';
import { UnsupportedDriverError, createBackendFor } from '../../storage/select.js';
import type { BackendDeps, StorageBackend } from '../../storage/types.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../errors.js';
import { DockerEndpointError, describeEndpoint, type DockerEndpoint } from '../../docker/endpoint.js';
import { resolveDockerEndpointFromEnvironment } from '../../docker/endpoint-env.js';
import type { CliContext } from '../context.js';

/**
 * The backend whose `doctor()` adds the driver's own checks, from the agent's one driver→backend
 * mapping. An unsupported driver has no backend: the generic "storage driver supported" check
 * already names it with a fix.
 */
async function backendFor(
  info: DockerInfo,
  deps: Omit<BackendDeps, 'dockerInfo'>,
): Promise<StorageBackend | null> {
  try {
    return await createBackendFor(info, { ...deps, dockerInfo: info });
  } catch (error) {
    if (error instanceof UnsupportedDriverError) return null;
    throw error;
  }
}

export function registerDoctorCommand(program: Command, context: CliContext): void {
  program
    .command('doctor')
    .description('check that this host can be served and print a checklist with a fix for each failure')
    .option('--json', 'print as JSON')
    .action(async (options: { json?: boolean }) => {
      const { config } = loadConfig({ flagPath: context.globals().config, env: context.io.env });
      const runner = new ExecaRunner({ binaries: config.binaries, defaultTimeoutMs: config.commandTimeout });
      let endpoint: DockerEndpoint;
      try {
        endpoint = resolveDockerEndpointFromEnvironment(config, {
          flagHost: context.globals().host,
          env: context.io.env,
        });
      } catch (error) {
        if (error instanceof DockerEndpointError) throw new CliError(error.message, EXIT_USAGE);
        throw error;
      }
      const docker = new DockerClient({ endpoint, timeoutMs: config.docker.timeout });
      const stateDir = stateDirOf(config);
      const result = await runDoctor({
        docker,
        // a tcp:// endpoint has no socket file: the address stands in (its socket check then fails plainly)
        socketPath: endpoint.kind === 'unix' ? endpoint.socketPath : describeEndpoint(endpoint),
        binaryPath: (tool) => runner.binaryPath(tool),
        binaryOverrides: config.binaries,
        stateDir,
        metrics: {
          enabled: config.metrics.enabled,
          listen: config.metrics.listen,
          webConfigFile: config.metrics.webConfigFile,
        },
        createBackend: (info) =>
          backendFor(info, {
            runner,
            docker,
            logger: silentLogger(),
            stateDir,
            commandTimeoutMs: config.commandTimeout,
          }),
      });
      let cannotGrowReason: string | null = null;
      if (config.dataFilesystem.enabled) {
        const binaryPath = (tool: Parameters<typeof runner.binaryPath>[0]) => runner.binaryPath(tool);
        const dataFsChecks = await runDataFilesystemChecks({ config, docker, runner, binaryPath, stateDir });
        result.checks.push(...dataFsChecks);
        if (dataFsChecks.some((check) => check.name === 'data filesystem can grow' && !check.ok))
          cannotGrowReason = 'see "data filesystem can grow"';
        result.ok = hostServable(result.checks);
      }
      result.checks.push(...(await runReclaimChecks({ config, docker, cannotGrowReason })));
      result.ok = hostServable(result.checks);
      context.io.stdout.write(options.json ? doctorJson(result) : renderChecklist(result));
      if (!result.ok) {
        const where = options.json ? 'see "checks"' : 'see the fixes above';
        throw new CliError(`doctor: this host cannot be served (${where})`, EXIT_FAILURE);
      }
    });
}
