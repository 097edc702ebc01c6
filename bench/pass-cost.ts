/**
 * Pass cost vs container count (10, 100, 1000), devicemapper and btrfs: the real backend, parsers,
 * inventory, policy, history, journal and metrics, fed with real recorded outputs replicated to the
 * count (bench/lib/replicate.ts) through a runner that counts processes and a Docker API that counts
 * calls. Measured per pass: wall time, CPU time of the agent process, processes, Docker API calls.
 *
 * Real process costs (the fake runner spawns nothing) are measured separately on this machine and
 * added to project a real pass; the naive way (per container `docker inspect` + `dmsetup table` +
 * `dmsetup status`) is computed from measured per-process costs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ExecaRunner, type CommandSpec } from '../src/exec/runner.js';
import { startBenchAgent } from './lib/agent.js';
import { childrenCpuMs, fmt, median, percentile, selfCpuMs } from './lib/measure.js';
import { btrfsWorld, dmWorld, type World } from './lib/replicate.js';
import type { PartResult } from './lib/report.js';

export interface ProcessCost {
  /** What was run. */
  what: string;
  wallMs: number;
  /** CPU of the child process itself (cutime+cstime, 10 ms ticks, averaged over the samples). */
  childCpuMs: number;
  /** CPU of the launching node process (spawn, pipes, parsing the result). */
  parentCpuMs: number;
  /** CPU of dockerd per call, when the call goes to a daemon we can see. */
  daemonCpuMs?: number;
  samples: number;
}

/** Measures the real cost of one process started through the agent's own runner. */
export async function measureRunnerProcess(spec: CommandSpec, samples: number): Promise<ProcessCost> {
  const runner = new ExecaRunner({ defaultTimeoutMs: 10_000 });
  const walls: number[] = [];
  const childBefore = childrenCpuMs();
  const selfBefore = selfCpuMs();
  for (let index = 0; index < samples; index += 1) {
    const started = performance.now();
    try {
      await runner.run({ ...spec, okExitCodes: [0, 1] });
    } catch {
      // a failing command still cost a process
    }
    walls.push(performance.now() - started);
  }
  return {
    what: `${spec.tool} ${spec.args.join(' ')}`,
    wallMs: median(walls),
    childCpuMs: (childrenCpuMs() - childBefore) / samples,
    parentCpuMs: (selfCpuMs() - selfBefore) / samples,
    samples,
  };
}

export interface PassCostOptions {
  counts: number[];
  drivers: Array<'devicemapper' | 'btrfs'>;
  passesFor: (n: number) => number;
  /** The agent's own per-process cost (a real `dmsetup`/`btrfs` through ExecaRunner). */
  agentProcess: ProcessCost;
  /** Naive way's processes, measured: docker inspect on a real dockerd (null: not measured). */
  dockerInspect: ProcessCost | null;
  dmsetupCall: ProcessCost;
}

interface Row {
  driver: string;
  n: number;
  wallMs: number;
  wallP99Ms: number;
  cpuMs: number;
  processes: number;
  apiCalls: number;
  resyncApiCalls: number;
  startupProcesses: number;
}

async function measureWorld(world: World, passes: number): Promise<Row> {
  const agent = await startBenchAgent(world, { dryRun: true });
  const resyncApiCalls = agent.startApiCalls;
  // first passes: subvolume list / filesystem show (btrfs), mount-id reads, history warm-up
  const warmup = Math.min(5, passes);
  const processesBefore = world.runner.processes;
  for (let index = 0; index < warmup; index += 1) await agent.pass();
  const startupProcesses = world.runner.processes - processesBefore;
  const walls: number[] = [];
  const cpus: number[] = [];
  const processes0 = world.runner.processes;
  const api0 = agent.docker.calls;
  for (let index = 0; index < passes; index += 1) {
    const cpu0 = selfCpuMs();
    const t0 = performance.now();
    const report = await agent.pass();
    walls.push(performance.now() - t0);
    cpus.push(selfCpuMs() - cpu0);
    if (report.containers.length !== world.containers.length)
      throw new Error(`pass saw ${report.containers.length} of ${world.containers.length} containers`);
    const unobserved = report.containers.filter((container) => container.usage === null);
    if (unobserved.length > 0 || report.errors.length > 0)
      throw new Error(
        `bench: ${unobserved.length} containers unobserved, errors: ${JSON.stringify(report.errors)} ${JSON.stringify(unobserved[0]?.decision)}`,
      );
  }
  const row: Row = {
    driver: world.driver,
    n: world.containers.length,
    wallMs: median(walls),
    wallP99Ms: percentile(walls, 99),
    cpuMs: median(cpus),
    processes: (world.runner.processes - processes0) / passes,
    apiCalls: (agent.docker.calls - api0) / passes,
    resyncApiCalls,
    startupProcesses: startupProcesses - warmup * ((world.runner.processes - processes0) / passes),
  };
  await agent.stop();
  return row;
}

