/**
 * Real dockerd on btrfs with 100 running containers (`--storage-opt size=64M`, `sleep 1d`):
 *  - the agent's real path (built by the composition root: ExecaRunner, dockerode client, inventory,
 *    btrfs backend, reconciler, metrics) with the runner and the Docker client wrapped to count: pass wall,
 *    CPU (agent + its children + dockerd), processes and API calls; CPU per hour at the default 1 s;
 *  - `docker ps -s` and `docker system df` on the same daemon: wall, CLI CPU, dockerd CPU;
 *  - the naive way, run for real: per container `docker inspect` + `dmsetup table` + `dmsetup status`.
 */
import path from 'node:path';
import { createAgentContext } from '../src/agent/app.js';
import { ExecaRunner, type CommandResult, type CommandRunner, type CommandSpec } from '../src/exec/runner.js';
import { silentLogger } from '../src/log/logger.js';
import { benchConfig } from './lib/agent.js';
import type { BenchContainer, DockerHost } from './lib/host.js';
import { childrenCpuMs, fmt, median, pidCpuMs, selfCpuMs } from './lib/measure.js';
import type { ProcessCost } from './pass-cost.js';
import type { PartResult } from './lib/report.js';

/** Counts every process the agent starts. */
class CountingRealRunner implements CommandRunner {
  constructor(
    private readonly inner: CommandRunner,
    private readonly counter: { processes: number },
  ) {}
  run(spec: CommandSpec): Promise<CommandResult> {
    this.counter.processes += 1;
    return this.inner.run(spec);
  }
}

