/**
 * The soak driver: runs a seeded schedule (soak/schedule.ts) against a real private dockerd 20.10
 * on real storage made by a per-backend rig (soak/rigs/: a loop btrfs with qgroups on the host, a
 * loop XFS with project quotas in the guest) and the real built agent (`dist/src/main.js run`),
 * injects the faults the schedule asks for, records what happened, and judges it with the pure
 * invariants of soak/invariants.ts. Run it with `npm run soak -- --minutes N --seed S
 * [--backend B]` (soak/main.ts), from test/integration/soak-short.test.ts, or in the guest with
 * `npm run soak:guest` (test/vm/soak-guest.ts).
 *
 * The agent reaches Docker through a proxy socket (soak/proxy.ts) so the soak can cut its
 * connections (the event stream among them) without touching the daemon. Everything the soak
 * measures about the agent is read independently of it: limits and pool space through the rig
 * (from the kernel: qgroups in sysfs, the XFS quota report, statfs), RSS and fds from /proc,
 * containers from `docker ps` on the daemon's own socket.
 */
import { spawn } from 'node:child_process';
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { ShippedAgent } from '../bench/lib/agent-process.js';
import { TestDockerd } from '../bench/lib/dockerd.js';
import { freePort } from '../bench/lib/ports.js';
import { REPO_ROOT } from '../bench/lib/repo-root.js';
import {
  checkFdTargets,
  checkHealthz,
  checkJournal,
  checkLimitsNeverShrink,
  checkMetricSeries,
  checkResourceTrend,
  checkStarts,
  checkReleasedLock,
  checkStateLeftovers,
  checkWriteErrors,
  classifyWriteError,
  countByInvariant,
  type HealthProbe,
  type InvariantName,
  type JournalSummary,
  type LimitSample,
  type PoolSample,
  type ResourceSample,
  type StartOutcome,
  type Violation,
  type WriteOutcome,
} from './invariants.js';
import { CuttableProxy } from './proxy.js';
import { createRig, type BackendName, type RigContainer } from './rigs/index.js';
import { describeOp, generateSchedule, labelMaxSizeMiB, type ScheduledOp, type SoakOp } from './schedule.js';

const MiB = 1024 ** 2;
const MAIN_JS = path.join(REPO_ROOT, 'dist', 'src', 'main.js');
/**
 * dockerd's start-up, at the beginning and after each dockerd-restart fault: seconds on the host,
 * but up to minutes in a TCG guest on a loaded machine (docs/vm.md measured 60-120 s).
 */
const DOCKERD_START_TIMEOUT_MS = 300_000;
/**
 * dockerd's own `--shutdown-timeout` (default 15 s): the dockerd-restart fault is a clean restart.
 * In the TCG guest (overlay-xfs, seed 2057, 23 containers) a container took over 10 s to stop,
 * dockerd gave up at 15 s ("Force shutdown daemon") and left tasks in the separate containerd, so
 * later `docker start`s of six containers failed with "task ...: already exists" (start-failed
 * violations that were Docker's, not the agent's).
 */
export const DOCKERD_SHUTDOWN_TIMEOUT_S = 120;
/** How long the soak lets dockerd stop (SIGTERM) before it kills it: beyond dockerd's own timeout. */
export const DOCKERD_STOP_GRACE_MS = 180_000;
/** The agent's start to its first pass: seconds on the host; in the guest node loads dist/ over 9p under TCG. */
const AGENT_START_TIMEOUT_MS = 300_000;
/** The agent's reaction time: the pool must have had room (and the agent run) this long before a write error. */
const WRITE_WINDOW_MS = 3_000;

/** The agent policy the soak runs with (also what the invariants assume). */
export const SOAK_POLICY = {
  thresholdRatio: 0.8,
  stepRatio: 0.5,
  minStepBytes: 32 * MiB,
  maxStepBytes: 256 * MiB,
  maxSizeMiB: 512,
  reserveRatio: 0.15,
} as const;

export interface SoakOptions {
  seed: number;
  /** The storage the daemon runs on (soak/rigs/); btrfs on the host, the others in the guest. */
  backend: BackendName;
  /**
   * A containerd already running (its socket) for dockerd to use instead of starting its own: the
   * guest runs one, as a systemd host does, because dockerd's built-in start gives up on a slow TCG
   * guest. Default: dockerd's own.
   */
  containerdSocket?: string;
  /** Wall-clock budget for the operations (the final checks come on top). */
  minutes: number;
  /** Run exactly the first K operations of the schedule (a replay), whatever the time. */
  ops?: number;
  /** false: the control run, no agent at all (writers must fail at their limits). */
  agent: boolean;
  minContainers: number;
  maxContainers: number;
  poolBytes: number;
  /** Concurrent writers at most. */
  maxWriters: number;
  log: (line: string) => void;
  /** Print every operation as it runs. */
  verbose: boolean;
  /** Where the operation log and the agent logs are kept (default: under the temp dir, per seed). */
  logDir?: string;
}

export const DEFAULT_SOAK_OPTIONS: Omit<SoakOptions, 'seed' | 'minutes' | 'log'> = {
  backend: 'btrfs',
  agent: true,
  minContainers: 20,
  maxContainers: 60,
  poolBytes: 6 * 1024 ** 3,
  maxWriters: 4,
  verbose: false,
};

