/**
 * Memory: RSS of the agent's real graph (as in pass-cost) over many passes at 1000 containers,
 * sampled every `sampleEvery` passes; the trend is the least-squares slope after the first sample.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startBenchAgent } from './lib/agent.js';
import { collectGarbage, fmt, slope } from './lib/measure.js';
import { btrfsWorld, dmWorld } from './lib/replicate.js';
import type { PartResult } from './lib/report.js';

const MiB = 1024 ** 2;

/** One checkpoint: RSS and heap as the process has them, then heap and external after a full GC. */
export interface MemorySample {
  passes: number;
  rssMiB: number;
  heapMiB: number;
  heapAfterGcMiB: number;
  externalMiB: number;
  seconds: number;
}

export async function runMemory(options: {
  containers: number;
  passes: number;
  sampleEvery: number;
  driver: 'devicemapper' | 'btrfs';
  /** Progress lines on stderr (the bench); off in the CI check. */
  progress?: boolean;
}): Promise<PartResult & { samples: MemorySample[] }> {
  const base = mkdtempSync(path.join(tmpdir(), 'agmem-'));
  const world =
    options.driver === 'btrfs' ? btrfsWorld(options.containers, base) : dmWorld(options.containers, base);
  const agent = await startBenchAgent(world, { dryRun: true });
  const samples: MemorySample[] = [];
  const t0 = performance.now();
  const sample = (passes: number) => {
    const usage = process.memoryUsage();
    collectGarbage();
    const retained = process.memoryUsage();
    samples.push({
      passes,
      rssMiB: usage.rss / MiB,
      heapMiB: usage.heapUsed / MiB,
      heapAfterGcMiB: retained.heapUsed / MiB,
      externalMiB: retained.external / MiB,
      seconds: (performance.now() - t0) / 1000,
    });
  };
  sample(0);
  for (let pass = 1; pass <= options.passes; pass += 1) {
    await agent.pass();
    if (pass % options.sampleEvery === 0) {
      sample(pass);
      if (options.progress ?? true)
        process.stderr.write(`  memory: ${pass} passes, rss ${fmt(samples.at(-1)?.rssMiB ?? 0)} MiB\n`);
    }
  }
  await agent.stop();
  rmSync(base, { recursive: true, force: true });
  const trend = samples.slice(1);
  const rssSlope = slope(
    trend.map((entry) => entry.passes),
    trend.map((entry) => entry.rssMiB),
  );
  const heapSlope = slope(
    trend.map((entry) => entry.passes),
    trend.map((entry) => entry.heapAfterGcMiB),
  );
  const final = samples.at(-1);
  const bareNodeRssMiB =
    Number(
      execFileSync(process.execPath, ['-e', 'console.log(process.memoryUsage().rss)'], { encoding: 'utf8' }),
    ) / MiB;
  return {
    samples,
    facts: {
      passes: options.passes,
      containers: options.containers,
      finalRssMiB: final?.rssMiB ?? null,
      maxRssMiB: Math.max(...samples.map((entry) => entry.rssMiB)),
      startRssMiB: samples[0]?.rssMiB ?? null,
      bareNodeRssMiB,
      rssSlopeMiBPer1000: rssSlope * 1000,
      heapSlopeMiBPer1000: heapSlope * 1000,
      finalHeapAfterGcMiB: final?.heapAfterGcMiB ?? null,
      execArgv: process.execArgv.join(' '),
    },
    section: {
      id: 'memory',
      title: `Memory over ${options.passes} passes at ${options.containers} containers (${options.driver})`,
      how: [
        `\`npm run bench -- --only memory --memory-passes ${options.passes}\``,
        'the agent graph of pass-cost (real backend, inventory, reconciler, history, journal, metrics; replicated real outputs; dry run), passes back to back in one process',
      ],
      tables: [
        {
          head: ['passes', 'elapsed s', 'RSS MiB', 'heap used MiB', 'heap after GC MiB', 'external MiB'],
          rows: samples.map((entry) => [
            String(entry.passes),
            fmt(entry.seconds, 0),
            fmt(entry.rssMiB, 1),
            fmt(entry.heapMiB, 1),
            fmt(entry.heapAfterGcMiB, 1),
            fmt(entry.externalMiB, 1),
          ]),
        },
        {
          head: ['trend (least squares, after the first sample)', 'MiB per 1000 passes'],
          rows: [
            ['RSS', fmt(rssSlope * 1000, 2)],
            ['heap after GC', fmt(heapSlope * 1000, 2)],
          ],
        },
      ],
      notes: [
        `For scale: a bare \`node -e\` process has an RSS of ${fmt(bareNodeRssMiB, 1)} MiB on this machine; the sample at 0 passes is after the inventory start with ${options.containers} containers.`,
        'Passes run back to back, with a virtual clock advanced by the 1 s interval before each, so the fill-rate history holds what it holds in production (20 s window).',
        'Measured: process.memoryUsage() of the benchmark process, which holds the whole agent graph and the replicated inputs (the 1000 recorded inspect JSONs, the replicated command outputs), so it slightly overstates the agent alone. "Heap used" includes garbage not yet collected; "heap after GC" is after a full collection at the checkpoint (what the graph retains), and the trend is taken on it.',
      ],
    },
  };
}
