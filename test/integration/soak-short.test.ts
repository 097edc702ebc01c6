/**
 * The short soak, in CI: a fixed seed set of the soak driver (soak/driver.ts) against a real
 * private dockerd 20.10 on a real loop btrfs with qgroups and the real built agent, each seed a
 * fixed operation count (`--ops`, so CI replays exactly the same operations whatever the machine's
 * speed). The seeds were chosen so that together their operations walk every fault kind: dockerd
 * restart, agent SIGTERM and SIGKILL, event-stream cuts, the pool filled to its reserve, a label
 * changed by re-creating a container, container restarts and CLI grows. Any violated invariant
 * fails the test, with the operations to replay it.
 *
 * Then the control: the first seed again with no agent at all. Writers must fail at their limits
 * below maxSize while the pool has room (write-error violations): the rig bites, so zero
 * violations with the agent mean something.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, expect, it } from 'vitest';
import {
  DEFAULT_SOAK_OPTIONS,
  FAULT_KINDS,
  runSoak,
  type SoakOptions,
  type SoakResult,
} from '../../soak/driver.js';
import { formatSoakResult } from '../../soak/report.js';
import { describeWith, prereqs } from '../support/prereqs.js';
import { REPO_ROOT } from '../support/repo-root.js';

const execFileAsync = promisify(execFile);

/** Seeds and operation counts of the CI soak (see the file comment for why these). */
export const SHORT_SOAK_SEEDS = [6, 38] as const;
const OPS_PER_SEED = 40;
/** The control replays the first seed's first 30 operations: 5 of its writes go past their container's limit. */
const CONTROL_OPS = 30;

const options = (seed: number, agent: boolean, ops: number): SoakOptions => ({
  ...DEFAULT_SOAK_OPTIONS,
  seed,
  minutes: 2,
  ops,
  agent,
  minContainers: 8,
  maxContainers: 20,
  poolBytes: 4 * 1024 ** 3,
  log: (line) => console.log(`[soak ${seed}${agent ? '' : ' control'}] ${line}`),
});

describeWith(
  [prereqs.root, prereqs.dockerd, prereqs.busybox, prereqs.btrfs],
  'short soak (real dockerd, btrfs, agent)',
  () => {
    const results: SoakResult[] = [];

    beforeAll(async () => {
      try {
        await execFileAsync('npm', ['run', 'build', '--silent'], { cwd: REPO_ROOT, timeout: 300_000 });
      } catch (error) {
        const failure = error as { stdout?: string; stderr?: string };
        throw new Error(`npm run build failed:\n${failure.stdout ?? ''}${failure.stderr ?? ''}`);
      }
    }, 320_000);

    for (const seed of SHORT_SOAK_SEEDS) {
      it(`seed ${seed}: ${OPS_PER_SEED} operations, no invariant violated`, async () => {
        const result = await runSoak(options(seed, true, OPS_PER_SEED));
        results.push(result);
        console.log(formatSoakResult(result));
        expect(result.opsRun).toBe(OPS_PER_SEED);
        expect(result.containersStarted).toBeGreaterThan(0);
        expect(result.writes.total).toBeGreaterThan(0);
        expect(
          result.violationSamples.map((violation) => `${violation.invariant}: ${violation.detail}`),
          `replay: npm run soak -- --seed ${seed} --ops ${OPS_PER_SEED} --min-containers 8 --max-containers 20 --pool-gib 4 (logs: ${result.logDir})`,
        ).toEqual([]);
        expect(result.violationsTotal).toBe(0);
      }, 900_000);
    }

    it('together the seeds injected every fault kind and the agent grew containers', () => {
      expect(results).toHaveLength(SHORT_SOAK_SEEDS.length);
      for (const kind of FAULT_KINDS) {
        expect(
          results.reduce((sum, result) => sum + result.faults[kind], 0),
          kind,
        ).toBeGreaterThan(0);
      }
      expect(results.reduce((sum, result) => sum + result.grows.seenInQgroups, 0)).toBeGreaterThan(0);
    });

    it('control: the same operations with no agent make writers fail below maxSize (the rig bites)', async () => {
      const result = await runSoak(options(SHORT_SOAK_SEEDS[0], false, CONTROL_OPS));
      console.log(formatSoakResult(result));
      expect(result.violations['write-error']).toBeGreaterThan(0);
      expect(result.grows.seenInQgroups).toBe(0);
    }, 900_000);
  },
);