export const FAULT_KINDS = [
  'dockerd-restart',
  'agent-term',
  'agent-kill',
  'event-cut',
  'pool-fill',
  'pool-drain',
  'container-restart',
  'label-recreate',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface SoakResult {
  seed: number;
  backend: BackendName;
  agent: boolean;
  minutesBudget: number;
  durationSeconds: number;
  opsPlanned: number;
  opsRun: number;
  opsByKind: Record<string, number>;
  opErrors: number;
  opErrorsByKind: Record<string, number>;
  faults: Record<FaultKind, number>;
  eventCutConnections: number;
  containersCreated: number;
  containersStarted: number;
  maxContainersAlive: number;
  writes: {
    total: number;
    mib: number;
    interrupted: number;
    errors: number;
    /** Write errors that are not violations, by why (at maxSize, pool at its reserve, agent stopped by the soak). */
    errorsExcused: Record<'at-max-size' | 'pool-reserve' | 'agent-down', number>;
  };
  /** Time the soak had the agent stopped (SIGTERM/SIGKILL until the next agent was ready). */
  agentDownSeconds: number;
  /** The rig's own figures (soak/rigs/types.ts `figures`); empty on btrfs. */
  rigFigures: Record<string, number>;
  /** seenInQgroups: grows the soak saw in the limits it reads (qgroups, XFS project quotas). */
  grows: { seenInQgroups: number; journal: JournalSummary | null; cliGrows: Record<string, number> };
  violations: Record<InvariantName, number>;
  violationsTotal: number;
  violationSamples: Violation[];
  agentIncarnations: number;
  /** Longest SIGTERM-to-exit of the agent. */
  longestAgentStopMs: number;
  agentWarnOrErrorLines: number;
  resources: { maxRssMiB: number; maxFds: number; samples: number };
  healthProbes: { total: number; failedWhileUp: number };
  metricCheckpoints: number;
  loadAverage: { start: number[]; end: number[] };
  replay: string;
  logDir: string;
  startedAt: string;
}

interface LiveContainer {
  name: string;
  id: string;
  limitBytes: number | null;
  labels: Record<string, string>;
  maxSizeBytes: number;
  /** What the rig resolved for it (its qgroup, its XFS project), or null when it could not. */
  rig: RigContainer | null;
}

interface DockerError {
  message: string;
}

function errorText(error: unknown): string {
  const failure = error as { stderr?: string; stdout?: string; message?: string };
  return (failure.stderr || failure.stdout || failure.message || String(error)).trim();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function parseSizeLabelBytes(raw: string | undefined, limitBytes: number): number | null {
  if (raw === undefined) return null;
  const percent = /^(\d+)%$/.exec(raw);
  if (percent) return Math.ceil((Number(percent[1]) / 100) * limitBytes);
  const mib = /^(\d+)M$/.exec(raw);
  return mib ? Number(mib[1]) * MiB : null;
}

/** What the agent's next grow of this container would add (its room need in the pool). */
export function nextGrowBytes(
  container: Pick<LiveContainer, 'labels' | 'maxSizeBytes'>,
  limitBytes: number,
): number {
  const step =
    parseSizeLabelBytes(container.labels['autogrow.step'], limitBytes) ??
    Math.ceil(SOAK_POLICY.stepRatio * limitBytes);
  const increment = Math.min(SOAK_POLICY.maxStepBytes, Math.max(SOAK_POLICY.minStepBytes, step));
  return Math.max(0, Math.min(increment, container.maxSizeBytes - limitBytes));
}

function writerScript(mode: 'trickle' | 'steady' | 'full', mib: number, file: string): string {
  const fail = 'echo "WRITE-ERROR $out"; exit 97';
  if (mode === 'full') {
    return `mkdir -p /w && out=$(dd if=/dev/zero of=${file} bs=1M count=${mib} 2>&1) || { ${fail}; }; echo done`;
  }
  const [chunkKiB, count, pause] = mode === 'trickle' ? [256, mib * 4, '0.1'] : [1024, mib, '0.05'];
  return (
    `mkdir -p /w && i=0; while [ $i -lt ${count} ]; do ` +
    `out=$(dd if=/dev/zero of=${file} bs=${chunkKiB}k count=1 seek=$i conv=notrunc 2>&1) || { ${fail}; }; ` +
    `i=$((i+1)); sleep ${pause}; done; echo done`
  );
}

/** `<seed>[-control]` on btrfs (the names before the rigs), `<backend>-<seed>[-control]` on the others. */
export function soakRunName(options: Pick<SoakOptions, 'backend' | 'seed' | 'agent'>): string {
  return `${options.backend === 'btrfs' ? '' : `${options.backend}-`}${options.seed}${options.agent ? '' : '-control'}`;
}

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const { log } = options;
  if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run npm run build first`);
  const startedAt = new Date();
  const startedAtMs = Date.now();
  const loadStart = loadavg().map((value) => Number(value.toFixed(2)));
  const planned = options.ops ?? Math.max(200, Math.ceil(options.minutes * 150));
  const schedule = generateSchedule({
    seed: options.seed,
    count: planned,
    minContainers: options.minContainers,
    maxContainers: options.maxContainers,
    writeBudgetMiB: Math.floor((options.poolBytes / MiB) * 0.4),
    checkpointEvery: 40,
    defaultMaxSizeMiB: SOAK_POLICY.maxSizeMiB,
  });
  const replay =
    `npm run soak -- --backend ${options.backend} --seed ${options.seed} ` +
    (options.ops === undefined ? `--minutes ${options.minutes}` : `--ops ${options.ops}`) +
    (options.agent ? '' : ' --no-agent') +
    ` --min-containers ${options.minContainers} --max-containers ${options.maxContainers}` +
    ` --pool-gib ${options.poolBytes / 1024 ** 3}`;

  const workDir = mkdtempSync(path.join(tmpdir(), 'agsoak-'));
  const rigDir = path.join(workDir, 'fs');
  mkdirSync(rigDir, { recursive: true });
  const rig = createRig(options.backend, { poolBytes: options.poolBytes, workDir: rigDir });
  const dockerBase = path.join(workDir, 'd');
  mkdirSync(dockerBase, { recursive: true });
  const stateDir = path.join(workDir, 'state');
  const journalPath = path.join(stateDir, 'journal.jsonl');
  const configFile = path.join(workDir, 'config.yaml');
  let dockerd: TestDockerd | null = null;
  let proxy: CuttableProxy | null = null;
  let agent: ShippedAgent | null = null;
  let agentUp = false;
  /** Outages of the agent the soak caused; the last one open (toMs Infinity) while it is down. */
  const agentDown: { fromMs: number; toMs: number }[] = [];
  const agentDownIntervals = () => (options.agent ? agentDown : []);
  const writeErrorsExcused = { 'at-max-size': 0, 'pool-reserve': 0, 'agent-down': 0 };
  let incarnation = 0;
  const timers: NodeJS.Timeout[] = [];

  // recorded facts
  const writes: WriteOutcome[] = [];
  const starts: StartOutcome[] = [];
  const limitSamples: LimitSample[] = [];
  const poolSamples: PoolSample[] = [];
  const resourceSamples: ResourceSample[] = [];
  const probes: HealthProbe[] = [];
  const violations: Violation[] = [];
  const opsByKind: Record<string, number> = {};
  const opErrorsByKind: Record<string, number> = {};
  const faults = Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>;
  const cliGrows: Record<string, number> = {};
  let writesInterrupted = 0;
  let writtenMiB = 0;
  let growsSeen = 0;
  let containersCreated = 0;
  let containersStarted = 0;
  let maxAlive = 0;
  let metricCheckpoints = 0;
  let opsRun = 0;
  let eventCutConnections = 0;
  let longestAgentStopMs = 0;
  /** Agent log lines at warn or above, over all incarnations. */
  let agentWarnings = 0;
  const countedAgents = new Set<ShippedAgent>();
  let journalSummary: JournalSummary | null = null;
  const live = new Map<string, LiveContainer>();
  /** Path prefixes of removed containers (their qgroups, layer directories) the agent must not hold. */
  const removedPrefixes = new Set<string>();
  const lastLimit = new Map<string, number>();
  const writers = new Set<Promise<void>>();

  const logDir = options.logDir ?? path.join(tmpdir(), `docker-autogrow-soak-${soakRunName(options)}-logs`);
  rmSync(logDir, { recursive: true, force: true });
  mkdirSync(logDir, { recursive: true });
  const opLog = path.join(logDir, 'ops.log');
  let agentLogs = 0;
  const noteViolations = (found: Violation[]) => {
    for (const violation of found) {
      appendFileSync(
        opLog,
        `${new Date().toISOString()} VIOLATION ${violation.invariant}: ${violation.detail}\n`,
      );
      violations.push(violation);
      log(`VIOLATION ${violation.invariant}: ${violation.detail}`);
    }
  };
  const opError = (kind: string, message: string) => {
    opErrorsByKind[kind] = (opErrorsByKind[kind] ?? 0) + 1;
    appendFileSync(opLog, `${new Date().toISOString()}   op error (${kind}): ${message.split('\n')[0]}\n`);
    if (options.verbose) log(`  op error (${kind}): ${message.split('\n')[0]}`);
  };

  // --- rig ----------------------------------------------------------------------------------
  await rig.create();
  const docker = new TestDockerd({
    storageDriver: rig.dockerd.storageDriver,
    dataRoot: rig.dockerd.dataRoot,
    baseDir: dockerBase,
    extraArgs: [
      ...rig.dockerd.extraArgs,
      `--shutdown-timeout=${DOCKERD_SHUTDOWN_TIMEOUT_S}`,
      ...(options.containerdSocket ? [`--containerd=${options.containerdSocket}`] : []),
    ],
  });
  dockerd = docker;
  const metricsPort = await freePort();

  const poolSample = async (): Promise<PoolSample | null> => {
    try {
      const usage = await rig.poolUsage();
      const sample = {
        atMs: Date.now(),
        freeAboveReserveBytes: usage.freeBytes - SOAK_POLICY.reserveRatio * usage.totalBytes,
      };
      poolSamples.push(sample);
      return sample;
    } catch {
      return null;
    }
  };
  const readLimit = async (container: LiveContainer): Promise<number | null> => {
    if (!container.rig) return null;
    try {
      return (await rig.readLimits([container.rig])).get(container.id) ?? null;
    } catch {
      return null;
    }
  };
  /** One sampling at a time: a rig that runs a tool (xfs_quota) may take longer than the period. */
  let samplingLimits = false;
  const sampleLimits = async () => {
    if (samplingLimits) return;
    samplingLimits = true;
    try {
      const atMs = Date.now();
      const sampled = [...live.values()];
      const handles = sampled.flatMap((container) => (container.rig ? [container.rig] : []));
      const limits = await rig.readLimits(handles).catch(() => new Map<string, number>());
      for (const container of sampled) {
        const limitBytes = limits.get(container.id);
        if (limitBytes === undefined) continue;
        const before = lastLimit.get(container.id);
        if (before === limitBytes) continue;
        if (before !== undefined && limitBytes > before) growsSeen += 1;
        lastLimit.set(container.id, limitBytes);
        limitSamples.push({ containerId: container.id, atMs, limitBytes });
      }
    } finally {
      samplingLimits = false;
    }
  };
  let samplingPool = false;
  const samplePoolPeriodically = async () => {
    if (samplingPool) return;
    samplingPool = true;
    await poolSample().finally(() => (samplingPool = false));
  };
  const sampleResources = () => {
    const pid = agent?.pid ?? 0;
    if (!agentUp || pid === 0) return;
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      const fds = readdirSync(`/proc/${pid}/fd`).length;
      resourceSamples.push({
        incarnation,
        atMs: Date.now(),
        rssBytes: rssKiB * 1024,
        fds,
        liveContainers: live.size,
      });
    } catch {
      // the agent is between incarnations
    }
  };
  /**
   * Stalls of the soak's own event loop (a 250 ms tick that came late by more than 200 ms): in the
   * TCG guest a failed /healthz probe is explained by them when the whole guest stalled, the
   * soak's timers included, rather than the agent alone. Kept for the last minute, for the log.
   */
  const soakStalls: { atMs: number; lagMs: number }[] = [];
  let lastTickMs = Date.now();
  const tick = () => {
    const nowMs = Date.now();
    const lagMs = nowMs - lastTickMs - 250;
    lastTickMs = nowMs;
    if (lagMs > 200) soakStalls.push({ atMs: nowMs, lagMs });
    while ((soakStalls[0]?.atMs ?? nowMs) < nowMs - 60_000) soakStalls.shift();
  };
  const probeHealth = () => {
    const upAtStart = agentUp;
    const atMs = Date.now();
    const done = (ok: boolean, error: string | null) => {
      probes.push({ atMs, agentUp: upAtStart && agentUp, ok, error });
      if (ok || !(upAtStart && agentUp)) return;
      // at once in the operation log, beside the operations around it, for the analysis
      const endMs = Date.now();
      const stalledMs = Math.max(
        0,
        ...soakStalls
          .filter((stall) => stall.atMs >= atMs && stall.atMs <= endMs + 250)
          .map((stall) => stall.lagMs),
      );
      appendFileSync(
        opLog,
        `${new Date(endMs).toISOString()}   healthz probe of ${new Date(atMs).toISOString()} failed after ${endMs - atMs} ms: ${error}; the soak's own event loop stalled up to ${stalledMs} ms meanwhile; load ${loadavg()[0]?.toFixed(2)}\n`,
      );
    };
    const req = request(
      { host: '127.0.0.1', port: metricsPort, path: '/healthz', timeout: 3_000 },
      (response) => {
        response.resume();
        response.on('end', () => done(response.statusCode === 200, `status ${response.statusCode}`));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out after 3 s')));
    req.on('error', (error) => done(false, error.message));
    req.end();
  };
  const fetchText = (urlPath: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: metricsPort, path: urlPath, timeout: 10_000 },
        (response) => {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', () => resolve(body));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end();
    });

  const runCli = (
    args: string[],
    timeoutMs = 120_000,
  ): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [MAIN_JS, '--config', configFile, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });

  /** Starts an agent and waits for its first pass; a start that fails is retried twice, then the soak stops. */
  const startAgent = async () => {
    for (let attempt = 1; ; attempt += 1) {
      incarnation += 1;
      const next = new ShippedAgent(configFile);
      agent = next;
      try {
        await next.start(AGENT_START_TIMEOUT_MS);
        agentUp = true;
        const open = agentDown.at(-1);
        if (open && open.toMs === Number.POSITIVE_INFINITY) open.toMs = Date.now();
        return;
      } catch (error) {
        opError('agent-start', errorText(error));
        await next.kill();
        if (attempt >= 3) throw new Error(`the agent did not start 3 times: ${errorText(error)}`);
        await sleep(2_000);
      }
    }
  };
  const stopAgent = async (how: 'term' | 'kill') => {
    agentUp = false;
    if (agentDown.at(-1)?.toMs !== Number.POSITIVE_INFINITY)
      agentDown.push({ fromMs: Date.now(), toMs: Number.POSITIVE_INFINITY });
    const current = agent as ShippedAgent | null;
    if (!current) return;
    const stopStartedMs = Date.now();
    if (how === 'kill') await current.kill();
    else await current.stop(60_000);
    if (how === 'term') longestAgentStopMs = Math.max(longestAgentStopMs, Date.now() - stopStartedMs);
    if (!countedAgents.has(current)) {
      countedAgents.add(current);
      agentWarnings += current.lines.filter(
        (line) => line.level === 'warn' || line.level === 'error' || line.level === 'fatal',
      ).length;
      // the agent's own log, kept beside the operation log to explain a violation
      writeFileSync(
        path.join(logDir, `agent-${agentLogs}.jsonl`),
        `${current.lines.map((line) => JSON.stringify(line)).join('\n')}\n${current.stderr}`,
      );
      agentLogs += 1;
    }
  };

  const dockerCli = (args: string[], timeoutMs = 60_000) => docker.cli(args, timeoutMs);

  const inspectRunning = async (name: string): Promise<boolean> =>
    (await dockerCli(['inspect', '--format', '{{.State.Running}}', name], 30_000)).trim() === 'true';

  const registerContainer = async (
    name: string,
    id: string,
    limitMiB: number | null,
    labels: Record<string, string>,
  ) => {
    let handle: RigContainer | null = null;
    try {
      handle = await rig.register(id, limitMiB !== null);
    } catch (error) {
      opError('register', errorText(error));
    }
    const limitBytes = limitMiB === null ? rig.defaultLimitBytes : limitMiB * MiB;
    live.set(name, {
      name,
      id,
      limitBytes,
      labels,
      maxSizeBytes:
        limitBytes === null ? 0 : Math.max(limitBytes, labelMaxSizeMiB(labels, SOAK_POLICY.maxSizeMiB) * MiB),
      rig: handle,
    });
    maxAlive = Math.max(maxAlive, live.size);
  };
  const forget = (name: string) => {
    const container = live.get(name);
    if (!container) return;
    if (container.rig) {
      if (container.rig.removedPrefix) removedPrefixes.add(container.rig.removedPrefix);
      rig.forget(container.rig);
    }
    live.delete(name);
  };

  const createAndStart = async (
    name: string,
    limitMiB: number | null,
    labels: Record<string, string>,
    restartPolicy: boolean,
  ) => {
    const args = ['run', '-d', '--name', name];
    if (limitMiB !== null) args.push('--storage-opt', `size=${limitMiB}M`);
    if (restartPolicy) args.push('--restart', 'unless-stopped');
    for (const [key, value] of Object.entries(labels)) args.push('--label', `${key}=${value}`);
    args.push(image, 'sh', '-c', 'trap "exit 0" TERM; sleep 1d & wait');
    const atMs = Date.now();
    containersCreated += 1;
    try {
      const id = (await dockerCli(args, 120_000)).trim();
      await registerContainer(name, id, limitMiB, labels);
      containersStarted += 1;
      starts.push({ name, atMs, error: null });
    } catch (error) {
      const message = errorText(error);
      starts.push({ name, atMs, error: message });
      // the container may exist half-made: keep it known so it is removed later
      try {
        const id = (await dockerCli(['inspect', '--format', '{{.Id}}', name], 30_000)).trim();
        await registerContainer(name, id, limitMiB, labels);
      } catch {
        // not created at all
      }
      noteViolations(checkStarts([starts.at(-1) as StartOutcome]));
    }
  };

  const startExisting = async (name: string, verb: 'start' | 'restart') => {
    if (!live.has(name)) return opError(verb, `no container ${name}`);
    const atMs = Date.now();
    try {
      await dockerCli(verb === 'start' ? ['start', name] : ['restart', '-t', '2', name], 120_000);
      const running = await inspectRunning(name);
      starts.push({
        name,
        atMs,
        error: running ? null : `${verb} returned but the container is not running`,
      });
      if (running) containersStarted += 1;
    } catch (error) {
      starts.push({ name, atMs, error: errorText(error) });
    }
    noteViolations(checkStarts([starts.at(-1) as StartOutcome]));
  };

  const launchWriter = async (op: Extract<SoakOp, { kind: 'write' }>, index: number) => {
    const container = live.get(op.name);
    if (!container) return opError('write', `no container ${op.name}`);
    while (writers.size >= options.maxWriters) await Promise.race(writers);
    const file = `/w/f${index}`;
    const promise = (async () => {
      let output = '';
      let code = 0;
      try {
        output = await dockerCli(['exec', op.name, 'sh', '-c', writerScript(op.mode, op.mib, file)], 300_000);
      } catch (error) {
        const failure = error as { code?: number; stdout?: string; stderr?: string };
        code = typeof failure.code === 'number' ? failure.code : -1;
        output = `${failure.stdout ?? ''}${failure.stderr ?? ''}`;
      }
      const atMs = Date.now();
      if (code === 97 || output.includes('WRITE-ERROR')) {
        const limitBytes = (await readLimit(container)) ?? container.limitBytes;
        await poolSample();
        const outcome: WriteOutcome = {
          name: op.name,
          containerId: container.id,
          atMs,
          error: output.replace(/\s+/g, ' ').trim(),
          limitBytes,
          maxSizeBytes: container.maxSizeBytes,
          neededRoomBytes: limitBytes === null ? MiB : nextGrowBytes(container, limitBytes),
        };
        writes.push(outcome);
        const writeOptions = { windowMs: WRITE_WINDOW_MS, agentDown: agentDownIntervals() };
        const found = checkWriteErrors([outcome], poolSamples, writeOptions);
        noteViolations(found);
        const verdict = classifyWriteError(outcome, poolSamples, writeOptions);
        if (verdict !== 'violation') {
          writeErrorsExcused[verdict] += 1;
          appendFileSync(
            opLog,
            `${new Date().toISOString()}   write error excused (${verdict}): ${op.name} ${outcome.error}\n`,
          );
          if (options.verbose) log(`  write error excused: ${outcome.error}`);
        }
      } else if (code !== 0) {
        // the exec was cut by a stop, rm, restart or daemon restart: not a write error
        writesInterrupted += 1;
      } else {
        writtenMiB += op.mib;
        writes.push({
          name: op.name,
          containerId: container.id,
          atMs,
          error: null,
          limitBytes: null,
          maxSizeBytes: 0,
          neededRoomBytes: 0,
        });
      }
    })();
    writers.add(promise);
    void promise.finally(() => writers.delete(promise));
  };

  const readJournalText = (): string => {
    const files: string[] = [];
    for (let n = 10; n >= 1; n -= 1) if (existsSync(`${journalPath}.${n}`)) files.push(`${journalPath}.${n}`);
    if (existsSync(journalPath)) files.push(journalPath);
    return files.map((file) => readFileSync(file, 'utf8')).join('');
  };
  const journalViolationKeys = new Set<string>();
  const checkJournalNow = (openAllowedAfterMs: number) => {
    if (!options.agent) return;
    const { summary, violations: found } = checkJournal(readJournalText(), Date.now(), openAllowedAfterMs);
    journalSummary = summary;
    noteViolations(found.filter((violation) => !journalViolationKeys.has(violation.detail)));
    for (const violation of found) journalViolationKeys.add(violation.detail);
  };

  /** Quiet point: the metric series must match the running containers once passes have run. */
  const checkpoint = async () => {
    if (!options.agent || !agentUp) return;
    metricCheckpoints += 1;
    const passes = async () => {
      const text = await fetchText('/metrics');
      return Number(/^docker_autogrow_passes_total (\d+)/m.exec(text)?.[1] ?? 0);
    };
    try {
      const before = await passes();
      const deadline = Date.now() + 30_000;
      while ((await passes()) < before + 2 && Date.now() < deadline) await sleep(250);
      // converge: events and resyncs may need a pass or two after a cut; 15 s is the bound
      const convergeBy = Date.now() + 15_000;
      let found: Violation[] = [];
      for (;;) {
        const runningIds = (await dockerCli(['ps', '-q', '--no-trunc'], 30_000))
          .trim()
          .split('\n')
          .filter(Boolean);
        const exposition = await fetchText('/metrics');
        const again = (await dockerCli(['ps', '-q', '--no-trunc'], 30_000))
          .trim()
          .split('\n')
          .filter(Boolean);
        if (again.join() !== runningIds.join()) continue;
        found = checkMetricSeries(Date.now(), exposition, runningIds);
        if (found.length === 0 || Date.now() > convergeBy) break;
        await sleep(1_000);
      }
      noteViolations(found);
    } catch (error) {
      opError('checkpoint', errorText(error));
    }
    checkJournalNow(Date.now() - 60_000);
    // fds of the agent that point at removed containers' qgroups or layers
    const pid = agent?.pid ?? 0;
    if (pid > 0) {
      try {
        const targets = readdirSync(`/proc/${pid}/fd`).map((fd) => {
          try {
            return readlinkSync(`/proc/${pid}/fd/${fd}`);
          } catch {
            return '';
          }
        });
        const livePrefixes = new Set([...live.values()].map((container) => container.rig?.removedPrefix));
        const gone = [...removedPrefixes].filter((prefix) => !livePrefixes.has(prefix));
        noteViolations(checkFdTargets(Date.now(), pid, targets, gone));
      } catch {
        // between incarnations
      }
    }
  };

  const fillPool = async () => {
    const usage = await rig.poolUsage();
    const freeAboveReserve = usage.freeBytes - SOAK_POLICY.reserveRatio * usage.totalBytes;
    // leave a little room above the reserve: grows still fit, a few at most
    const fillBytes = Math.floor((freeAboveReserve - 0.03 * usage.totalBytes) / MiB) * MiB;
    if (fillBytes <= 0) return opError('pool-fill', 'the pool is already close to its reserve');
    await rig.fillPool(fillBytes);
    await poolSample();
  };
  const drainPool = async () => {
    await rig.drainPool();
    await poolSample();
  };

  const execute = async (scheduled: ScheduledOp) => {
    const { op } = scheduled;
    switch (op.kind) {
      case 'create':
        if (live.has(op.name)) return opError(op.kind, `${op.name} exists`);
        return createAndStart(op.name, op.limitMiB, op.labels, op.restartPolicy);
      case 'start':
        return startExisting(op.name, 'start');
      case 'restart':
        faults['container-restart'] += 1;
        return startExisting(op.name, 'restart');
      case 'stop':
        if (!live.has(op.name)) return opError(op.kind, `no container ${op.name}`);
        await dockerCli(['stop', '-t', '2', op.name], 60_000);
        return;
      case 'rm':
        if (!live.has(op.name)) return opError(op.kind, `no container ${op.name}`);
        await dockerCli(['rm', '-f', op.name], 120_000);
        forget(op.name);
        return;
      case 'recreate': {
        faults['label-recreate'] += 1;
        if (live.has(op.name)) {
          await dockerCli(['rm', '-f', op.name], 120_000);
          forget(op.name);
        }
        return createAndStart(op.name, op.limitMiB, op.labels, false);
      }
      case 'write':
        return launchWriter(op, scheduled.index);
      case 'drain':
        if (!live.has(op.name)) return opError(op.kind, `no container ${op.name}`);
        if (!(await inspectRunning(op.name))) return opError(op.kind, `${op.name} is not running`);
        // the files, not the directory: a writer in flight keeps writing (into a new file)
        await dockerCli(['exec', op.name, 'sh', '-c', 'rm -f /w/*'], 60_000);
        return;
      case 'cli-grow': {
        if (!options.agent) return;
        if (!live.has(op.name)) return opError(op.kind, `no container ${op.name}`);
        const result = await runCli(['grow', op.name, '--by', `${op.byMiB}M`, '--json']);
        let outcome = `exit-${result.code}`;
        try {
          const parsed = JSON.parse(result.stdout) as { result?: string; reason?: string };
          outcome = `${parsed.result ?? outcome}${parsed.reason ? `:${parsed.reason}` : ''}`;
        } catch {
          // no JSON: the exit code says it
        }
        cliGrows[outcome] = (cliGrows[outcome] ?? 0) + 1;
        if (result.code !== 0 && result.code !== 1) opError(op.kind, `${outcome}: ${result.stderr}`);
        return;
      }
      case 'cli-once': {
        if (!options.agent) return;
        const result = await runCli(['once', '--json']);
        if (result.code !== 0) opError(op.kind, `exit ${result.code}: ${result.stderr}`);
        return;
      }
      case 'dockerd-restart':
        faults['dockerd-restart'] += 1;
        {
          const stopStartedMs = Date.now();
          await docker.stop(DOCKERD_STOP_GRACE_MS);
          const stopMs = Date.now() - stopStartedMs;
          appendFileSync(opLog, `${new Date().toISOString()}   dockerd stopped in ${stopMs} ms\n`);
          if (stopMs >= DOCKERD_STOP_GRACE_MS)
            opError('dockerd-restart', `dockerd did not stop in ${DOCKERD_STOP_GRACE_MS} ms and was killed`);
        }
        await docker.start(DOCKERD_START_TIMEOUT_MS);
        return;
      case 'agent-term':
      case 'agent-kill':
        if (!options.agent) return;
        faults[op.kind] += 1;
        await stopAgent(op.kind === 'agent-kill' ? 'kill' : 'term');
        await startAgent();
        return;
      case 'event-cut':
        faults['event-cut'] += 1;
        eventCutConnections += proxy?.cut() ?? 0;
        return;
      case 'pool-fill':
        faults['pool-fill'] += 1;
        return fillPool();
      case 'pool-drain':
        faults['pool-drain'] += 1;
        return drainPool();
      case 'checkpoint':
        return checkpoint();
    }
  };

  let image = '';
  try {
    await docker.start(DOCKERD_START_TIMEOUT_MS);
    image = await docker.ensureBusyboxImage();
    proxy = new CuttableProxy(path.join(workDir, 'p.sock'), docker.socketPath);
    await proxy.start();
    writeFileSync(
      configFile,
      [
        'interval: 1s',
        'resyncInterval: 10s',
        'defaults:',
        `  threshold: ${SOAK_POLICY.thresholdRatio * 100}%`,
        `  step: ${SOAK_POLICY.stepRatio * 100}%`,
        `  minStep: ${SOAK_POLICY.minStepBytes / MiB}M`,
        `  maxStep: ${SOAK_POLICY.maxStepBytes / MiB}M`,
        `  maxSize: ${SOAK_POLICY.maxSizeMiB}M`,
        '  cooldown: 0s',
        'pool:',
        `  reserve: ${SOAK_POLICY.reserveRatio * 100}%`,
        ...rig.agentPoolLines().map((line) => `  ${line}`),
        'backoff: { initial: 1s, max: 10s }',
        `docker: { socketPath: ${proxy.listenPath}, timeout: 10s }`,
        `journal: { path: ${journalPath} }`,
        `metrics: { listen: 127.0.0.1:${metricsPort} }`,
        'log: { level: info }',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    if (options.agent) await startAgent();
    timers.push(setInterval(() => void sampleLimits(), 500));
    timers.push(setInterval(() => void samplePoolPeriodically(), 500));
    timers.push(setInterval(sampleResources, 5_000));
    if (options.agent) timers.push(setInterval(probeHealth, 1_000));
    timers.push(setInterval(tick, 250));

    log(
      `soak seed ${options.seed} on ${options.backend}: ${schedule.length} operations planned, ${options.ops === undefined ? `${options.minutes} min` : `exactly ${options.ops} operations`}; ` +
        `agent ${options.agent ? 'on' : 'OFF (control)'}; work dir ${workDir}`,
    );
    log(`replay: ${replay}${options.ops === undefined ? ' (or --ops K for the first K operations)' : ''}`);

    const deadlineMs = startedAtMs + options.minutes * 60_000;
    for (const scheduled of schedule) {
      if (options.ops === undefined && Date.now() >= deadlineMs) break;
      if (scheduled.delayMs > 0) await sleep(scheduled.delayMs);
      opsByKind[scheduled.op.kind] = (opsByKind[scheduled.op.kind] ?? 0) + 1;
      opsRun += 1;
      appendFileSync(
        opLog,
        `${new Date().toISOString()} ${describeOp(scheduled)} [alive ${live.size}, writers ${writers.size}]\n`,
      );
      if (options.verbose || scheduled.index % 50 === 0) {
        log(
          `${describeOp(scheduled)}  [alive ${live.size}, writers ${writers.size}, load ${loadavg()[0]?.toFixed(2)}]`,
        );
      }
      try {
        await execute(scheduled);
      } catch (error) {
        opError(scheduled.op.kind, errorText(error as DockerError));
      }
    }

    // --- the end: writers finish, a last quiet checkpoint, a clean stop, leftovers -------------
    log(`operations done (${opsRun}); waiting for ${writers.size} writers`);
    await Promise.allSettled([...writers]);
    await drainPool().catch((error: unknown) => opError('pool-drain', errorText(error)));
    await checkpoint();
    if (options.agent) {
      const pid = (agent as ShippedAgent | null)?.pid ?? 0;
      await stopAgent('term');
      const exitedCleanly = pid > 0 && !existsSync(`/proc/${pid}`);
      if (!exitedCleanly)
        noteViolations([
          { invariant: 'leak', atMs: Date.now(), detail: `agent pid ${pid} still alive after SIGTERM` },
        ]);
      checkJournalNow(Number.POSITIVE_INFINITY);
      const entries = existsSync(stateDir) ? readdirSync(stateDir) : [];
      const backendState = rig.checkAgentState(stateDir, Date.now());
      noteViolations(backendState.violations);
      noteViolations(
        checkStateLeftovers(Date.now(), entries, [
          /^journal\.jsonl(\.\d+)?$/,
          /^agent\.lock\.d$/,
          ...backendState.allowed,
        ]),
      );
      const lockDir = path.join(stateDir, 'agent.lock.d');
      if (existsSync(lockDir))
        noteViolations(checkReleasedLock(Date.now(), 'agent.lock.d', readdirSync(lockDir)));
    }
    await sampleLimits();
    noteViolations(checkLimitsNeverShrink(limitSamples));
    noteViolations(
      checkResourceTrend(resourceSamples, {
        warmupMs: 60_000,
        minSpanMs: 3 * 60_000,
        maxFdGrowth: 16,
        fdsPerAddedContainer: 4,
        maxRssGrowthBytes: 48 * MiB,
      }),
    );
    noteViolations(checkHealthz(probes));
    // what the backend kept that it should not (qgroups without a subvolume, removed projects' limits)
    try {
      noteViolations(await rig.leftovers(Date.now()));
    } catch (error) {
      opError('leftovers', errorText(error));
    }
  } finally {
    for (const timer of timers) clearInterval(timer);
    await Promise.allSettled([...writers]);
    if (agentUp || agent) await stopAgent('term').catch(() => undefined);
    await proxy?.stop().catch(() => undefined);
    await dockerd?.destroy().catch(() => undefined);
    // dockerd's own log beside the agents': a slow restart or a failed start is explained there,
    // and the work dir that holds it is removed next
    if (dockerd && existsSync(dockerd.logFile))
      copyFileSync(dockerd.logFile, path.join(logDir, 'dockerd.log'));
    await rig.destroy();
    try {
      rmSync(workDir, { recursive: true, force: true, maxRetries: 3 });
    } catch (error) {
      // a mount the rig left behind: report it, but keep the figures of the run
      opError('cleanup', errorText(error));
    }
  }

  const writeErrors = writes.filter((write) => write.error !== null);
  const counts = countByInvariant(violations);
  const result: SoakResult = {
    seed: options.seed,
    backend: options.backend,
    rigFigures: rig.figures(),
    agent: options.agent,
    minutesBudget: options.minutes,
    durationSeconds: Math.round((Date.now() - startedAtMs) / 1000),
    opsPlanned: schedule.length,
    opsRun,
    opsByKind,
    opErrors: Object.values(opErrorsByKind).reduce((sum, count) => sum + count, 0),
    opErrorsByKind,
    faults,
    eventCutConnections,
    containersCreated,
    containersStarted,
    maxContainersAlive: maxAlive,
    writes: {
      total: writes.length + writesInterrupted,
      mib: writtenMiB,
      interrupted: writesInterrupted,
      errors: writeErrors.length,
      errorsExcused: writeErrorsExcused,
    },
    grows: { seenInQgroups: growsSeen, journal: journalSummary, cliGrows },
    violations: counts,
    violationsTotal: violations.length,
    violationSamples: violations.slice(0, 40),
    agentIncarnations: incarnation,
    agentDownSeconds: Math.round(
      agentDown.reduce((sum, down) => sum + (Math.min(down.toMs, Date.now()) - down.fromMs), 0) / 1000,
    ),
    longestAgentStopMs,
    agentWarnOrErrorLines: agentWarnings,
    resources: {
      maxRssMiB: Number((Math.max(0, ...resourceSamples.map((sample) => sample.rssBytes)) / MiB).toFixed(1)),
      maxFds: Math.max(0, ...resourceSamples.map((sample) => sample.fds)),
      samples: resourceSamples.length,
    },
    healthProbes: { total: probes.length, failedWhileUp: counts.healthz },
    metricCheckpoints,
    loadAverage: { start: loadStart, end: loadavg().map((value) => Number(value.toFixed(2))) },
    replay,
    logDir,
    startedAt: startedAt.toISOString(),
  };
  return result;
}
