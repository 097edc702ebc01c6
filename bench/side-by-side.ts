/**
 * Side by side with node_exporter (issue 14): the built agent with its embedded defaults (only the
 * Docker socket, the journal path — which places the lock and control socket beside it — and a
 * private metrics port set) and Debian's prometheus-node-exporter, on the same host over the same
 * window, both scraped every 15 s as Prometheus would. At rest: `count` running idle busybox
 * containers, each `--storage-opt size=1G`, on real btrfs under a private dockerd.
 *
 * CPU is utime+stime plus cutime+cstime (waited-for children) from /proc/<pid>/stat over the
 * window; RSS is VmRSS from /proc/<pid>/status, sampled every 5 s. Nothing here asserts timings.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { ShippedAgent, shippedMallocEnvironment, shippedNodeFlags } from './lib/agent-process.js';
import { REPO_ROOT } from './lib/repo-root.js';
import type { BenchContainer, DockerHost } from './lib/host.js';
import { fmt, mean, sleep } from './lib/measure.js';
import type { PartResult } from './lib/report.js';

export const NODE_EXPORTER = '/usr/bin/prometheus-node-exporter';
const CLOCK_TICK_MS = 10; // USER_HZ is 100 on Linux
const SCRAPE_INTERVAL_MS = 15_000;
const RSS_SAMPLE_MS = 5_000;

/** CPU ms of a process and of its waited-for children, from /proc/<pid>/stat. */
export function processCpuMs(statText: string): { selfMs: number; childrenMs: number } {
  // the command name may hold spaces and parentheses: fields start after the last ')'
  const fields = statText.slice(statText.lastIndexOf(')') + 2).split(' ');
  // after ')': state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
  const tick = (index: number) => Number(fields[index]) * CLOCK_TICK_MS;
  return { selfMs: tick(11) + tick(12), childrenMs: tick(13) + tick(14) };
}

/** VmRSS in bytes from /proc/<pid>/status text. */
export function rssBytes(statusText: string): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(statusText);
  if (!match) throw new Error('no VmRSS line');
  return Number(match[1]) * 1024;
}

export interface WindowCost {
  cpuMs: number;
  childrenCpuMs: number;
  /** Share of one core over the window, in percent. */
  cpuPercent: number;
  rssMeanBytes: number;
  rssMaxBytes: number;
  rssEndBytes: number;
}

/** Samples one pid over a window: CPU at both ends, RSS every few seconds. */
export class PidWatch {
  private startCpu = { selfMs: 0, childrenMs: 0 };
  private startedAtMs = 0;
  private readonly rss: number[] = [];

  constructor(readonly pid: number) {}

  private cpu() {
    return processCpuMs(readFileSync(`/proc/${this.pid}/stat`, 'utf8'));
  }

  begin(): void {
    this.startCpu = this.cpu();
    this.startedAtMs = performance.now();
    this.sampleRss();
  }

  sampleRss(): void {
    this.rss.push(rssBytes(readFileSync(`/proc/${this.pid}/status`, 'utf8')));
  }

