/**
 * End to end, everything real: a private dockerd on a loop-mounted btrfs with quotas, busybox
 * containers with `--storage-opt size=64M` (one filling past 85% and still writing), the built
 * agent (`node dist/src/main.js run --config ...`) serving that dockerd, and Debian's Prometheus
 * scraping the agent every second. Then every query of both Grafana dashboards (panels,
 * annotations, variables) goes to Prometheus's HTTP API and must return data; `promtool check
 * metrics` must be clean on the agent's real scrape; and a destroyed container's series must be
 * gone after the next pass.
 *
 * Needs `npm run build` first (the agent runs from dist/).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse } from 'yaml';
import { LoopBtrfs, TestDockerd } from '../support/dockerd.js';
import { describeWith, prereqs, type Prereq } from '../support/prereqs.js';
import { freePort } from '../support/ports.js';
import { TestPrometheus, checkEveryDashboardQuery, sampleValues, sleep } from './prometheus-server.js';

const AGENT_MAIN = path.resolve('dist/src/main.js');
const builtAgent: Prereq = {
  name: 'built agent (dist/src/main.js)',
  ok: () => existsSync(AGENT_MAIN),
  fix: 'npm run build',
};

/** Starts the agent as operators do, logs to a file; resolves once /readyz answers 200. */
async function startAgent(configFile: string, logFile: string, port: number): Promise<ChildProcess> {
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, [AGENT_MAIN, 'run', '--config', configFile], {
    stdio: ['ignore', log, log],
    env: { ...process.env, NOTIFY_SOCKET: '' },
  });
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`agent exited (${child.exitCode}):\n${tail(logFile)}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) return child;
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  throw new Error(`agent not ready within 60s:\n${tail(logFile)}`);
}

function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function stopProcess(child: ChildProcess | undefined, graceMs = 30_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, logFile: string) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(1000);
  }
  throw new Error(`timed out waiting for ${what}; agent log:\n${tail(logFile)}`);
}

describeWith(
  [
    prereqs.root,
    prereqs.dockerd,
    prereqs.busybox,
    prereqs.btrfs,
    prereqs.prometheus,
    prereqs.promtool,
    builtAgent,
  ],
  'end to end: real dockerd on btrfs, the agent, Prometheus and the dashboards',
  () => {
    const work = mkdtempSync(path.join(tmpdir(), 'age2e-'));
    const agentLog = path.join(work, 'agent.log');
    const btrfs = new LoopBtrfs(3 * 1024 ** 3);
    const prometheus = new TestPrometheus();
    let dockerd: TestDockerd | undefined;
    let agent: ChildProcess | undefined;
    let agentPort = 0;
    const startedAtMs = Date.now();
    let firstGrowAfterS = 0;

    const run = (name: string, script: string) =>
      dockerd!.cli([
        'run',
        '-d',
        '--name',
        name,
        '--storage-opt',
        'size=64M',
        'autogrow-busybox:test',
        'sh',
        '-c',
        script,
      ]);

    beforeAll(async () => {
      await btrfs.create();
      dockerd = new TestDockerd({ storageDriver: 'btrfs', dataRoot: btrfs.mountPoint });
      await dockerd.start();
      await dockerd.ensureBusyboxImage();
      await run('steady-1', 'dd if=/dev/zero of=/data/base bs=1M count=8 && sleep 3600');
      await run('doomed-1', 'dd if=/dev/zero of=/data/base bs=1M count=4 && sleep 3600');
      agentPort = await freePort();
      const configFile = path.join(work, 'config.yaml');
      writeFileSync(
        configFile,
        [
          'interval: 1s',
          'docker:',
          `  socketPath: ${dockerd.socketPath}`,
          'metrics:',
          `  listen: 127.0.0.1:${agentPort}`,
          'journal:',
          `  path: ${path.join(work, 'state', 'journal.jsonl')}`,
          'defaults:',
          '  minStep: 8M',
          '  cooldown: 10s',
          // looks at the filesystem under the data root (a loop btrfs, no LVM: it says why it cannot grow)
          'dataFilesystem:',
          '  enabled: true',
          '',
        ].join('\n'),
      );
      agent = await startAgent(configFile, agentLog, agentPort);

      await prometheus.start({ target: `127.0.0.1:${agentPort}` });
      await prometheus.waitForHealthyTarget();
      // Only now, with Prometheus watching, the container that needs grows: 40M of 64M at once, then
      // 1 MiB/s, so it crosses 85% while scraped, is grown (and grown again) and is still filling.
      const fillerStartedAtMs = Date.now();
      await run(
        'filler-1',
        // 5 s idle first: Prometheus must scrape the 64M size before the first (maybe predicted)
        // grow, or the "Size changes" annotation has no change to show (a CI failure once).
        'sleep 5; dd if=/dev/zero of=/data/big bs=1M count=40 && i=0; ' +
          'while true; do dd if=/dev/zero of=/data/slow$i bs=1M count=1 2>/dev/null; i=$((i+1)); sleep 1; done',
      );

      const has = async (expr: string) =>
        sampleValues(await prometheus.query(expr)).some((value) => value > 0);
      await waitFor(
        'a real grow of filler-1',
        () => has('docker_autogrow_grown_bytes_total{driver="btrfs"}'),
        120_000,
        agentLog,
      );
      firstGrowAfterS = Math.round((Date.now() - fillerStartedAtMs) / 1000);
      await waitFor(
        'a time-to-full estimate for filler-1',
        () => has('docker_autogrow_container_time_to_full_seconds{container_name="filler-1"}'),
        60_000,
        agentLog,
      );
      // a few more scrapes so rate(), deriv() and predict_linear() have points after the grow
      await sleep(10_000);
    }, 400_000);

    afterAll(async () => {
      await stopProcess(agent);
      await prometheus.stop();
      await dockerd?.destroy();
      await btrfs.destroy();
      rmSync(work, { recursive: true, force: true });
    }, 180_000);

    it('grew the filling container in Docker and reports the new size', async () => {
      const size = sampleValues(
        await prometheus.query('docker_autogrow_container_size_bytes{container_name="filler-1"}'),
      );
      expect(size.length).toBe(1);
      expect(size[0]).toBeGreaterThan(64 * 1024 ** 2);
      const steady = sampleValues(
        await prometheus.query('docker_autogrow_container_size_bytes{container_name="steady-1"}'),
      );
      expect(steady).toEqual([64 * 1024 ** 2]);
    });

    it('answers every query of every dashboard panel, annotation and variable with data', async () => {
      // prometheus-scrape.test.ts answers these from a recorded LVM host, test/vm/data-filesystem.test.ts for real
      const DATA_FS_NOT_ON_LVM =
        "the rig's data root is a loop btrfs without LVM, below its threshold: no LV, no VG, nothing to refuse";
      const windowSeconds = `${Math.ceil((Date.now() - startedAtMs) / 1000)}s`;
      const checks = await checkEveryDashboardQuery(
        prometheus,
        {
          datasource: 'prometheus',
          instance: `127.0.0.1:${agentPort}`,
          container: 'filler-1',
          // what Grafana would send for a dashboard showing the whole test
          __rate_interval: windowSeconds,
          __range: windowSeconds,
          __interval: '2s',
        },
        startedAtMs,
        [
          { metric: 'docker_autogrow_data_filesystem_lv_size_bytes', why: DATA_FS_NOT_ON_LVM },
          { metric: 'docker_autogrow_data_filesystem_vg_free_bytes', why: DATA_FS_NOT_ON_LVM },
          { metric: 'docker_autogrow_data_filesystem_cannot_grow', why: DATA_FS_NOT_ON_LVM },
          {
            metric: 'docker_autogrow_data_filesystem_device_needs_operator',
            why: "the rig's loop device never grows under a partition: the panel's '== 1' shows nothing",
          },
        ],
      );
      expect(checks.length).toBeGreaterThan(35);
      console.info(
        `e2e: ${checks.length} dashboard queries answered with data; first grow seen in Prometheus ${firstGrowAfterS}s after the filler started`,
      );
    });

    it('is healthy by its own alert rules: every probe succeeds and no alert expression matches', async () => {
      const probes = await prometheus.query(
        `docker_autogrow_probe_success{instance="127.0.0.1:${agentPort}"}`,
      );
      expect(probes.data.result.length).toBeGreaterThan(0);
      expect(sampleValues(probes).every((value) => value === 1)).toBe(true);
      const age = sampleValues(
        await prometheus.query('time() - docker_autogrow_last_successful_pass_timestamp_seconds'),
      );
      expect(age[0]).toBeLessThan(10);
      const rules = (
        parse(readFileSync('deploy/prometheus/alerts.yml', 'utf8')) as {
          groups: { rules: { alert: string; expr: string }[] }[];
        }
      ).groups.flatMap((group) => group.rules);
      const firing: string[] = [];
      for (const rule of rules) {
        const result = await prometheus.query(rule.expr);
        if (result.data.result.length > 0)
          firing.push(`${rule.alert}: ${JSON.stringify(result.data.result)}`);
      }
      expect(firing).toEqual([]);
    });

    it('serves a scrape that `promtool check metrics` finds clean', async () => {
      const body = await (await fetch(`http://127.0.0.1:${agentPort}/metrics`)).text();
      expect(body).toContain('container_name="filler-1"');
      const { spawnSync } = await import('node:child_process');
      const result = spawnSync('/usr/bin/promtool', ['check', 'metrics'], { input: body, encoding: 'utf8' });
      expect(`${result.stdout}${result.stderr}`).toBe('');
      expect(result.status).toBe(0);
    });

    it("removes a destroyed container's series after the next pass", async () => {
      const selector = '{container_name="doomed-1"}';
      expect((await prometheus.query(selector)).data.result.length).toBeGreaterThan(3);
      await dockerd!.cli(['rm', '-f', 'doomed-1']);
      await sleep(3_000); // the next pass (1 s) and the next scrape (1 s)
      expect((await prometheus.query(selector)).data.result).toEqual([]);
      const body = await (await fetch(`http://127.0.0.1:${agentPort}/metrics`)).text();
      expect(body).not.toContain('doomed-1');
      expect(body).toContain('container_name="steady-1"');
    });
  },
);
