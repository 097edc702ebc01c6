/**
 * The fill race, on real btrfs: a container created with a 512 MiB limit runs a writer that
 * writes 3 GiB as fast as it can (`dd bs=1M`, no sleeps) while `docker-autogrow run` runs with its
 * default policy, interval and fill guard against a private dockerd. The writer must see zero
 * write errors.
 *
 * An unthrottled `dd` writes into the page cache at up to ~2.8 GiB/s on an idle machine and can
 * fill 512 MiB in ~180 ms, between two 1 s passes: what wins the race is the fill guard
 * (src/agent/guard.ts), which re-reads a container this small every ~60 ms from sysfs and hands
 * it to the policy as soon as it would fill before the next pass.
 *
 * Measured and printed as JSON (also written to $AUTOGROW_FILL_RACE_OUT, default
 * <tmpdir>/docker-autogrow-fill-race.json): the writer's rate, the number of grows, and the
 * largest gap between a threshold crossing and the grow that answered it. Crossings are measured
 * independently of the agent, by sampling the qgroup's live counters in sysfs every 20 ms
 * (referenced + reserved against max_referenced), and cross-checked with the agent's own
 * 'threshold crossed' / 'grow succeeded' log lines.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ShippedAgent } from '../support/agent-process.js';
import { LoopBtrfs, TestDockerd } from '../support/dockerd.js';
import { freePort } from '../support/ports.js';
import { describeWith, prereqs } from '../support/prereqs.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 ** 2;
const CHECKOUT = path.resolve(import.meta.dirname, '..', '..');
const WRITE_MIB = 3072;
const START_LIMIT = '512M';
const DEFAULT_THRESHOLD = 0.85;

interface Sample {
  atMs: number;
  usedBytes: number;
  limitBytes: number;
}

describeWith(
  [prereqs.root, prereqs.dockerd, prereqs.busybox, prereqs.btrfs],
  'fill race on real btrfs',
  () => {
    const btrfs = new LoopBtrfs(8 * 1024 ** 3);
    const workDir = mkdtempSync(path.join(tmpdir(), 'agrace-'));
    let dockerd: TestDockerd;
    let agent: ShippedAgent | null = null;

    beforeAll(async () => {
      try {
        await execFileAsync('npm', ['run', 'build', '--silent'], { cwd: CHECKOUT, timeout: 300_000 });
      } catch (error) {
        const failure = error as { stdout?: string; stderr?: string };
        throw new Error(`npm run build failed:\n${failure.stdout ?? ''}${failure.stderr ?? ''}`);
      }
      await btrfs.create();
      dockerd = new TestDockerd({ storageDriver: 'btrfs', dataRoot: btrfs.mountPoint });
      await dockerd.start();
    });

    afterAll(async () => {
      await agent?.stop();
      await dockerd?.destroy();
      await btrfs.destroy();
      rmSync(workDir, { recursive: true, force: true });
    });

    it('a 3 GiB writer in a 512 MiB container finishes without a write error', async () => {
      const image = await dockerd.ensureBusyboxImage();
      const id = (
        await dockerd.cli([
          'run',
          '-d',
          '--name',
          'race',
          '--storage-opt',
          `size=${START_LIMIT}`,
          image,
          'sleep',
          '1d',
        ])
      ).trim();
      const mountId = readFileSync(
        path.join(btrfs.mountPoint, 'image', 'btrfs', 'layerdb', 'mounts', id, 'mount-id'),
        'utf8',
      );
      const { stdout: list } = await execFileAsync('/bin/btrfs', ['subvolume', 'list', btrfs.mountPoint]);
      const subvolumeId = list
        .split('\n')
        .find((line) => line.endsWith(` path btrfs/subvolumes/${mountId}`))
        ?.split(' ')[1];
      const { stdout: show } = await execFileAsync('/bin/btrfs', ['filesystem', 'show', btrfs.mountPoint]);
      const fsUuid = /uuid: (\S+)/.exec(show)?.[1];
      const qgroupDir = `/sys/fs/btrfs/${fsUuid}/qgroups/0_${subvolumeId}`;
      const counter = (name: string) => Number(readFileSync(path.join(qgroupDir, name), 'utf8'));

      // the agent, exactly as shipped: default policy and interval
      const configFile = path.join(workDir, 'config.yaml');
      writeFileSync(
        configFile,
        [
          'docker:',
          `  socketPath: ${dockerd.socketPath}`,
          'journal:',
          `  path: ${path.join(workDir, 'state', 'journal.jsonl')}`,
          'metrics:',
          `  listen: 127.0.0.1:${await freePort()}`,
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      agent = new ShippedAgent(configFile);
      // 'agent ready': its first whole-host pass saw the container
      await agent.start(60_000);
      const agentLines = agent.lines;
      await new Promise((resolve) => setTimeout(resolve, 2_000));

      // independent sampler: live usage and limit every 20 ms
      const samples: Sample[] = [];
      const sampler = setInterval(() => {
        try {
          samples.push({
            atMs: Date.now(),
            usedBytes:
              counter('referenced') +
              counter('rsv_data') +
              counter('rsv_meta_pertrans') +
              counter('rsv_meta_prealloc'),
            limitBytes: counter('max_referenced'),
          });
        } catch {
          // the qgroup directory is read between writes; a failed read is just a missed sample
        }
      }, 20);

      const writerStartMs = Date.now();
      let writerExitCode = 0;
      let writerOutput = '';
      try {
        // dd alone is the writer (its rate is into the page cache, as an application sees it); the
        // sync after it is timed separately
        writerOutput = await dockerd.cli(
          ['exec', 'race', 'dd', 'if=/dev/zero', 'of=/fill', 'bs=1M', `count=${WRITE_MIB}`],
          600_000,
        );
      } catch (error) {
        const failure = error as { code?: number; stdout?: string; stderr?: string };
        writerExitCode = typeof failure.code === 'number' ? failure.code : -1;
        writerOutput = `${failure.stdout ?? ''}${failure.stderr ?? ''}`;
      }
      const writerEndMs = Date.now();
      let syncFailed = false;
      try {
        await dockerd.cli(['exec', 'race', 'sync'], 600_000);
      } catch {
        syncFailed = true;
      }
      const syncEndMs = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      clearInterval(sampler);

      // crossings and grows from the samples
      const grows: { atMs: number; fromBytes: number; toBytes: number }[] = [];
      const crossings: { atMs: number; limitBytes: number; answeredAtMs: number | null }[] = [];
      let previous: Sample | undefined;
      for (const sample of samples) {
        if (previous && sample.limitBytes > previous.limitBytes) {
          grows.push({ atMs: sample.atMs, fromBytes: previous.limitBytes, toBytes: sample.limitBytes });
          const open = crossings.find((crossing) => crossing.answeredAtMs === null);
          if (open) open.answeredAtMs = sample.atMs;
        }
        const over = sample.usedBytes >= DEFAULT_THRESHOLD * sample.limitBytes;
        const alreadyOpen = crossings.some((crossing) => crossing.answeredAtMs === null);
        if (
          over &&
          !alreadyOpen &&
          !crossings.some((crossing) => crossing.limitBytes === sample.limitBytes)
        ) {
          crossings.push({ atMs: sample.atMs, limitBytes: sample.limitBytes, answeredAtMs: null });
        }
        previous = sample;
      }
      const gapsMs = crossings
        .filter((crossing) => crossing.answeredAtMs !== null)
        .map((crossing) => (crossing.answeredAtMs as number) - crossing.atMs);
      const agentGrows = agentLines.filter((line) => line.msg === 'grow succeeded' && line.noop !== true);
      const agentFailures = agentLines.filter((line) => line.msg === 'grow failed');
      const writeSeconds = (writerEndMs - writerStartMs) / 1000;
      // fastest 1-second stretch of the writer, from the live counters
      let peakBytesPerSecond = 0;
      for (let start = 0, end = 0; end < samples.length; end += 1) {
        const last = samples[end] as Sample;
        while ((samples[start] as Sample).atMs < last.atMs - 1000) start += 1;
        const first = samples[start] as Sample;
        if (last.atMs - first.atMs >= 900) {
          peakBytesPerSecond = Math.max(
            peakBytesPerSecond,
            ((last.usedBytes - first.usedBytes) * 1000) / (last.atMs - first.atMs),
          );
        }
      }
      // how close the writer came to the limit in force at that moment
      let closestUsedRatio = 0;
      let smallestHeadroomBytes = Number.POSITIVE_INFINITY;
      for (const sample of samples) {
        if (sample.limitBytes <= 0) continue;
        closestUsedRatio = Math.max(closestUsedRatio, sample.usedBytes / sample.limitBytes);
        smallestHeadroomBytes = Math.min(smallestHeadroomBytes, sample.limitBytes - sample.usedBytes);
      }
      const firstTrigger = agentLines.find((line) => line.msg === 'fill guard triggered');
      const firstTriggerAtMs = typeof firstTrigger?.time === 'string' ? Date.parse(firstTrigger.time) : null;
      const measurements = {
        recordedAt: new Date().toISOString(),
        startLimit: START_LIMIT,
        writtenMiB: WRITE_MIB,
        writerExitCode,
        writerOutput: writerOutput.trim(),
        writerSeconds: Number(writeSeconds.toFixed(2)),
        writerMiBPerSecond: Number((WRITE_MIB / writeSeconds).toFixed(1)),
        writerPeakMiBPerSecondOver1s: Number((peakBytesPerSecond / MiB).toFixed(1)),
        syncSeconds: Number(((syncEndMs - writerEndMs) / 1000).toFixed(2)),
        syncFailed,
        growsSeenInQgroup: grows.length,
        growsLoggedByAgent: agentGrows.length,
        growFailuresLoggedByAgent: agentFailures.length,
        limitsMiB: [grows[0]?.fromBytes ?? 0, ...grows.map((grow) => grow.toBytes)].map((bytes) =>
          Math.round(bytes / MiB),
        ),
        closestUsedPercent: Number((closestUsedRatio * 100).toFixed(1)),
        smallestHeadroomMiB: Number((smallestHeadroomBytes / MiB).toFixed(1)),
        guardTriggers: agentLines.filter((line) => line.msg === 'fill guard triggered').length,
        firstGuardTriggerToLimitMs:
          firstTriggerAtMs !== null && grows[0] ? grows[0].atMs - firstTriggerAtMs : null,
        crossings: crossings.length,
        unansweredCrossings: crossings.filter((crossing) => crossing.answeredAtMs === null).length,
        largestCrossingToGrowMs: gapsMs.length ? Math.max(...gapsMs) : null,
        crossingToGrowMs: gapsMs,
        samples: samples.length,
        agentLog: agentLines
          .filter((line) =>
            ['fill guard triggered', 'threshold crossed', 'grow succeeded', 'grow failed'].includes(
              String(line.msg),
            ),
          )
          .map((line) => ({
            msg: line.msg,
            atMs: typeof line.time === 'string' ? Date.parse(line.time) : line.receivedAtMs,
            durationMs: line.durationMs,
            usedBytes: line.usedBytes,
            sizeBytes: line.sizeBytes,
            fromBytes: line.fromBytes,
            toBytes: line.toBytes,
            trigger: line.trigger,
            reason: line.reason,
            bytesPerSecond: line.bytesPerSecond,
            timeToFullMs: line.timeToFullMs,
            err: line.err,
          })),
      };
      const out = process.env.AUTOGROW_FILL_RACE_OUT ?? path.join(tmpdir(), 'docker-autogrow-fill-race.json');
      writeFileSync(out, `${JSON.stringify(measurements, null, 2)}\n`);
      writeFileSync(`${out}.agent.jsonl`, agentLines.map((line) => JSON.stringify(line)).join('\n'));
      console.log(`fill race measurements (${out}):\n${JSON.stringify(measurements, null, 2)}`);

      expect(writerOutput).not.toMatch(/quota exceeded|No space left|error/i);
      expect(writerExitCode).toBe(0);
      expect(syncFailed).toBe(false);
      expect(grows.length).toBeGreaterThan(0);
      expect(grows.at(-1)?.toBytes).toBeGreaterThan(WRITE_MIB * MiB);
      // the container still runs and the grown limit persists over docker restart
      await dockerd.cli(['restart', '-t', '1', 'race']);
      expect(counter('max_referenced')).toBe(grows.at(-1)?.toBytes);
      expect((await dockerd.cli(['exec', 'race', 'echo', 'ok'])).trim()).toBe('ok');
    });
  },
);