  end(): WindowCost {
    const cpu = this.cpu();
    const windowMs = performance.now() - this.startedAtMs;
    this.sampleRss();
    const selfMs = cpu.selfMs - this.startCpu.selfMs;
    const childrenMs = cpu.childrenMs - this.startCpu.childrenMs;
    return {
      cpuMs: selfMs + childrenMs,
      childrenCpuMs: childrenMs,
      cpuPercent: ((selfMs + childrenMs) / windowMs) * 100,
      rssMeanBytes: mean(this.rss),
      rssMaxBytes: Math.max(...this.rss),
      rssEndBytes: this.rss.at(-1) ?? NaN,
    };
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** One scrape as Prometheus does it: GET /metrics, body read to the end; returns the bytes. */
async function scrape(port: number, bodies?: string[]): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const body = await response.text();
  if (!response.ok) throw new Error(`scrape of :${port} answered ${response.status}`);
  bodies?.push(body);
  return body.length;
}

async function startNodeExporter(port: number): Promise<ChildProcess> {
  const child = spawn(NODE_EXPORTER, [`--web.listen-address=127.0.0.1:${port}`], {
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`node_exporter exited ${child.exitCode}`);
    try {
      await scrape(port);
      return child;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(200);
    }
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

export interface SideBySideOptions {
  /** Measured window after the settling time. */
  windowMs: number;
  /** After the agent is ready and before the window: first scrapes, JIT, first resync settle. */
  settleMs: number;
  /** before / after / ci: kept apart in bench/results so a doc shows both. */
  label: string;
  /**
   * Node options for the agent; by default the shipped unit's (deploy/systemd), so the run measures
   * the agent as deployed. Extra flags (e.g. --cpu-prof) come after them.
   */
  agentNodeFlags?: readonly string[];
  /** False: leave the shipped unit's flags out (the A/B that shows what they do). */
  shippedNodeFlags?: boolean;
}

/** A counter's value in a Prometheus text body (unlabelled series); NaN when absent. */
export function counterValue(body: string, name: string): number {
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(body);
  return match ? Number(match[1]) : NaN;
}

const MiB = 1024 ** 2;

export async function runSideBySide(
  host: DockerHost,
  containers: readonly BenchContainer[],
  options: SideBySideOptions,
): Promise<PartResult> {
  const agentPort = await freePort();
  const exporterPort = await freePort();
  const dir = path.join(host.workDir, 'side-by-side');
  mkdirSync(dir, { recursive: true });
  const configFile = path.join(dir, 'agent.yaml');
  // the embedded defaults; only the paths (and a private port: other agents may run on this host)
  writeFileSync(
    configFile,
    [
      'docker:',
      `  socketPath: ${host.dockerd.socketPath}`,
      'journal:',
      `  path: ${path.join(dir, 'journal.jsonl')}`,
      'metrics:',
      `  listen: 127.0.0.1:${agentPort}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const unitText = readFileSync(path.join(REPO_ROOT, 'deploy', 'systemd', 'docker-autogrow.service'), 'utf8');
  const nodeFlags = [
    ...(options.shippedNodeFlags === false ? [] : shippedNodeFlags(unitText)),
    ...(options.agentNodeFlags ?? []),
  ];
  const agentEnvironment = options.shippedNodeFlags === false ? {} : shippedMallocEnvironment(unitText);
  const agent = new ShippedAgent(configFile, nodeFlags, agentEnvironment);
  const exporter = await startNodeExporter(exporterPort);
  let scrapes = 0;
  let scrapeErrors = 0;
  const scrapeBytes = { agent: 0, exporter: 0 };
  /** The agent's bodies: its pass and look counters over the window tell the per-second work. */
  const agentBodies: string[] = [];
  try {
    await agent.start();
    const agentWatch = new PidWatch(agent.pid);
    const exporterWatch = new PidWatch(exporter.pid ?? 0);
    const scrapeBoth = async () => {
      scrapes += 1;
      await Promise.all([
        scrape(agentPort, agentBodies).then(
          (bytes) => (scrapeBytes.agent = bytes),
          () => (scrapeErrors += 1),
        ),
        scrape(exporterPort).then(
          (bytes) => (scrapeBytes.exporter = bytes),
          () => (scrapeErrors += 1),
        ),
      ]);
    };
    const scrapeTimer = setInterval(() => void scrapeBoth(), SCRAPE_INTERVAL_MS);
    await scrapeBoth();
    await sleep(options.settleMs);
    const loadStart = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    const bodiesAtStart = agentBodies.length;
    agentWatch.begin();
    exporterWatch.begin();
    const rssTimer = setInterval(() => {
      agentWatch.sampleRss();
      exporterWatch.sampleRss();
    }, RSS_SAMPLE_MS);
    await sleep(options.windowMs);
    clearInterval(rssTimer);
    const agentCost = agentWatch.end();
    const exporterCost = exporterWatch.end();
    clearInterval(scrapeTimer);
    const loadEnd = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    await scrape(agentPort, agentBodies).catch(() => (scrapeErrors += 1));
    const counterDelta = (name: string) =>
      counterValue(agentBodies.at(-1) ?? '', name) - counterValue(agentBodies[bodiesAtStart - 1] ?? '', name);
    const passesInWindow = counterDelta('docker_autogrow_passes_total');
    const looksInWindow = counterDelta('docker_autogrow_guard_looks_total');
    const ratio = agentCost.cpuPercent / exporterCost.cpuPercent;
    const row = (name: string, cost: WindowCost) => [
      name,
      `${fmt(cost.cpuPercent, 3)}%`,
      fmt((cost.cpuPercent / 100) * 3600, 1),
      fmt(cost.childrenCpuMs / 1000, 2),
      fmt(cost.rssMeanBytes / MiB, 1),
      fmt(cost.rssMaxBytes / MiB, 1),
    ];
    const seconds = options.windowMs / 1000;
    return {
      section: {
        id: 'side-by-side',
        title: `Side by side with node_exporter: ${containers.length} idle containers on real btrfs (${options.label})`,
        how: [
          `a private dockerd 20.10 on a loop-mounted btrfs with quotas; ${containers.length} running busybox containers \`docker run -d --storage-opt size=1G ... sleep 1d\`, idle`,
          `the built agent (\`node dist/src/main.js run\`) with the embedded defaults: only docker.socketPath, journal.path (its lock and control socket sit beside it) and metrics.listen (a private port) set`,
          `Debian's prometheus-node-exporter (${NODE_EXPORTER}, default collectors) on a private port`,
          `both scraped every 15 s (GET /metrics read to the end); ${fmt(options.settleMs / 1000, 0)} s to settle after the agent's 'agent ready', then a ${fmt(seconds, 0)} s window; load average ${loadStart} at the window's start, ${loadEnd} at its end`,
        ],
        tables: [
          {
            head: [
              'process',
              'CPU (share of one core)',
              'CPU-s per hour',
              'of which children (s)',
              'RSS mean (MiB)',
              'RSS max (MiB)',
            ],
            rows: [row('docker-autogrow agent', agentCost), row('prometheus-node-exporter', exporterCost)],
          },
        ],
        notes: [
          `CPU ratio agent / node_exporter: ${fmt(ratio, 1)}x. Scrapes: ${scrapes} rounds, ${scrapeErrors} errors; last bodies ${scrapeBytes.agent} bytes (agent), ${scrapeBytes.exporter} bytes (node_exporter).`,
          `Over the window the agent ran ${passesInWindow} whole-host passes and ${looksInWindow} fill-guard looks (its own counters, scraped at both ends); agent Node flags: ${nodeFlags.join(' ') || 'none'} (the shipped unit's NODE_OPTIONS first); environment: ${
            Object.entries(agentEnvironment)
              .map(([key, value]) => `${key}=${value}`)
              .join(' ') || 'none'
          } (the unit's MALLOC_ variables).`,
          'CPU = utime+stime+cutime+cstime from /proc/<pid>/stat at both ends of the window (10 ms ticks); RSS = VmRSS from /proc/<pid>/status every 5 s.',
        ],
      },
      facts: {
        label: options.label,
        containers: containers.length,
        windowSeconds: seconds,
        loadStart,
        loadEnd,
        agentCpuPercent: agentCost.cpuPercent,
        agentChildrenCpuSeconds: agentCost.childrenCpuMs / 1000,
        agentRssMeanMiB: agentCost.rssMeanBytes / MiB,
        agentRssMaxMiB: agentCost.rssMaxBytes / MiB,
        exporterCpuPercent: exporterCost.cpuPercent,
        exporterRssMeanMiB: exporterCost.rssMeanBytes / MiB,
        exporterRssMaxMiB: exporterCost.rssMaxBytes / MiB,
        cpuRatio: ratio,
        scrapeErrors,
        passesInWindow,
        looksInWindow,
        agentNodeFlags: nodeFlags.join(' '),
      },
    };
  } finally {
    await agent.stop();
    await stopChild(exporter);
  }
}
