/**
 * `npm run bench [-- --quick] [-- --only side-by-side,pass-cost,memory,real-dockerd,reaction,fill-race]
 *  [-- --memory-passes N] [-- --label before|after] [-- --window 120] [-- --no-doc] [-- --report]`
 *  (--report: only regenerate the doc; --label names a side-by-side run, kept beside the others)
 *
 * Runs the benchmarks of issue 9, prints a table per part, stores each part's results in
 * bench/results/<part>.json (with the machine, the load and the command) and regenerates
 * docs/benchmarks.md from every stored part, so parts can be re-run alone. Parts that need real
 * Docker (real-dockerd, reaction, fill-race) need root, dockerd, btrfs-progs and busybox; without
 * them they are skipped with a note. Nothing here asserts timings: it reports.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { runFillRace } from './fill-race.js';
import { DockerHost } from './lib/host.js';
import { fmt } from './lib/measure.js';
import { REPO_ROOT } from './lib/repo-root.js';
import { markdownTable, textTable, type PartResult } from './lib/report.js';
import { runAgentStart } from './agent-start.js';
import { runMemory } from './memory.js';
import { measureRunnerProcess, runPassCost, type ProcessCost } from './pass-cost.js';
import { runReaction } from './reaction.js';
import { runRealDockerd } from './real-dockerd.js';
import { runReplicaAtRest } from './replica-at-rest.js';
import { runSideBySide } from './side-by-side.js';
import { executable } from './lib/executable.js';

const PARTS = [
  'side-by-side',
  'real-dockerd',
  'reaction',
  'fill-race',
  'pass-cost',
  'memory',
  'replica-at-rest',
  'agent-start',
] as const;
type Part = (typeof PARTS)[number];
const DOCKER_PARTS: readonly Part[] = ['side-by-side', 'real-dockerd', 'reaction', 'fill-race'];
const RESULTS_DIR = path.join(REPO_ROOT, 'bench', 'results');
const DOC = path.join(REPO_ROOT, 'docs', 'benchmarks.md');

interface StoredResult extends PartResult {
  part: Part;
  command: string;
  startedAt: string;
  endedAt: string;
  loadStart: string;
  loadEnd: string;
  machine: Record<string, string>;
}

function parseArgs(argv: string[]) {
  const options = {
    quick: false,
    only: [...PARTS] as Part[],
    memoryPasses: 10_000,
    doc: true,
    label: 'current',
    windowSeconds: 120,
    agentNodeFlags: [] as string[],
    shippedNodeFlags: true,
  };
  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index];
    if (arg === '--quick') options.quick = true;
    else if (arg === '--report') options.only = [];
    else if (arg === '--no-doc') options.doc = false;
    else if (arg === '--only') {
      const list = (argv[++index] ?? '').split(',').filter(Boolean);
      for (const part of list)
        if (!(PARTS as readonly string[]).includes(part))
          throw new Error(`unknown part ${part}; parts: ${PARTS.join(', ')}`);
      options.only = list as Part[];
    } else if (arg === '--memory-passes') options.memoryPasses = Number(argv[++index]);
    else if (arg === '--label')
      options.label = (argv[++index] ?? '').replace(/[^a-z0-9-]/gi, '') || 'current';
    else if (arg === '--window') options.windowSeconds = Number(argv[++index]);
    else if (arg === '--no-shipped-node-flags') options.shippedNodeFlags = false;
    else if (arg === '--agent-node-flags')
      options.agentNodeFlags = (argv[++index] ?? '').split(' ').filter((flag) => flag !== '');
    else throw new Error(`unknown option ${arg}`);
  }
  if (options.quick && !argv.includes('--memory-passes')) options.memoryPasses = 1000;
  if (options.quick && !argv.includes('--window')) options.windowSeconds = 30;
  return options;
}

function tryRun(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8', timeout: 20_000 }).trim();
  } catch {
    return 'n/a';
  }
}

function loadAverage(): string {
  return os
    .loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');
}

function machine(): Record<string, string> {
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  return {
    cpu: `${cpu} (${os.cpus().length} cores)`,
    memory: `${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    kernel: `${os.type()} ${os.release()}`,
    os: tryRun('/bin/sh', ['-c', '. /etc/os-release && echo "$PRETTY_NAME"']),
    node: process.version,
    docker: tryRun('/usr/sbin/dockerd', ['--version']),
    btrfs: tryRun('/bin/btrfs', ['--version']),
    disk: tryRun('/bin/sh', ['-c', 'df -h /tmp | tail -1']),
  };
}

function dockerPrereqs(): string | null {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  if (!executable('/usr/sbin/dockerd') || !executable('/usr/bin/docker')) missing.push('docker.io');
  if (!executable('/bin/btrfs')) missing.push('btrfs-progs');
  if (!executable('/bin/busybox')) missing.push('busybox-static');
  return missing.length ? missing.join(', ') : null;
}

function printPart(result: PartResult): void {
  console.log(`\n== ${result.section.title}`);
  for (const table of result.section.tables) console.log(`${textTable(table)}\n`);
}

/** Parts kept per --label (one file each), so the before and after runs stand side by side. */
const LABELED_PARTS: readonly Part[] = ['side-by-side', 'replica-at-rest', 'agent-start'];
const resultFile = (part: Part, label: string) =>
  path.join(RESULTS_DIR, LABELED_PARTS.includes(part) ? `${part}-${label}.json` : `${part}.json`);