/** Counts every call on the Docker client (API calls; the event stream counts once). */
function countingDocker<T extends object>(inner: T, counter: { calls: number }): T {
  return new Proxy(inner, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        counter.calls += 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

interface Cost {
  wallMs: number;
  selfCpuMs: number;
  childCpuMs: number;
  dockerdCpuMs: number;
}

async function costOf(host: DockerHost, body: () => Promise<unknown>): Promise<Cost> {
  const pid = host.dockerdPid;
  const d0 = pidCpuMs(pid);
  const c0 = childrenCpuMs();
  const s0 = selfCpuMs();
  const t0 = performance.now();
  await body();
  return {
    wallMs: performance.now() - t0,
    selfCpuMs: selfCpuMs() - s0,
    childCpuMs: childrenCpuMs() - c0,
    dockerdCpuMs: pidCpuMs(pid) - d0,
  };
}

export interface RealDockerdOutput extends PartResult {
  dockerInspect: ProcessCost;
}

export async function runRealDockerd(
  host: DockerHost,
  containers: BenchContainer[],
  options: { passes: number },
): Promise<RealDockerdOutput> {
  const n = containers.length;
  // --- the agent's real path
  const stateDir = path.join(host.workDir, 'inproc-state');
  const config = benchConfig(stateDir, { docker: { socketPath: host.dockerd.socketPath } });
  const spawned = { processes: 0 };
  const api = { calls: 0 };
  const { reconciler, inventory } = await createAgentContext(config, silentLogger(), {
    wrapRunner: (execa) => new CountingRealRunner(execa, spawned),
    wrapDocker: (client) => countingDocker(client, api),
  });
  const apiBeforeStart = api.calls;
  const startCost = await costOf(host, () => inventory.start());
  const resyncCalls = api.calls - apiBeforeStart;
  for (let index = 0; index < 3; index += 1) await reconciler.runPass({});
  const passCosts: Cost[] = [];
  const p0 = spawned.processes;
  const a0 = api.calls;
  let seen = 0;
  for (let index = 0; index < options.passes; index += 1) {
    passCosts.push(
      await costOf(host, async () => {
        const report = await reconciler.runPass({});
        seen = report.containers.filter((container) => container.usage !== null).length;
      }),
    );
  }
  const processesPerPass = (spawned.processes - p0) / options.passes;
  const apiPerPass = (api.calls - a0) / options.passes;
  await reconciler.stop();
  await inventory.stop();
  const passWall = median(passCosts.map((cost) => cost.wallMs));
  const passSelf = median(passCosts.map((cost) => cost.selfCpuMs));
  const passChild = passCosts.reduce((sum, cost) => sum + cost.childCpuMs, 0) / passCosts.length;
  const passDockerd = passCosts.reduce((sum, cost) => sum + cost.dockerdCpuMs, 0) / passCosts.length;
  const passTotalCpu = passSelf + passChild + passDockerd;
  const intervalS = config.interval / 1000;
  const cpuSecondsPerHour = (passTotalCpu / 1000) * (3600 / intervalS);
  // resync every resyncInterval: add its cost per hour
  const resyncPerHour = 3600_000 / config.resyncInterval;
  const resyncCpuS =
    ((startCost.selfCpuMs + startCost.childCpuMs + startCost.dockerdCpuMs) / 1000) * resyncPerHour;
  process.stderr.write(`  real-dockerd: agent pass done\n`);

  // --- docker ps -s, docker ps, docker system df
  const runs = 3;
  const measureCli = async (args: string[]) => {
    const costs: Cost[] = [];
    for (let index = 0; index < runs; index += 1)
      costs.push(await costOf(host, () => host.docker(args, 600_000)));
    return {
      wallMs: median(costs.map((cost) => cost.wallMs)),
      cpuMs: median(costs.map((cost) => cost.childCpuMs + cost.selfCpuMs)),
      dockerdCpuMs: median(costs.map((cost) => cost.dockerdCpuMs)),
    };
  };
  const psSize = await measureCli(['ps', '-s']);
  const psPlain = await measureCli(['ps']);
  const systemDf = await measureCli(['system', 'df', '-v']);
  process.stderr.write(`  real-dockerd: docker ps -s done\n`);

  // --- the naive way, for real: per container docker inspect + dmsetup table + dmsetup status
  const dm = new ExecaRunner({ defaultTimeoutMs: 10_000 });
  const dmsetup = async (args: string[]) => {
    try {
      await dm.run({ tool: 'dmsetup', args, okExitCodes: [0, 1] });
    } catch {
      // no such device on this host: the process was still started and waited for
    }
  };
  const inspectCosts: Cost[] = [];
  const naive = await costOf(host, async () => {
    for (const container of containers) {
      inspectCosts.push(await costOf(host, () => host.docker(['inspect', container.id])));
      const device = `docker-254:0-15931-${container.id}`;
      await dmsetup(['table', device]);
      await dmsetup(['status', device]);
    }
  });
  process.stderr.write(`  real-dockerd: naive way done\n`);
  const dockerInspect: ProcessCost = {
    what: `docker inspect <id> (real dockerd, ${n} containers)`,
    wallMs: median(inspectCosts.map((cost) => cost.wallMs)),
    childCpuMs: inspectCosts.reduce((sum, cost) => sum + cost.childCpuMs, 0) / inspectCosts.length,
    parentCpuMs: inspectCosts.reduce((sum, cost) => sum + cost.selfCpuMs, 0) / inspectCosts.length,
    daemonCpuMs: inspectCosts.reduce((sum, cost) => sum + cost.dockerdCpuMs, 0) / inspectCosts.length,
    samples: inspectCosts.length,
  };
  const naiveCpu = naive.selfCpuMs + naive.childCpuMs + naive.dockerdCpuMs;

  const facts: PartResult['facts'] = {
    containers: n,
    observed: seen,
    passWallMs: passWall,
    passCpuMs: passTotalCpu,
    passAgentCpuMs: passSelf,
    processesPerPass,
    apiPerPass,
    resyncCalls,
    cpuSecondsPerHour: cpuSecondsPerHour + resyncCpuS,
    psSizeWallMs: psSize.wallMs,
    psSizeCpuMs: psSize.cpuMs + psSize.dockerdCpuMs,
    naiveWallMs: naive.wallMs,
    naiveCpuMs: naiveCpu,
    naiveProcesses: 3 * n,
  };
  const row = (
    what: string,
    wall: number,
    cpu: number,
    dockerdCpu: number,
    processes: string,
    calls: string,
  ) => [what, fmt(wall, 1), fmt(cpu, 1), fmt(dockerdCpu, 1), fmt(cpu + dockerdCpu, 1), processes, calls];
  return {
    dockerInspect,
    facts,
    section: {
      id: 'real-dockerd',
      title: `Real dockerd: ${n} running containers on btrfs`,
      how: [
        '`sudo npm run bench -- --only real-dockerd` (root: loop device, btrfs, dockerd)',
        `a private dockerd (bench/lib/dockerd.ts) with --storage-driver btrfs on a loop-mounted btrfs with quotas; ${n} busybox containers \`docker run -d --storage-opt size=64M ... sleep 1d\``,
        'agent: the shipped defaults (interval 1s, resyncInterval 5m), real ExecaRunner and dockerode client wrapped to count',
      ],
      tables: [
        {
          head: [
            'what',
            'wall ms (p50)',
            'CPU ms (caller + children)',
            'dockerd CPU ms',
            'total CPU ms',
            'processes',
            'Docker API calls',
          ],
          rows: [
            row(
              `agent pass (${seen}/${n} observed)`,
              passWall,
              passSelf + passChild,
              passDockerd,
              fmt(processesPerPass, 1),
              fmt(apiPerPass, 1),
            ),
            row(
              'agent inventory resync (start; every 5 min)',
              startCost.wallMs,
              startCost.selfCpuMs + startCost.childCpuMs,
              startCost.dockerdCpuMs,
              '0',
              String(resyncCalls),
            ),
            row(
              '`docker ps -s`',
              psSize.wallMs,
              psSize.cpuMs,
              psSize.dockerdCpuMs,
              '1',
              '1 (+ CLI version ping)',
            ),
            row('`docker ps` (no sizes)', psPlain.wallMs, psPlain.cpuMs, psPlain.dockerdCpuMs, '1', '1'),
            row('`docker system df -v`', systemDf.wallMs, systemDf.cpuMs, systemDf.dockerdCpuMs, '1', '1'),
            row(
              `naive: ${n} x (docker inspect + dmsetup table + dmsetup status)`,
              naive.wallMs,
              naive.selfCpuMs + naive.childCpuMs,
              naive.dockerdCpuMs,
              String(3 * n),
              String(n),
            ),
          ],
        },
        {
          head: ['agent CPU per hour at the default interval', 'value'],
          rows: [
            ['pass CPU (agent + btrfs child + dockerd), ms', fmt(passTotalCpu, 2)],
            ['passes per hour (interval 1 s; passes are spaced 1 s after the previous one ends)', '<= 3600'],
            ['pass CPU-seconds per hour', fmt(cpuSecondsPerHour, 1)],
            ['resync CPU-seconds per hour (12 resyncs)', fmt(resyncCpuS, 2)],
            [
              'total CPU-seconds per hour (share of one core)',
              `${fmt(cpuSecondsPerHour + resyncCpuS, 1)} (${fmt(((cpuSecondsPerHour + resyncCpuS) / 3600) * 100, 2)}%)`,
            ],
          ],
        },
      ],
      notes: [
        `Measured, all of it: ${options.passes} passes after 3 warm-up passes. Agent CPU is process.cpuUsage of the benchmark process (which runs the agent's classes in-process); children CPU is cutime+cstime from /proc/self/stat (10 ms ticks, so per-pass child CPU is an average over the passes); dockerd CPU is the daemon's utime+stime from /proc/<pid>/stat.`,
        "The naive way ran for real: the docker CLI against this daemon, and dmsetup through the agent's runner. This host has no device-mapper devices, so the dmsetup calls fail after starting (their cost is the process cost; with devices they cost at least as much).",
        'CPU per hour = pass CPU x 3600 / interval (an upper bound: the next pass starts 1 s after the previous ends) + resync cost x 12.',
      ],
    },
  };
}
