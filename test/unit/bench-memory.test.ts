/**
 * "RSS flat over 10,000 passes" (issue 14), the short CI form of `npm run bench -- --only memory`:
 * the agent's real graph over the replicated btrfs world, passes back to back on the virtual clock
 * (bench/memory.ts), and what the graph retains after a full GC must not grow with the pass count.
 * Memory only: no timing is asserted (benchmarks never assert timings).
 */
import { describe, expect, it } from 'vitest';
import { runMemory } from '../../bench/memory.js';

const CONTAINERS = 50;
const PASSES = 1200;
const SAMPLE_EVERY = 200;
/**
 * Growth allowed between the first checkpoint (warm: inventory, history windows full) and the last:
 * 1000 passes later. Control, run by hand: a leak of one 300-number array per pass (~2.4 KiB,
 * ~50 bytes per container and pass) pushed in bench/memory.ts's loop fails it (2.44 MiB grown).
 */
const MAX_RETAINED_GROWTH_MIB = 2;

describe('memory over many passes (bench/memory.ts, short)', () => {
  it(`retains no more after ${PASSES} passes at ${CONTAINERS} containers than after ${SAMPLE_EVERY}`, async () => {
    const result = await runMemory({
      containers: CONTAINERS,
      passes: PASSES,
      sampleEvery: SAMPLE_EVERY,
      driver: 'btrfs',
      progress: false,
    });
    const checkpoints = result.samples.filter((sample) => sample.passes >= SAMPLE_EVERY);
    expect(checkpoints.map((sample) => sample.passes)).toEqual([200, 400, 600, 800, 1000, 1200]);
    const first = checkpoints[0]?.heapAfterGcMiB ?? NaN;
    const last = checkpoints.at(-1)?.heapAfterGcMiB ?? NaN;
    expect(first).toBeGreaterThan(0);
    expect(last - first).toBeLessThan(MAX_RETAINED_GROWTH_MIB);
  }, 300_000);
});