function store(
  part: Part,
  result: PartResult,
  startedAt: string,
  loadStart: string,
  command: string,
  label: string,
): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const stored: StoredResult = {
    ...result,
    part,
    command,
    startedAt,
    endedAt: new Date().toISOString(),
    loadStart,
    loadEnd: loadAverage(),
    machine: machine(),
  };
  writeFileSync(resultFile(part, label), `${JSON.stringify(stored, null, 2)}\n`);
}

/** Every stored run of a labeled part, oldest first. */
function loadLabeled(part: Part): StoredResult[] {
  if (!existsSync(RESULTS_DIR)) return [];
  return readdirSync(RESULTS_DIR)
    .filter((file) => file.startsWith(`${part}-`) && file.endsWith('.json'))
    .map((file) => JSON.parse(readFileSync(path.join(RESULTS_DIR, file), 'utf8')) as StoredResult)
    .sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

function loadStored(): Map<Part, StoredResult> {
  const map = new Map<Part, StoredResult>();
  if (!existsSync(RESULTS_DIR)) return map;
  for (const file of readdirSync(RESULTS_DIR)) {
    if (!file.endsWith('.json')) continue;
    const stored = JSON.parse(readFileSync(path.join(RESULTS_DIR, file), 'utf8')) as StoredResult;
    if (LABELED_PARTS.includes(stored.part)) continue; // loadLabeled: one file per label
    map.set(stored.part, stored);
  }
  return map;
}

type Facts = PartResult['facts'];
const num = (facts: Facts | undefined, key: string): number => {
  const value = facts?.[key];
  return typeof value === 'number' ? value : NaN;
};

function targets(stored: Map<Part, StoredResult>): string[][] {
  const pass = stored.get('pass-cost')?.facts;
  const real = stored.get('real-dockerd')?.facts;
  const reaction = stored.get('reaction')?.facts;
  const race = stored.get('fill-race')?.facts;
  const memory = stored.get('memory')?.facts;
  const verdict = (ok: boolean | null) => (ok === null ? 'not measured' : ok ? 'met' : 'NOT met');
  const known = (value: number) => Number.isFinite(value);
  const rows: string[][] = [];
  const dmProcs = num(pass, 'devicemapper.1000.processes');
  const btProcs = num(pass, 'btrfs.1000.processes');
  const dm10 = num(pass, 'devicemapper.10.processes');
  rows.push([
    'processes per pass independent of container count, at most 3',
    known(dmProcs)
      ? `devicemapper ${fmt(dm10, 0)} / ${fmt(num(pass, 'devicemapper.100.processes'), 0)} / ${fmt(dmProcs, 0)} at 10 / 100 / 1000; btrfs ${fmt(num(pass, 'btrfs.10.processes'), 0)} / ${fmt(num(pass, 'btrfs.100.processes'), 0)} / ${fmt(btProcs, 0)}`
      : 'n/a',
    verdict(known(dmProcs) ? dmProcs <= 3 && btProcs <= 3 && dm10 === dmProcs : null),
  ]);
  const ratio = num(pass, 'devicemapper.1000.naiveProcesses') / dmProcs;
  rows.push([
    'at least 50x fewer processes than the naive way at 1000 containers',
    known(ratio)
      ? `${fmt(num(pass, 'devicemapper.1000.naiveProcesses'), 0)} vs ${fmt(dmProcs, 0)}: ${fmt(ratio, 0)}x`
      : 'n/a',
    verdict(known(ratio) ? ratio >= 50 : null),
  ]);
  const dmCpu = num(pass, 'devicemapper.1000.cpuMs');
  const btCpu = num(pass, 'btrfs.1000.cpuMs');
  rows.push([
    'pass CPU at most 50 ms at 1000 containers',
    known(dmCpu)
      ? `devicemapper ${fmt(dmCpu, 1)} ms in-process (${fmt(num(pass, 'devicemapper.1000.projectedCpuMs'), 1)} ms with its 3 real processes); btrfs ${fmt(btCpu, 1)} ms (${fmt(num(pass, 'btrfs.1000.projectedCpuMs'), 1)} ms)`
      : 'n/a',
    verdict(known(dmCpu) ? dmCpu <= 50 && btCpu <= 50 : null),
  ]);
  if (real)
    rows.push([
      '(context) real dockerd, 100 containers on btrfs',
      `pass ${fmt(num(real, 'passWallMs'), 1)} ms wall, ${fmt(num(real, 'passCpuMs'), 1)} ms CPU (agent + btrfs + dockerd), ${fmt(num(real, 'processesPerPass'), 1)} processes, ${fmt(num(real, 'apiPerPass'), 1)} API calls per pass; ${fmt(num(real, 'cpuSecondsPerHour'), 0)} CPU-s per hour at the 1 s default; \`docker ps -s\` ${fmt(num(real, 'psSizeWallMs'), 0)} ms wall`,
      '-',
    ]);
  const p99 = num(reaction, 'p99Ms');
  rows.push([
    'p99 reaction at most the poll interval + 1 s (2000 ms)',
    known(p99)
      ? `p50 ${fmt(num(reaction, 'p50Ms'), 0)} ms, p99 ${fmt(p99, 0)} ms over ${fmt(num(reaction, 'trials'), 0)} trials (${fmt(num(reaction, 'missing'), 0)} without a grow)`
      : 'n/a',
    verdict(known(p99) ? p99 <= 2000 && num(reaction, 'missing') === 0 : null),
  ]);
  const fullErrors = num(race, 'fullSpeedErrors');
  rows.push([
    "zero write errors at the machine's full write speed (fill race)",
    known(fullErrors)
      ? `full speed ${fmt(num(race, 'fullSpeedMiBps'), 0)} MiB/s (host disk ${fmt(num(race, 'diskMiBps'), 0)} MiB/s with fdatasync): ${fmt(fullErrors, 0)} write errors; highest surviving rate ${fmt(num(race, 'highestDefaultMiBps'), 0)} MiB/s; cron-style baseline survives only <= ${fmt(num(race, 'cronGuaranteedMiBps'), 2)} MiB/s for sure (measured survivor: ${race?.highestCronMeasuredMiBps === null ? 'none' : `${fmt(num(race, 'highestCronMeasuredMiBps'), 1)} MiB/s`})`
      : 'n/a',
    !known(fullErrors)
      ? 'not measured'
      : fullErrors > 0
        ? 'NOT met'
        : num(race, 'fullSpeedMiBps') >= 0.8 * num(race, 'diskMiBps')
          ? 'met'
          : "met at the writer's unthrottled speed; that speed was below the disk's measured speed",
  ]);
  const side = loadLabeled('side-by-side')
    .filter((run) => num(run.facts, 'containers') >= 100)
    .at(-1)?.facts;
  const sideCpu = num(side, 'agentCpuPercent');
  rows.push([
    'at 100 idle containers (real btrfs, defaults) at most 0.5% of a core and 64 MiB RSS',
    known(sideCpu)
      ? `${fmt(sideCpu, 3)}% of a core, RSS max ${fmt(num(side, 'agentRssMaxMiB'), 1)} MiB (${String(side?.label)}); node_exporter ${fmt(num(side, 'exporterCpuPercent'), 3)}%, ${fmt(num(side, 'exporterRssMaxMiB'), 1)} MiB`
      : 'n/a',
    verdict(known(sideCpu) ? sideCpu <= 0.5 && num(side, 'agentRssMaxMiB') <= 64 : null),
  ]);
  const rest = loadLabeled('replica-at-rest').at(-1)?.facts;
  const restCpu = num(rest, 'cpuPercent');
  rows.push([
    'replica at 1000 idle containers, real clock: at most 3% of a core and 100 MiB RSS',
    known(restCpu)
      ? `${fmt(restCpu, 3)}% of a core, RSS max ${fmt(num(rest, 'rssMaxMiB'), 1)} MiB, ${fmt(num(rest, 'guardLooksPerSecond'), 1)} guard looks/s`
      : 'n/a',
    verdict(known(restCpu) ? restCpu <= 3 && num(rest, 'rssMaxMiB') <= 100 : null),
  ]);
  const rss = num(memory, 'finalRssMiB');
  rows.push([
    'RSS at most 100 MB at 1000 containers, flat over time',
    known(rss)
      ? `${fmt(rss, 1)} MiB after ${fmt(num(memory, 'passes'), 0)} passes (max ${fmt(num(memory, 'maxRssMiB'), 1)}); trend ${fmt(num(memory, 'rssSlopeMiBPer1000'), 2)} MiB per 1000 passes`
      : 'n/a',
    !known(rss)
      ? 'not measured'
      : `size: ${rss * 1.048576 <= 100 ? 'met' : 'NOT met'}; flat: ${num(memory, 'rssSlopeMiBPer1000') <= 1 ? 'yes (no upward trend)' : 'NO (grows)'}`,
  ]);
  return rows;
}

/** The side-by-side runs (before, after, ...) in one table, then each run's own tables. */
function sideBySideSection(runs: readonly StoredResult[]): string[] {
  const lines = ['## Side by side with node_exporter, before and after', ''];
  const f = (run: StoredResult, key: string, digits: number) => fmt(num(run.facts, key), digits);
  lines.push(
    markdownTable({
      head: [
        'run',
        'containers',
        'window (s)',
        'load average (start / end)',
        'agent CPU',
        'agent RSS mean / max (MiB)',
        'node_exporter CPU',
        'node_exporter RSS mean (MiB)',
        'CPU ratio',
      ],
      rows: runs.map((run) => [
        `${String(run.facts.label)} (${run.startedAt.slice(0, 16)}Z)`,
        f(run, 'containers', 0),
        f(run, 'windowSeconds', 0),
        `${String(run.facts.loadStart)} / ${String(run.facts.loadEnd)}`,
        `${f(run, 'agentCpuPercent', 3)}%`,
        `${f(run, 'agentRssMeanMiB', 1)} / ${f(run, 'agentRssMaxMiB', 1)}`,
        `${f(run, 'exporterCpuPercent', 3)}%`,
        f(run, 'exporterRssMeanMiB', 1),
        `${f(run, 'cpuRatio', 1)}x`,
      ]),
    }),
    '',
  );
  for (const run of runs) {
    lines.push(`### ${run.section.title}`, '');
    lines.push(`Run: \`${run.command}\`, ${run.startedAt} to ${run.endedAt}.`, '');
    for (const how of run.section.how) lines.push(`- ${how}`);
    lines.push('');
    for (const table of run.section.tables) lines.push(markdownTable(table), '');
    for (const note of run.section.notes) lines.push(`- ${note}`);
    lines.push('');
  }
  return lines;
}

/** The replica-at-rest runs (before, after, ...) in one table, then what each measured. */
function replicaAtRestSection(runs: readonly StoredResult[]): string[] {
  const lines = ['## The in-process replica at rest (1000 containers), before and after', ''];
  const f = (run: StoredResult, key: string, digits: number) => fmt(num(run.facts, key), digits);
  lines.push(
    markdownTable({
      head: [
        'run',
        'containers',
        'window (s)',
        'load average (start / end)',
        'CPU',
        'RSS max / end (MiB)',
        'heap (MiB)',
        'guard looks / s',
        'processes / s',
      ],
      rows: runs.map((run) => [
        `${String(run.facts.label)} (${run.startedAt.slice(0, 16)}Z)`,
        f(run, 'containers', 0),
        f(run, 'windowSeconds', 0),
        `${String(run.facts.loadStart)} / ${String(run.facts.loadEnd)}`,
        `${f(run, 'cpuPercent', 3)}%`,
        `${f(run, 'rssMaxMiB', 1)} / ${f(run, 'rssEndMiB', 1)}`,
        f(run, 'heapUsedMiB', 1),
        f(run, 'guardLooksPerSecond', 1),
        f(run, 'processesPerSecond', 2),
      ]),
    }),
    '',
  );
  const last = runs.at(-1);
  if (last) {
    for (const how of last.section.how) lines.push(`- ${how}`);
    for (const note of last.section.notes) lines.push(`- ${note}`);
    lines.push('');
  }
  return lines;
}

async function writeDoc(stored: Map<Part, StoredResult>, findings: string): Promise<void> {
  const lines: string[] = [
    '# Benchmarks',
    '',
    '<!-- generated by `npm run bench` (bench/run.ts) from bench/results/*.json; do not edit by hand -->',
    '',
    'What docker-autogrow costs on a host and how fast it reacts, measured by `npm run bench` (issue 9).',
    'Every part can run alone (`npm run bench -- --only <part>`); the parts on real Docker need root.',
    'Nothing here is asserted by the test suite: these are reports.',
    '',
    '```',
    'npm run bench                                   # everything (root for the real-Docker parts)',
    'npm run bench -- --quick                        # fewer memory passes, one cron-baseline rate',
    'npm run bench -- --only pass-cost,memory        # in-process parts only, no root',
    'npm run bench -- --only memory --memory-passes 10000',
    'npm run bench -- --report                       # regenerate this file from bench/results/*.json',
    '```',
    '',
    '## Against the targets',
    '',
    markdownTable({ head: ['target', 'where we stand', 'verdict'], rows: targets(stored) }),
    '',
  ];
  if (findings) lines.push(findings, '');
  const anyMachine = [...stored.values()][0]?.machine;
  if (anyMachine) {
    lines.push('## Machine', '');
    lines.push(
      markdownTable({ head: ['', ''], rows: Object.entries(anyMachine).map(([key, value]) => [key, value]) }),
    );
    lines.push(
      '',
      'A shared 2-core VM on which other engineers ran dockerd, qemu VMs and test suites at the same time: the load averages below (1, 5, 15 min) are part of each result. CPU times are far less sensitive to that than wall times.',
      '',
    );
  }
  const sideRuns = loadLabeled('side-by-side');
  if (sideRuns.length > 0) lines.push(...sideBySideSection(sideRuns));
  const restRuns = loadLabeled('replica-at-rest');
  if (restRuns.length > 0) lines.push(...replicaAtRestSection(restRuns));
  const results = [...loadLabeled('agent-start'), ...PARTS.map((part) => stored.get(part))];
  for (const result of results) {
    if (!result) continue;
    lines.push(`## ${result.section.title}`, '');
    lines.push(
      `Run: \`${result.command}\`, ${result.startedAt} to ${result.endedAt}; load average ${result.loadStart} at start, ${result.loadEnd} at end.`,
      '',
    );
    for (const how of result.section.how) lines.push(`- ${how}`);
    lines.push('');
    for (const table of result.section.tables) lines.push(markdownTable(table), '');
    for (const note of result.section.notes) lines.push(`- ${note}`);
    lines.push('');
  }
  // formatted as `npm run lint` (prettier --check .) expects
  const prettier = await import('prettier');
  const prettierOptions = (await prettier.resolveConfig(DOC)) ?? {};
  const text = await prettier.format(`${lines.join('\n').trimEnd()}\n`, {
    ...prettierOptions,
    parser: 'markdown',
  });
  writeFileSync(DOC, text);
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const shown = process.argv.slice(2).filter((arg) => arg !== '--no-doc');
  const command = `npm run bench${shown.length ? ` -- ${shown.join(' ')}` : ''}`;
  console.log(`docker-autogrow benchmarks; load average ${loadAverage()}; parts: ${options.only.join(', ')}`);
  const wanted = (part: Part) => options.only.includes(part);
  const run = async (part: Part, body: () => Promise<PartResult>) => {
    const startedAt = new Date().toISOString();
    const loadStart = loadAverage();
    process.stderr.write(`[${startedAt}] ${part} ...\n`);
    const result = await body();
    printPart(result);
    store(part, result, startedAt, loadStart, command, options.label);
  };

  let dockerInspect: ProcessCost | null = null;
  const stored = loadStored();
  const previous = stored.get('real-dockerd') as (StoredResult & { dockerInspect?: ProcessCost }) | undefined;
  if (previous?.dockerInspect) dockerInspect = previous.dockerInspect;

  if (DOCKER_PARTS.some(wanted)) {
    const missing = dockerPrereqs();
    if (missing) {
      console.log(
        `\nskipping ${DOCKER_PARTS.filter(wanted).join(', ')}: missing ${missing} (run as root with docker.io, btrfs-progs, busybox-static)`,
      );
    } else {
      const host = new DockerHost(16 * 1024 ** 3);
      try {
        await host.start();
        if (wanted('side-by-side')) {
          const t0 = performance.now();
          const idle = await host.createContainers('s', options.quick ? 20 : 100, '1G');
          process.stderr.write(
            `  created ${idle.length} containers (size=1G) in ${fmt((performance.now() - t0) / 1000)} s\n`,
          );
          await run('side-by-side', () =>
            runSideBySide(host, idle, {
              windowMs: options.windowSeconds * 1000,
              settleMs: options.quick ? 10_000 : 30_000,
              label: options.label,
              agentNodeFlags: options.agentNodeFlags,
              shippedNodeFlags: options.shippedNodeFlags,
            }),
          );
          await host.removeAll();
        }
        const needContainers = wanted('real-dockerd') ? 100 : wanted('reaction') ? 30 : 0;
        const t0 = performance.now();
        const containers = needContainers ? await host.createContainers('b', needContainers, '64M') : [];
        if (needContainers)
          process.stderr.write(
            `  created ${needContainers} containers in ${fmt((performance.now() - t0) / 1000)} s\n`,
          );
        if (wanted('real-dockerd'))
          await run('real-dockerd', async () => {
            const output = await runRealDockerd(host, containers, { passes: options.quick ? 10 : 30 });
            dockerInspect = output.dockerInspect;
            return { ...output, dockerInspect: output.dockerInspect } as PartResult;
          });
        if (wanted('reaction'))
          await run('reaction', () => runReaction(host, containers.slice(0, 30), containers.length));
        if (containers.length) await host.removeAll();
        if (wanted('fill-race')) await run('fill-race', () => runFillRace(host, { quick: options.quick }));
      } finally {
        await host.stop();
      }
    }
  }
  if (wanted('pass-cost'))
    await run('pass-cost', async () => {
      const agentProcess = await measureRunnerProcess({ tool: 'btrfs', args: ['version'] }, 20);
      const dmsetupCall = await measureRunnerProcess(
        { tool: 'dmsetup', args: ['table', 'docker-bench-absent'] },
        20,
      );
      return runPassCost({
        counts: [10, 100, 1000],
        drivers: ['devicemapper', 'btrfs'],
        passesFor: (n) => (n >= 1000 ? (options.quick ? 5 : 20) : options.quick ? 20 : 50),
        agentProcess,
        dockerInspect,
        dmsetupCall,
      });
    });
  if (wanted('memory'))
    await run('memory', () =>
      runMemory({
        containers: 1000,
        passes: options.memoryPasses,
        sampleEvery: Math.max(1, Math.floor(options.memoryPasses / 10)),
        driver: 'devicemapper',
      }),
    );

  if (wanted('agent-start'))
    await run('agent-start', () =>
      Promise.resolve(runAgentStart({ runs: options.quick ? 5 : 15, label: options.label })),
    );

  if (wanted('replica-at-rest'))
    await run('replica-at-rest', () =>
      runReplicaAtRest({
        containers: 1000,
        windowMs: options.windowSeconds * 1000,
        settleMs: options.quick ? 10_000 : 30_000,
        label: options.label,
      }),
    );

  const all = loadStored();
  console.log('\n== Against the targets');
  console.log(textTable({ head: ['target', 'where we stand', 'verdict'], rows: targets(all) }));
  if (options.doc) {
    const findingsFile = path.join(REPO_ROOT, 'bench', 'findings.md');
    await writeDoc(all, existsSync(findingsFile) ? readFileSync(findingsFile, 'utf8').trim() : '');
    console.log(`\nwrote ${path.relative(process.cwd(), DOC)} (from ${[...all.keys()].join(', ')})`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
