/**
 * Agent start (issue 14): what loading the agent's code costs, which every start, every CLI call and
 * every VM test pays (in the TCG guest the module load of the agent took ~60 s). Measured in fresh
 * child processes: `node dist/src/main.js --version` (the whole CLI graph, static imports), and the
 * agent graph (dist/src/agent/app.js) imported alone, beside dockerode required the plain way (what
 * the adapter loaded before it deferred dockerode's unused BuildKit session and ssh2 stacks).
 * Nothing here asserts timings.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { childrenCpuMs, fmt, percentile } from './lib/measure.js';
import type { PartResult } from './lib/report.js';
import { REPO_ROOT } from './lib/repo-root.js';

const MiB = 1024 ** 2;

interface LoadSample {
  loadMs: number;
  files: number;
  rssMiB: number;
}

/** Imports `what` in a fresh node and reports its load time, CommonJS files and RSS afterwards. */
function loadInChild(what: 'agent' | 'dockerode-plain' | 'adapter'): LoadSample {
  const target =
    what === 'dockerode-plain'
      ? `require(${JSON.stringify(resolveDockerode())})`
      : `import(${JSON.stringify(
          pathToFileURL(
            path.join(REPO_ROOT, 'dist', 'src', what === 'agent' ? 'agent/app.js' : 'docker/client.js'),
          ).href,
        )})`;
  const script = `const t=performance.now();Promise.resolve(${target}).then(()=>{process.stdout.write(JSON.stringify({loadMs:performance.now()-t,files:Object.keys(require.cache).length,rssMiB:process.memoryUsage().rss/${MiB}}))})`;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', cwd: REPO_ROOT });
  if (child.status !== 0) throw new Error(`node -e (${what}) failed: ${child.stderr}`);
  return JSON.parse(child.stdout) as LoadSample;
}

function resolveDockerode(): string {
  return spawnSync(process.execPath, ['-p', "require.resolve('dockerode')"], {
    encoding: 'utf8',
    cwd: REPO_ROOT,
  }).stdout.trim();
}

export function runAgentStart(options: { runs: number; label: string }): PartResult {
  const main = path.join(REPO_ROOT, 'dist', 'src', 'main.js');
  const wallMs: number[] = [];
  const cpuMs: number[] = [];
  for (let run = 0; run < options.runs; run += 1) {
    const cpuBefore = childrenCpuMs();
    const startedAt = performance.now();
    const child = spawnSync(process.execPath, [main, '--version'], { encoding: 'utf8' });
    wallMs.push(performance.now() - startedAt);
    cpuMs.push(childrenCpuMs() - cpuBefore);
    if (child.status !== 0) throw new Error(`docker-autogrow --version failed: ${child.stderr}`);
  }
  const median = (values: LoadSample[], key: keyof LoadSample) =>
    percentile(
      values.map((v) => v[key]),
      50,
    );
  const samples = {
    agent: [] as LoadSample[],
    adapter: [] as LoadSample[],
    'dockerode-plain': [] as LoadSample[],
  };
  for (let run = 0; run < options.runs; run += 1)
    for (const what of ['agent', 'adapter', 'dockerode-plain'] as const)
      samples[what].push(loadInChild(what));
  const row = (name: string, values: LoadSample[]) => [
    name,
    fmt(median(values, 'loadMs'), 0),
    String(median(values, 'files')),
    fmt(median(values, 'rssMiB'), 1),
  ];
  const load = (text: string) => text.split(' ').slice(0, 3).join(' ');
  const loadAverage = load(spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).stdout);
  return {
    section: {
      id: 'agent-start',
      title: `Agent start: loading its code (${options.label})`,
      how: [
        `${options.runs} fresh processes each: \`node dist/src/main.js --version\` (wall time and CPU of the child), and \`node -e\` importing the agent graph, the Docker adapter alone, and dockerode the plain way; medians; load average ${loadAverage} at the end`,
      ],
      tables: [
        {
          head: ['`docker-autogrow --version`', 'median', 'p90'],
          rows: [
            ['wall ms', fmt(percentile(wallMs, 50), 0), fmt(percentile(wallMs, 90), 0)],
            [
              'CPU ms (user+system, 10 ms ticks)',
              fmt(percentile(cpuMs, 50), 0),
              fmt(percentile(cpuMs, 90), 0),
            ],
          ],
        },
        {
          head: ['imported in a fresh node', 'load ms (median)', 'CommonJS files', 'RSS after (MiB)'],
          rows: [
            row('the agent graph (dist/src/agent/app.js)', samples.agent),
            row('the Docker adapter (dist/src/docker/client.js)', samples.adapter),
            row("dockerode the plain way (`require('dockerode')`)", samples['dockerode-plain']),
          ],
        },
      ],
      notes: [
        "The adapter puts deferred stand-ins for dockerode's lib/session.js (BuildKit session: @grpc/grpc-js, @grpc/proto-loader, protobufjs, uuid) and docker-modem's lib/ssh.js (ssh2) in the require cache; they load the real modules on first call, which the agent never makes (no builds, ssh:// refused).",
      ],
    },
    facts: {
      label: options.label,
      loadAverage,
      versionWallMedianMs: percentile(wallMs, 50),
      versionCpuMedianMs: percentile(cpuMs, 50),
      agentGraphLoadMs: median(samples.agent, 'loadMs'),
      agentGraphFiles: median(samples.agent, 'files'),
      agentGraphRssMiB: median(samples.agent, 'rssMiB'),
      adapterLoadMs: median(samples.adapter, 'loadMs'),
      adapterFiles: median(samples.adapter, 'files'),
      adapterRssMiB: median(samples.adapter, 'rssMiB'),
      dockerodePlainLoadMs: median(samples['dockerode-plain'], 'loadMs'),
      dockerodePlainFiles: median(samples['dockerode-plain'], 'files'),
      dockerodePlainRssMiB: median(samples['dockerode-plain'], 'rssMiB'),
    },
  };
}
