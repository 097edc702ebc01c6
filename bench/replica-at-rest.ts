/**
 * The in-process replica at rest (issue 14): the agent's real graph (createAgentContext, as in
 * pass-cost and memory) over a replicated btrfs world of `containers` idle containers, but run the
 * way the daemon runs, on the real clock: `reconciler.start()` (a pass every interval, the fill
 * guard's looks, the journal) and the metrics registry rendered every 15 s as a scrape would.
 * The runner and the Docker API are counting fakes (no process, no daemon), so the CPU measured
 * is the agent's own Node work per second at rest. Nothing here asserts timings.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { CountingDockerApi, benchConfig } from './lib/agent.js';
import { fmt, selfCpuMs, sleep } from './lib/measure.js';
import { btrfsWorld } from './lib/replicate.js';
import type { PartResult } from './lib/report.js';
import { createAgentContext } from '../src/agent/app.js';
import { silentLogger } from '../src/log/logger.js';
import { createBtrfsBackend } from '../src/storage/btrfs/index.js';

const MiB = 1024 ** 2;

export interface ReplicaAtRestOptions {
  containers: number;
  label: string;
  windowMs: number;
  settleMs: number;
}

export async function runReplicaAtRest(options: ReplicaAtRestOptions): Promise<PartResult> {
  const base = mkdtempSync(path.join(tmpdir(), 'agrest-'));
  const world = btrfsWorld(options.containers, base);
  const config = benchConfig(world.stateDir);
  const docker = new CountingDockerApi(world.dockerInfo, world.inspectJson);
  const context = await createAgentContext(config, silentLogger(), {
    wrapDocker: () => docker,
    wrapRunner: () => world.runner,
    createBackend: (_dockerInfo, deps) =>
      createBtrfsBackend(deps, world.backendOptions as { sysfsRoot: string }),
  });
  const { inventory, reconciler, metrics } = context;
  let scrapes = 0;
  const scrape = async () => {
    await metrics.registry.metrics();
    scrapes += 1;
  };
  try {
    await inventory.start();
    await reconciler.start();
    const scrapeTimer = setInterval(() => void scrape(), 15_000);
    await scrape();
    await sleep(options.settleMs);
    global.gc?.();
    const loadStart = readLoad();
    const cpuStart = selfCpuMs();
    const processesStart = world.runner.processes;
    const apiStart = docker.calls;
    const looksStart = reconciler.guardStats?.looks ?? 0;
    const startedAt = performance.now();
    const rss: number[] = [process.memoryUsage().rss];
    const rssTimer = setInterval(() => rss.push(process.memoryUsage().rss), 5_000);
    await sleep(options.windowMs);
    clearInterval(rssTimer);
    clearInterval(scrapeTimer);
    const cpuMs = selfCpuMs() - cpuStart;
    const windowMs = performance.now() - startedAt;
    rss.push(process.memoryUsage().rss);
    const loadEnd = readLoad();
    const cpuPercent = (cpuMs / windowMs) * 100;
    const guard = reconciler.guardStats;
    const looks = (guard?.looks ?? 0) - looksStart;
    const rssMax = Math.max(...rss) / MiB;
    const rssEnd = (rss.at(-1) ?? NaN) / MiB;
    const heapMiB = process.memoryUsage().heapUsed / MiB;
    const seconds = windowMs / 1000;
    return {
      section: {
        id: 'replica-at-rest',
        title: `The in-process replica at rest: ${options.containers} idle containers (btrfs), real clock`,
        how: [
          `createAgentContext over btrfsWorld(${options.containers}) (recorded qgroup show, subvolume list, sysfs counters and inspect JSON, replicated); defaults with private state paths; reconciler.start() on the real clock; the registry rendered every 15 s`,
          `${fmt(options.settleMs / 1000, 0)} s to settle, then a ${fmt(seconds, 0)} s window; load average ${loadStart} at its start, ${loadEnd} at its end`,
          `Node flags of the bench process: ${process.execArgv.join(' ') || 'none'} (run it as \`node --max-semi-space-size=1 dist/bench/run.js\` to measure with the shipped unit's NODE_OPTIONS)`,
        ],
        tables: [
          {
            head: [
              'containers',
              'CPU (share of one core)',
              'RSS max (MiB)',
              'RSS end (MiB)',
              'heap used (MiB)',
              'processes / s',
              'Docker API calls / s',
              'guard looks / s',
            ],
            rows: [
              [
                String(options.containers),
                `${fmt(cpuPercent, 3)}%`,
                fmt(rssMax, 1),
                fmt(rssEnd, 1),
                fmt(heapMiB, 1),
                fmt((world.runner.processes - processesStart) / seconds, 2),
                fmt((docker.calls - apiStart) / seconds, 2),
                fmt(looks / seconds, 1),
              ],
            ],
          },
        ],
        notes: [
          'CPU is process.cpuUsage of the benchmark process over the window (it runs nothing else then); the processes the agent would start are counted, not run (their cost is in pass-cost).',
          `Guarded containers at the end: ${guard?.guarded ?? 'guard off'}; scrapes ${scrapes}.`,
        ],
      },
      facts: {
        label: options.label,
        nodeFlags: process.execArgv.join(' '),
        containers: options.containers,
        windowSeconds: seconds,
        loadStart,
        loadEnd,
        cpuPercent,
        rssMaxMiB: rssMax,
        rssEndMiB: rssEnd,
        heapUsedMiB: heapMiB,
        guardLooksPerSecond: looks / seconds,
        processesPerSecond: (world.runner.processes - processesStart) / seconds,
      },
    };
  } finally {
    await reconciler.stop();
    await inventory.stop();
    docker.close();
    rmSync(base, { recursive: true, force: true });
  }
}

function readLoad(): string {
  return os
    .loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');
}