export async function runPassCost(options: PassCostOptions): Promise<PartResult> {
  const rows: Row[] = [];
  for (const driver of options.drivers) {
    for (const n of options.counts) {
      const base = mkdtempSync(path.join(tmpdir(), 'agbench-'));
      try {
        const world = driver === 'btrfs' ? btrfsWorld(n, base) : dmWorld(n, base);
        rows.push(await measureWorld(world, options.passesFor(n)));
        process.stderr.write(`  pass-cost ${driver} n=${n} done\n`);
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    }
  }
  const agentProcCpu = options.agentProcess.childCpuMs + options.agentProcess.parentCpuMs;
  const inspect = options.dockerInspect;
  const inspectCpu = inspect ? inspect.childCpuMs + inspect.parentCpuMs + (inspect.daemonCpuMs ?? 0) : null;
  const dmCall = options.dmsetupCall.childCpuMs + options.dmsetupCall.parentCpuMs;
  const naiveCpuPerContainer = inspectCpu === null ? null : inspectCpu + 2 * dmCall;
  const naiveWallPerContainer = inspect ? inspect.wallMs + 2 * options.dmsetupCall.wallMs : null;

  const facts: PartResult['facts'] = {};
  const table = {
    head: [
      'driver',
      'containers',
      'pass wall p50 ms',
      'pass wall p99 ms',
      'pass CPU p50 ms',
      'processes/pass',
      'API calls/pass',
      'API calls/resync',
      'projected real pass CPU ms',
      'naive processes',
      'naive CPU ms (computed)',
      'naive wall ms (computed, serial)',
      'process ratio',
      'CPU ratio',
    ],
    rows: rows.map((row) => {
      const projectedCpu = row.cpuMs + row.processes * agentProcCpu;
      const naiveProcesses = 3 * row.n;
      const naiveCpu = naiveCpuPerContainer === null ? NaN : row.n * naiveCpuPerContainer;
      const naiveWall = naiveWallPerContainer === null ? NaN : row.n * naiveWallPerContainer;
      const key = `${row.driver}.${row.n}`;
      facts[`${key}.wallMs`] = row.wallMs;
      facts[`${key}.cpuMs`] = row.cpuMs;
      facts[`${key}.projectedCpuMs`] = projectedCpu;
      facts[`${key}.processes`] = row.processes;
      facts[`${key}.apiCalls`] = row.apiCalls;
      facts[`${key}.naiveProcesses`] = naiveProcesses;
      facts[`${key}.naiveCpuMs`] = naiveCpu;
      return [
        row.driver,
        String(row.n),
        fmt(row.wallMs, 2),
        fmt(row.wallP99Ms, 2),
        fmt(row.cpuMs, 2),
        fmt(row.processes, 1),
        fmt(row.apiCalls, 1),
        String(row.resyncApiCalls),
        fmt(projectedCpu, 1),
        row.driver === 'devicemapper' ? String(naiveProcesses) : '-',
        row.driver === 'devicemapper' ? fmt(naiveCpu, 0) : '-',
        row.driver === 'devicemapper' ? fmt(naiveWall, 0) : '-',
        row.driver === 'devicemapper' ? `${fmt(naiveProcesses / Math.max(row.processes, 1e-9), 0)}x` : '-',
        row.driver === 'devicemapper' ? `${fmt(naiveCpu / projectedCpu, 0)}x` : '-',
      ];
    }),
  };
  const costTable = {
    head: [
      'process (real, this machine)',
      'wall p50 ms',
      'child CPU ms',
      'node CPU ms',
      'dockerd CPU ms',
      'samples',
    ],
    rows: [options.agentProcess, options.dmsetupCall, ...(inspect ? [inspect] : [])].map((cost) => [
      cost.what,
      fmt(cost.wallMs, 1),
      fmt(cost.childCpuMs, 2),
      fmt(cost.parentCpuMs, 2),
      cost.daemonCpuMs === undefined ? '-' : fmt(cost.daemonCpuMs, 2),
      String(cost.samples),
    ]),
  };
  return {
    facts,
    section: {
      id: 'pass-cost',
      title: 'Pass cost vs container count',
      how: [
        '`npm run bench -- --only pass-cost` (in-process; no root needed for this part)',
        'agent config: the shipped defaults with `dryRun: true` (no usage is above the threshold in the recorded outputs, so no grow would be planned anyway: this is the idle steady-state pass)',
      ],
      tables: [table, costTable],
      notes: [
        'Measured: wall and CPU (process.cpuUsage of the agent process) of `Reconciler.runPass` with the real backend, parsers, inventory, policy, history, journal and metrics; processes are counted by the fake runner, Docker API calls by the fake API (after the inventory start, whose list + inspect calls are the "API calls/resync" column, repeated every `resyncInterval` = 5 min, i.e. every 300 passes at the default 1 s interval).',
        'Inputs: real recorded outputs replicated to N (btrfs: test/fixtures/btrfs; devicemapper: the reference captures of docker-dm-lvm, see bench/lib/replicate.ts). btrfs reads 6 real files per container per pass from a sysfs-shaped temporary tree and one mount-id file per new container; devicemapper makes one real statfs(2) per container.',
        'The fake runner spawns nothing: "projected real pass CPU" adds processes/pass x the measured cost of one real process started through the agent\'s ExecaRunner (second table).',
        'Naive way, devicemapper: 3 processes per container (docker inspect + dmsetup table + dmsetup status). Its process count is exact; its CPU and wall are COMPUTED as N x (measured `docker inspect` cost incl. dockerd CPU + 2 x measured `dmsetup table` cost). The dmsetup calls run on a host without device-mapper devices (they fail after opening /dev/mapper/control), so their cost is the process cost, a lower bound.',
      ],
    },
  };
}
