/**
 * `npm run bench [-- --quick] [-- --only pass-cost,memory,real-dockerd,reaction,fill-race]
 *  [-- --memory-passes N] [-- --no-doc] [-- --report]`  (--report: only regenerate the doc)
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
import { runMemory } from './memory.js';
import { measureRunnerProcess, runPassCost, type ProcessCost } from './pass-cost.js';
import { runReaction } from './reaction.js';
import { runRealDockerd } from './real-dockerd.js';
import { executable } from './lib/executable.js';

const PARTS = ['real-dockerd', 'reaction', 'fill-race', 'pass-cost', 'memory'] as const;
type Part = (typeof PARTS)[number];
const DOCKER_PARTS: readonly Part[] = ['real-dockerd', 'reaction', 'fill-race'];
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
  const options = { quick: false, only: [...PARTS] as Part[], memoryPasses: 10_000, doc: true };
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
    else throw new Error(`unknown option ${arg}`);
  }
  if (options.quick && !argv.includes('--memory-passes')) options.memoryPasses = 1000;
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

function store(part: Part, result: PartResult, startedAt: string, loadStart: string, command: string): void {
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
  writeFileSync(path.join(RESULTS_DIR, `${part}.json`), `${JSON.stringify(stored, null, 2)}\n`);
}

function loadStored(): Map<Part, StoredResult> {
  const map = new Map<Part, StoredResult>();
  if (!existsSync(RESULTS_DIR)) return map;
  for (const file of readdirSync(RESULTS_DIR)) {
    if (!file.endsWith('.json')) continue;
    const stored = JSON.parse(readFileSync(path.join(RESULTS_DIR, file), 'utf8')) as StoredResult;
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
  for (const part of PARTS) {
    const result = stored.get(part);
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
    store(part, result, startedAt, loadStart, command);
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
